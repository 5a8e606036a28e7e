"""`python -m reflow_lang.runtime.cluster ROLE ...`: one process of a job.

    queue-server (--plan PLAN.json | --plan-fd FD) --bind ADDR [--keys DIR]
                 [--parent PID]
    worker (--plan PLAN.json | --plan-fd FD) --connect ADDR [--stage NAME ...]
           [--keys DIR] [--timeout S] [--parent PID] [--stopped] [--debug]

The supervisor starts these, handing each the plan on an inherited pipe (`--plan-fd`:
no file to clean up, and the child's stdin stays the supervisor's, for a source that
reads `"-"`); people use `reflowc serve` and `reflowc worker`, which take a `.flow`
file instead of a compiled plan. Each process's log records name it, as its title
does (`worker FLOW/STAGE`). Exit statuses: see `roles`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
from pathlib import Path
from typing import Any

from reflow_lang.errors import ReflowError
from reflow_lang.plan import Plan
from reflow_lang.runtime.cluster.roles import (
    EXIT_CRASH,
    EXIT_FATAL,
    catch_early_signals,
    crash_line,
    failure_line,
    run_worker,
    serve_queues,
    server_title,
    statistics_line,
    worker_title,
)
from reflow_lang.runtime.job import units_of
from reflow_lang.runtime.transport import keys as curve


def main(argv: list[str] | None = None) -> int:
    """Runs the role named in `argv`; answers the process's exit status."""
    catch_early_signals()
    args = _parser().parse_args(argv)
    server = args.role == "queue-server"
    try:
        plan = Plan.from_json(_plan_text(args))
        keys = _keys(args.keys, server=server)
    except (OSError, ReflowError) as exc:
        # A plan or keys that cannot be read stay so: a restart would not help.
        print(failure_line(f"cannot start `{args.role}`: {exc}"), file=sys.stderr)
        return EXIT_FATAL

    logging.basicConfig(level=args.log_level, format=_log_format(plan, args))
    if server:
        return asyncio.run(_serve(plan, args, keys))
    return asyncio.run(_work(plan, args, keys), debug=args.debug)


def _plan_text(args: argparse.Namespace) -> str:
    if args.plan is not None:
        return Path(args.plan).read_text(encoding="utf-8")
    with os.fdopen(args.plan_fd, "rb") as pipe:
        return pipe.read().decode("utf-8")


def _log_format(plan: Plan, args: argparse.Namespace) -> str:
    # The supervisor passes its children's records on as they are: each names the
    # process it comes from, as `ps` does (without the `reflow ` of the title).
    if args.role == "queue-server":
        title = server_title(plan)
    else:
        try:
            title = worker_title(plan, units_of(plan, args.stages or None))
        except ReflowError:
            title = f"reflow worker {plan.flow}"  # run_worker tells why
    name = title.removeprefix("reflow ").replace("%", "%%")
    return f"%(levelname)s [{name}] %(name)s: %(message)s"


def _keys(folder: str | None, *, server: bool) -> Any:
    if folder is None:
        return None
    return curve.load_server(folder) if server else curve.load_client(folder)


async def _serve(plan: Plan, args: argparse.Namespace, keys: Any) -> int:
    try:
        return await _serve_queues(plan, args, keys)
    except ReflowError as exc:  # it cannot bind: the address is taken, or refused
        print(failure_line(str(exc)), file=sys.stderr, flush=True)
        return EXIT_FATAL


async def _serve_queues(plan: Plan, args: argparse.Namespace, keys: Any) -> int:
    return await serve_queues(
        plan,
        args.bind,
        keys=keys,
        on_ready=_print_endpoint,
        on_tick=lambda queues: print(statistics_line(queues), flush=True),
        parent=args.parent,
    )


async def _work(plan: Plan, args: argparse.Namespace, keys: Any) -> int:
    try:
        return await run_worker(
            plan,
            args.connect,
            args.stages or None,
            keys=keys,
            timeout=args.timeout,
            parent=args.parent,
            stopped=args.stopped,
            debug=args.debug,
        )
    except Exception as exc:  # whatever escapes is a crash: told, then restarted
        print(crash_line(exc), file=sys.stderr, flush=True)
        return EXIT_CRASH


def _print_endpoint(endpoint: str) -> None:
    print(json.dumps({"endpoint": endpoint}), flush=True)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m reflow_lang.runtime.cluster")
    roles = parser.add_subparsers(dest="role", required=True)
    for role in ("queue-server", "worker"):
        sub = roles.add_parser(role)
        plan = sub.add_mutually_exclusive_group(required=True)
        plan.add_argument("--plan", help="the compiled plan (JSON)")
        plan.add_argument(
            "--plan-fd", type=int, help="an inherited pipe to read the plan from"
        )
        sub.add_argument("--keys", help="the folder of CURVE keys")
        sub.add_argument("--parent", type=int, help="stop when this pid is gone")
        sub.add_argument("--log-level", default="WARNING")
    roles.choices["queue-server"].add_argument("--bind", required=True)
    worker = roles.choices["worker"]
    worker.add_argument("--connect", required=True)
    worker.add_argument("--stage", dest="stages", action="append", default=[])
    worker.add_argument("--timeout", type=float, default=10.0)
    worker.add_argument("--stopped", action="store_true")
    worker.add_argument("--debug", action="store_true")
    return parser


if __name__ == "__main__":
    sys.exit(main())

"""`python -m reflow_lang.runtime.cluster ROLE ...`: one process of a job.

    queue-server --plan PLAN.json --bind ADDR [--keys DIR] [--parent PID]
    worker --plan PLAN.json --connect ADDR [--stage NAME ...] [--keys DIR]
           [--timeout S] [--parent PID]

The supervisor starts these; people use `reflowc serve` and `reflowc worker`, which
take a `.flow` file instead of a compiled plan. Exit statuses: see `roles`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
from pathlib import Path
from typing import Any

from reflow_lang.errors import ReflowError
from reflow_lang.plan import Plan
from reflow_lang.runtime.cluster.roles import (
    EXIT_FATAL,
    catch_early_signals,
    failure_line,
    run_worker,
    serve_queues,
    statistics_line,
)
from reflow_lang.runtime.transport import keys as curve


def main(argv: list[str] | None = None) -> int:
    """Runs the role named in `argv`; answers the process's exit status."""
    catch_early_signals()
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=args.log_level, format="%(levelname)s %(name)s: %(message)s"
    )
    server = args.role == "queue-server"
    try:
        plan = Plan.from_json(Path(args.plan).read_text(encoding="utf-8"))
        keys = _keys(args.keys, server=server)
    except (OSError, ReflowError) as exc:
        # A plan or keys that cannot be read stay so: a restart would not help.
        print(failure_line(f"cannot start `{args.role}`: {exc}"), file=sys.stderr)
        return EXIT_FATAL

    if server:
        return asyncio.run(_serve(plan, args, keys))
    return asyncio.run(_work(plan, args, keys))


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
    return await run_worker(
        plan,
        args.connect,
        args.stages or None,
        keys=keys,
        timeout=args.timeout,
        parent=args.parent,
        stopped=args.stopped,
    )


def _print_endpoint(endpoint: str) -> None:
    print(json.dumps({"endpoint": endpoint}), flush=True)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m reflow_lang.runtime.cluster")
    roles = parser.add_subparsers(dest="role", required=True)
    for role in ("queue-server", "worker"):
        sub = roles.add_parser(role)
        sub.add_argument("--plan", required=True, help="the compiled plan (JSON)")
        sub.add_argument("--keys", help="the folder of CURVE keys")
        sub.add_argument("--parent", type=int, help="stop when this pid is gone")
        sub.add_argument("--log-level", default="WARNING")
    roles.choices["queue-server"].add_argument("--bind", required=True)
    worker = roles.choices["worker"]
    worker.add_argument("--connect", required=True)
    worker.add_argument("--stage", dest="stages", action="append", default=[])
    worker.add_argument("--timeout", type=float, default=10.0)
    worker.add_argument("--stopped", action="store_true")
    return parser


if __name__ == "__main__":
    sys.exit(main())

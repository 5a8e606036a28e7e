"""The commands of `reflowc` for running a job over several hosts: `serve`,
`worker` and `keys`.

`serve` hosts a flow's queues (one queue server); `worker` runs some or all of its
stages against a server; `keys` writes the CURVE key pairs a server reachable beyond
loopback needs. The process roles themselves live in `runtime.cluster.roles`; these
commands compile the flow, load the keys and say on stderr how things ended.
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Sequence
from pathlib import Path

from reflow_lang.cli.commands import UsageError, compiled_plan
from reflow_lang.cli.output import Output
from reflow_lang.cli.running import INTERRUPTED
from reflow_lang.errors import PlanError
from reflow_lang.runtime.cluster.roles import (
    EXIT_INTERRUPTED,
    EXIT_OK,
    run_worker,
    serve_queues,
)
from reflow_lang.runtime.job import units_of
from reflow_lang.runtime.transport import keys as curve

# The address `reflowc serve` binds when not told: loopback only, a fixed port.
DEFAULT_BIND = "tcp://127.0.0.1:5555"


def serve(args: argparse.Namespace, out: Output) -> int:
    """`reflowc serve FILE`: hosts the flow's queues until Ctrl-C or until every
    stage has ended; prints the bound endpoint on stdout. 0 when the job ended by
    itself, 130 when a Ctrl-C stopped this server or a worker's sources."""
    plan = compiled_plan(args, out, "no queues to serve")
    if plan is None:
        return 1
    keys = curve.load_server(args.keys) if args.keys else None

    def ready(endpoint: str) -> None:
        print(endpoint, file=out.stdout, flush=True)
        _say(out, f"serving the queues of flow `{plan.flow}` at {endpoint}")

    interrupted = False

    def on_stop() -> None:
        nonlocal interrupted
        interrupted = True

    def stopped_early(workers: Sequence[str]) -> None:
        _say(
            out,
            f"flow `{plan.flow}` was stopped early by {', '.join(workers)}: a Ctrl-C "
            "or SIGTERM ended its sources, and what they had read was drained",
        )

    status = asyncio.run(
        serve_queues(
            plan,
            args.bind,
            keys=keys,
            on_ready=ready,
            until_finished=True,
            on_signal=on_stop,
            on_interrupted=stopped_early,
        )
    )
    return INTERRUPTED if interrupted or status == EXIT_INTERRUPTED else status


def worker(args: argparse.Namespace, out: Output) -> int:
    """`reflowc worker FILE --connect ADDR [--stage NAME ...]`: runs stages of the
    flow against a queue server; 0 when they ended, 1 on failure, 130 on Ctrl-C."""
    plan = compiled_plan(args, out, "nothing to run")
    if plan is None:
        return 1
    try:
        units_of(plan, args.stages or None)
    except PlanError as exc:
        raise UsageError(str(exc)) from None
    keys = curve.load_client(args.keys) if args.keys else None

    def failed(message: str) -> None:
        out.error(f"flow `{plan.flow}` failed: {message}")

    status = asyncio.run(
        run_worker(
            plan,
            args.connect,
            args.stages or None,
            keys=keys,
            timeout=args.timeout,
            on_failure=failed,
            interrupted=INTERRUPTED,
        )
    )
    return status if status in (EXIT_OK, INTERRUPTED) else 1


def keys(args: argparse.Namespace, out: Output) -> int:
    """`reflowc keys DIR`: writes a server and a client CURVE key pair into DIR."""
    folder = Path(args.directory)
    curve.generate(folder)
    _say(
        out,
        f"wrote CURVE keys into `{folder}`: give `server.key`, `server.key_secret` "
        "and `client.key` to the host that serves; `client.key`, "
        "`client.key_secret` and `server.key` to each host that runs workers",
    )
    return 0


def _say(out: Output, message: str) -> None:
    if not out.quiet:
        print(message, file=out.stderr, flush=True)

"""The processes of a job in process mode: the queue server and the workers.

Each role is an async function that runs one process's part and answers its exit
status: `EXIT_OK` when its part ended, `EXIT_FATAL` when the job failed for a reason
that restarting will not fix (a user error under `on_error = fail`, a plan error, the
queue server gone or restarted), after writing one JSON line `{"reflow-failure":
MESSAGE}` on stderr for the supervisor to relay. Anything else (an exception that
escapes, a signal) is a crash, which the supervisor answers with a restart.

The queue server writes JSON lines on stdout for its supervisor: first
`{"endpoint": ADDRESS}` once it is bound, then `{"queues": [...]}` statistics every
`STATISTICS_EVERY` seconds. A child started with `parent=PID` ends when that process
is gone (its parent pid changes), so that no process outlives a killed supervisor.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import sys
from collections.abc import Callable, Collection, Mapping
from typing import TYPE_CHECKING, Any

import setproctitle

from reflow_lang.errors import ReflowError
from reflow_lang.plan import Plan, Task
from reflow_lang.runtime.job import Job, memory_queues, units_of
from reflow_lang.runtime.queue import MemoryQueue, QueueStatistics
from reflow_lang.runtime.statistics import JobStatistics
from reflow_lang.runtime.transport.client import Connection
from reflow_lang.runtime.transport.server import QueueServer

if TYPE_CHECKING:
    from reflow_lang.runtime.transport.keys import ClientKeys, ServerKeys

logger = logging.getLogger(__name__)

EXIT_OK = 0
EXIT_FATAL = 3

# The key of the one JSON line a worker writes on stderr before `EXIT_FATAL`, and of
# the lines that report its stages' counters to the supervisor.
FAILURE_KEY = "reflow-failure"
COUNTERS_KEY = "reflow-counters"

# A stage's counters as a worker reports them, in this order.
COUNTERS = ("events_in", "events_out", "errors", "skipped", "retried", "dead_lettered")

# Seconds between two statistics lines of the queue server, and between two checks
# that the parent process is still there.
STATISTICS_EVERY = 0.25
PARENT_EVERY = 0.2

# The status of a child whose supervisor died: it stops at once, nothing to report to.
ORPHANED = 70

# Stop signals that arrived before the event loop took them over (see
# `catch_early_signals`).
_early: list[int] = []


def server_title(plan: Plan) -> str:
    """What `ps` shows for the queue server of `plan`."""
    return f"reflow queue-server {plan.flow}"


def worker_title(plan: Plan, units: Collection[tuple[Task, ...]]) -> str:
    """What `ps` shows for a worker process: the flow and its first unit's first stage.

    A process running every unit of the flow shows the flow alone; one running
    several, the first and how many more.
    """
    if len(units) == len(units_of(plan, None)):
        return f"reflow worker {plan.flow}"
    first = next(iter(units))[0].name
    more = f" +{len(units) - 1}" if len(units) > 1 else ""
    return f"reflow worker {plan.flow}/{first}{more}"


def failure_line(message: str) -> str:
    """The stderr line by which a worker tells the supervisor why the job failed."""
    return json.dumps({FAILURE_KEY: message})


def parse_failure(line: str) -> str | None:
    """The message of a failure line, or `None` for any other line."""
    data = _json_object(line)
    if data is not None and isinstance(data.get(FAILURE_KEY), str):
        return str(data[FAILURE_KEY])
    return None


def counters_line(statistics: JobStatistics) -> str:
    """The stderr line by which a worker reports its stages' counters."""
    rows = {
        stage.name: [getattr(stage, name) for name in COUNTERS]
        for stage in statistics.stages
    }
    return json.dumps({COUNTERS_KEY: rows})


def parse_counters(line: str) -> dict[str, dict[str, int]] | None:
    """The counters of a counters line, by stage; `None` for any other line."""
    data = _json_object(line)
    if data is None or not isinstance(data.get(COUNTERS_KEY), dict):
        return None
    return {
        stage: dict(zip(COUNTERS, values, strict=True))
        for stage, values in data[COUNTERS_KEY].items()
    }


def _json_object(line: str) -> dict[str, Any] | None:
    if not line.startswith("{"):
        return None
    try:
        data = json.loads(line)
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


# --- the queue server ---------------------------------------------------------------


async def serve_queues(
    plan: Plan,
    bind: str,
    *,
    keys: ServerKeys | None = None,
    on_ready: Callable[[str], None],
    on_tick: Callable[[Mapping[str, MemoryQueue]], None] | None = None,
    until_finished: bool = False,
    parent: int | None = None,
    on_signal: Callable[[], None] | None = None,
) -> int:
    """Hosts every queue of `plan` at `bind` until stopped (SIGTERM, SIGINT).

    Args:
        plan: the compiled flow.
        bind: the address to bind, e.g. `tcp://127.0.0.1:0` for any free port.
        keys: the server's CURVE keys (`transport.keys.ServerKeys`), or `None`.
        on_ready: called with the bound endpoint once clients may connect.
        on_tick: called with the queues every `STATISTICS_EVERY` seconds.
        until_finished: also stop once every queue is finished (see `finished`).
        parent: stop when this process is gone.
        on_signal: called when SIGTERM or SIGINT stops the server.
    """
    setproctitle.setproctitle(server_title(plan))
    queues = memory_queues(plan)
    server = QueueServer(queues, bind, keys=keys, fingerprint=plan.fingerprint())
    endpoint = await server.start()
    on_ready(endpoint)

    async def stop_on_signal() -> None:
        if on_signal is not None:
            on_signal()
        await server.stop()

    _stop_on_signals(stop_on_signal)
    if _early:
        await stop_on_signal()
    watchers = _watchers(parent)
    if on_tick is not None or until_finished:
        used = hops(plan) if until_finished else None
        watchers.append(asyncio.create_task(_tick(queues, on_tick, used, server.stop)))
    try:
        await server.serve_until_stopped()
    finally:
        for watcher in watchers:
            watcher.cancel()
        await server.stop()
    if on_tick is not None:
        on_tick(queues)  # the last word: what the queues hold at the end
    return EXIT_OK


def hops(plan: Plan) -> frozenset[str]:
    """The queues workers use: those read by the first stage of a unit. The others
    lie inside a fused chain (see `fusion`) and stay empty."""
    return frozenset(name for unit in units_of(plan, None) for name in unit[0].inputs)


def finished(queues: Mapping[str, MemoryQueue], used: Collection[str]) -> bool:
    """Every queue in `used` holds end-of-source and every consumer acknowledged it.

    A queue that saw end-of-source knows it: its resume point says `ended` for the
    producer's origin, and every consumer's commit reaching the tail means each has
    acted on it (a stage acknowledges end-of-source once it has forwarded it).
    """
    return all(_queue_finished(queues[name]) for name in used)


def _queue_finished(queue: MemoryQueue) -> bool:
    statistics = queue.statistics()
    return statistics.ended and all(
        offset >= statistics.tail for _, offset in statistics.committed
    )


async def _tick(
    queues: Mapping[str, MemoryQueue],
    on_tick: Callable[[Mapping[str, MemoryQueue]], None] | None,
    used: Collection[str] | None,
    stop: Callable[[], Any],
) -> None:
    # `used`: the queues whose end ends the server; `None` to serve until stopped.
    while True:
        if on_tick is not None:
            on_tick(queues)
        if used is not None and finished(queues, used):
            logger.info("every stage has ended; the queue server stops")
            await stop()
            return
        await asyncio.sleep(STATISTICS_EVERY)


def statistics_line(queues: Mapping[str, MemoryQueue]) -> str:
    """The queue server's statistics as one JSON line, for its supervisor."""
    rows = [queue.statistics().to_row() for queue in queues.values()]
    return json.dumps({"queues": rows})


def parse_statistics(data: Mapping[str, Any]) -> dict[str, QueueStatistics]:
    """The queue statistics of a line written by `statistics_line`, by queue."""
    queues = map(QueueStatistics.from_row, data["queues"])
    return {queue.name: queue for queue in queues}


# --- a worker -----------------------------------------------------------------------


async def run_worker(
    plan: Plan,
    address: str,
    stages: Collection[str] | None,
    *,
    keys: ClientKeys | None = None,
    timeout: float = 10.0,
    parent: int | None = None,
    stopped: bool = False,
    on_failure: Callable[[str], None] | None = None,
    interrupted: int = EXIT_OK,
) -> int:
    """Runs the units of `plan` holding `stages` (all if `None`) against the queue
    server at `address`; answers the exit status (see the module docstring).

    SIGTERM and SIGINT stop the sources (what is in flight drains); a second one
    aborts; `stopped` stops the sources from the start (a source restarted after
    the job was told to stop). Every error that restarting cannot fix is written as
    failure line on stderr, or given to `on_failure`. A job stopped by a signal that
    drained ends with status `interrupted`.
    """
    report = on_failure or _print_failure
    try:
        units = units_of(plan, stages)
    except ReflowError as exc:
        report(str(exc))
        return EXIT_FATAL
    setproctitle.setproctitle(worker_title(plan, units))

    connection = Connection(
        address,
        timeout=timeout,
        unreachable_after=3 * timeout,
        keys=keys,
        fingerprint=plan.fingerprint(),
    )
    try:
        await connection.connect()
        queues = {
            queue.name: connection.queue(queue.name, stage=queue.producer)
            for queue in plan.queues
        }
        job = Job(plan, queues=queues, stages=stages, recover=True)
        if stopped:
            job.stop()
        result = await _run_job(job, parent)
    except ReflowError as exc:
        await _close_quietly(connection)
        report(str(exc))
        return EXIT_FATAL
    try:
        await connection.close()  # a put still in flight may fail here
    except ReflowError as exc:
        if result.error is None:
            report(str(exc))
            return EXIT_FATAL
    if result.error is not None:
        logger.debug("the job failed here", exc_info=result.error)
        report(str(result.error))
        return EXIT_FATAL
    return interrupted if result.interrupted and not stopped else EXIT_OK


async def _close_quietly(connection: Connection) -> None:
    # The job already failed: its error is the one to tell, not a later one of
    # the same connection.
    try:
        await connection.close()
    except ReflowError as exc:
        logger.debug("closing the connection failed too: %s", exc)


def _print_failure(message: str) -> None:
    print(failure_line(message), file=sys.stderr, flush=True)


def catch_early_signals() -> None:
    """Remembers SIGTERM and SIGINT until a worker's loop handles them itself, so
    that a worker told to stop while it starts stops instead of dying."""
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda number, frame: _early.append(number))


async def _report_counters(job: Job) -> None:
    # Only the worker knows what its error policies did; the supervisor shows it.
    while True:
        print(counters_line(job.statistics()), file=sys.stderr, flush=True)
        await asyncio.sleep(STATISTICS_EVERY)


async def _run_job(job: Job, parent: int | None) -> Any:
    presses = 0

    def on_signal() -> None:
        nonlocal presses
        presses += 1
        if presses == 1:
            job.stop()
        else:
            job.abort()

    _stop_on_signals(on_signal)
    for _ in _early:
        on_signal()
    # Under a supervisor (`parent`), the counters go to it; alone, nobody reads them.
    watchers = _watchers(parent)
    if parent is not None:
        watchers.append(asyncio.create_task(_report_counters(job)))
    try:
        return await job.run()
    finally:
        for watcher in watchers:
            watcher.cancel()
        if parent is not None:
            print(counters_line(job.statistics()), file=sys.stderr, flush=True)


# --- shared -------------------------------------------------------------------------


def _watchers(parent: int | None) -> list[asyncio.Task[None]]:
    if parent is None:
        return []
    return [asyncio.create_task(_watch_parent(parent))]


def _stop_on_signals(action: Callable[[], Any]) -> None:
    loop = asyncio.get_running_loop()

    def handler() -> None:
        result = action()
        if asyncio.iscoroutine(result):
            loop.create_task(result)

    for signum in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(signum, handler)


async def _watch_parent(parent: int) -> None:
    # A supervisor killed with SIGKILL runs no `finally`: its children notice that
    # they were handed to another parent and end at once.
    while True:
        if os.getppid() != parent:
            # Whoever read our stderr is likely gone with the supervisor.
            with contextlib.suppress(OSError):
                print(
                    f"reflow: the supervisor (pid {parent}) is gone; stopping",
                    file=sys.stderr,
                    flush=True,
                )
            os._exit(ORPHANED)
        await asyncio.sleep(PARENT_EVERY)

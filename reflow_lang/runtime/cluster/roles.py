"""The processes of a job in process mode: the queue server and the workers.

Each role is an async function that runs one process's part and answers its exit
status: `EXIT_OK` when its part ended, `EXIT_FATAL` when the job failed for a reason
that restarting will not fix (a user error under `on_error = fail`, a plan error, the
queue server gone or restarted), after writing one JSON line `{"reflow-failure":
MESSAGE, "traceback": TEXT}` on stderr for the supervisor to relay. Anything else (an
exception that escapes, a signal) is a crash, which the supervisor answers with a
restart; an exception that escapes is told first in a line `{"reflow-crash": SUMMARY,
"traceback": TEXT}` (see `crash_line`).

A worker stopped by SIGTERM or SIGINT while it runs a source tells the queue server
first (its `interrupted` request, naming the worker), so that `reflowc serve` knows
the job did not end by itself.

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
import socket
import sys
import traceback
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
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

# The status of a worker whose Python code raised what nobody caught: a crash.
EXIT_CRASH = 1

# The status of `reflowc serve` when a worker stopped the job early, as a shell gives
# a command ended by SIGINT (128 + 2).
EXIT_INTERRUPTED = 130

# The key of the one JSON line a worker writes on stderr before `EXIT_FATAL`, of the
# one before `EXIT_CRASH`, of the traceback both carry, and of the lines that report
# its stages' counters to the supervisor.
FAILURE_KEY = "reflow-failure"
CRASH_KEY = "reflow-crash"
TRACEBACK_KEY = "traceback"
COUNTERS_KEY = "reflow-counters"

# The request by which a stopped worker tells the queue server (see the docstring).
INTERRUPTED_VERB = "interrupted"

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


@dataclass(frozen=True, slots=True)
class Report:
    """What a worker's failure or crash line says: the message, and the Python
    traceback of the error (`None` when it had none)."""

    message: str
    traceback: str | None = None


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


def failure_line(message: str, traceback_text: str | None = None) -> str:
    """The stderr line by which a worker tells the supervisor why the job failed."""
    return json.dumps({FAILURE_KEY: message, TRACEBACK_KEY: traceback_text})


def crash_line(error: BaseException) -> str:
    """The stderr line by which a worker tells the supervisor what made it crash."""
    summary = f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
    return json.dumps({CRASH_KEY: summary, TRACEBACK_KEY: format_traceback(error)})


def parse_failure(line: str) -> Report | None:
    """What a failure line says, or `None` for any other line."""
    return _parse_report(line, FAILURE_KEY)


def parse_crash(line: str) -> Report | None:
    """What a crash line says, or `None` for any other line."""
    return _parse_report(line, CRASH_KEY)


def format_traceback(error: BaseException) -> str:
    """`error`'s traceback with its causes, as Python prints it."""
    return "".join(traceback.format_exception(error))


def _parse_report(line: str, key: str) -> Report | None:
    data = _json_object(line)
    if data is None or not isinstance(data.get(key), str):
        return None
    text = data.get(TRACEBACK_KEY)
    return Report(str(data[key]), text if isinstance(text, str) else None)


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
    on_interrupted: Callable[[Sequence[str]], None] | None = None,
) -> int:
    """Hosts every queue of `plan` at `bind` until stopped (SIGTERM, SIGINT).

    Answers `EXIT_INTERRUPTED` when a worker said it stopped its sources early (a
    Ctrl-C or SIGTERM to it), else `EXIT_OK`.

    Args:
        plan: the compiled flow.
        bind: the address to bind, e.g. `tcp://127.0.0.1:0` for any free port.
        keys: the server's CURVE keys (`transport.keys.ServerKeys`), or `None`.
        on_ready: called with the bound endpoint once clients may connect.
        on_tick: called with the queues every `STATISTICS_EVERY` seconds.
        until_finished: also stop once every queue is finished (see `finished`).
        parent: stop when this process is gone.
        on_signal: called when SIGTERM or SIGINT stops the server.
        on_interrupted: called at the end with the workers that stopped the job
            early, as they named themselves, if any did.
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
    if not server.interrupted:
        return EXIT_OK
    if on_interrupted is not None:
        on_interrupted(tuple(server.interrupted))
    return EXIT_INTERRUPTED


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
    debug: bool = False,
) -> int:
    """Runs the units of `plan` holding `stages` (all if `None`) against the queue
    server at `address`; answers the exit status (see the module docstring).

    SIGTERM and SIGINT stop the sources (what is in flight drains; a worker running
    a source tells the queue server first); a second one aborts; `stopped` stops the
    sources from the start (a source restarted after the job was told to stop).
    Every error that restarting cannot fix is written as failure line on stderr,
    with its traceback, or given to `on_failure`. A job stopped by a signal that
    drained ends with status `interrupted`. `debug` logs every worker's lifecycle.
    """
    try:
        units = units_of(plan, stages)
    except ReflowError as exc:
        return _failed(exc, on_failure)
    title = worker_title(plan, units)
    setproctitle.setproctitle(title)

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
        job = Job(plan, queues=queues, stages=stages, recover=True, debug=debug)
        if stopped:
            job.stop()
        result = await _run_job(job, parent, _teller(connection, title, units))
    except ReflowError as exc:
        await _close_quietly(connection)
        return _failed(exc, on_failure)
    try:
        await connection.close()  # a put still in flight may fail here
    except ReflowError as exc:
        if result.error is None:
            return _failed(exc, on_failure)
    if result.error is not None:
        logger.debug("the job failed here", exc_info=result.error)
        return _failed(result.error, on_failure)
    return interrupted if result.interrupted and not stopped else EXIT_OK


def _failed(error: BaseException, on_failure: Callable[[str], None] | None) -> int:
    # Told once, here: with its traceback for the supervisor, which shows it on
    # request (`reflowc run --processes --debug`).
    if on_failure is not None:
        on_failure(str(error))
    else:
        line = failure_line(str(error), format_traceback(error))
        print(line, file=sys.stderr, flush=True)
    return EXIT_FATAL


def _teller(
    connection: Connection, title: str, units: Collection[tuple[Task, ...]]
) -> Callable[[], None]:
    # What a first signal does before it stops the sources: a worker that runs
    # one tells the queue server who it is; the others stop nothing early.
    who = (
        f"{title.removeprefix('reflow ')} (pid {os.getpid()} on {socket.gethostname()})"
    )

    def tell() -> None:
        if any(task.kind == "source" for unit in units for task in unit):
            _tell_interrupted(connection, who)

    return tell


def _tell_interrupted(connection: Connection, who: str) -> None:
    # Sent before the sources are stopped, so that it reaches the queue server before
    # their ends do: a server that saw every queue end may stop at once.
    try:
        reply = connection.submit(INTERRUPTED_VERB, None, [who])
    except ReflowError as exc:
        logger.warning("cannot tell the queue server that this worker stops: %s", exc)
        return

    def told(done: asyncio.Future[list[Any]]) -> None:
        if done.cancelled():
            return
        try:
            connection.answer(done.result(), INTERRUPTED_VERB, None)
        except (ReflowError, ValueError, KeyError) as exc:
            logger.warning(
                "the queue server was not told that this worker stops: %s", exc
            )

    reply.add_done_callback(told)


async def _close_quietly(connection: Connection) -> None:
    # The job already failed: its error is the one to tell, not a later one of
    # the same connection.
    try:
        await connection.close()
    except ReflowError as exc:
        logger.debug("closing the connection failed too: %s", exc)


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


async def _run_job(job: Job, parent: int | None, on_stop: Callable[[], None]) -> Any:
    presses = 0

    def on_signal() -> None:
        nonlocal presses
        presses += 1
        if presses == 1:
            on_stop()
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

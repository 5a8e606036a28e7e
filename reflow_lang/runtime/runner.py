"""Running a plan to completion in a new event loop, as `reflowc run` does.

SIGINT and SIGTERM are handled the way a user expects of Ctrl-C: the first stops
the sources so that the job drains and ends cleanly; the second aborts it.
`run_processes` does the same for a job run as OS processes (`cluster.Supervisor`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

from reflow_lang.errors import PlanError
from reflow_lang.plan import Plan
from reflow_lang.runtime.job import Job
from reflow_lang.runtime.statistics import JobResult, JobStatistics

if TYPE_CHECKING:
    from reflow_lang.runtime.cluster import Supervisor

logger = logging.getLogger(__name__)


class Stoppable(Protocol):
    """What Ctrl-C acts on: a `Job`, or a `Supervisor` of processes."""

    def stop(self) -> None:
        """Ends the sources; the job drains."""

    def abort(self) -> None:
        """Ends everything now."""

    def statistics(self) -> JobStatistics:
        """A snapshot of the job."""
        ...


def run(
    plan: Plan,
    *,
    on_tick: Callable[[JobStatistics], None] | None = None,
    tick: float = 0.25,
    handle_signals: bool = True,
    debug: bool = False,
) -> JobResult:
    """Runs `plan` in a new event loop until it ends, is stopped or fails.

    Args:
        plan: the compiled flow.
        on_tick: called with a statistics snapshot every `tick` seconds.
        tick: seconds between two calls of `on_tick`.
        handle_signals: handle SIGINT/SIGTERM (once: stop, twice: abort); only
            possible in the main thread.
        debug: run the event loop in debug mode and log worker lifecycles.

    Returns:
        How the job ended; a plan this runtime cannot run gives a result whose
        `error` is a `PlanError` (nothing is started).
    """
    try:
        job = Job(plan, debug=debug)
    except PlanError as exc:
        return _refused(plan, exc)
    return asyncio.run(_main(job, on_tick, tick, handle_signals), debug=debug)


async def _main(
    job: Job,
    on_tick: Callable[[JobStatistics], None] | None,
    tick: float,
    handle_signals: bool,
) -> JobResult:
    loop = asyncio.get_running_loop()
    installed = _install_signals(loop, job) if handle_signals else []
    ticker = asyncio.create_task(_tick(job, on_tick, tick)) if on_tick else None
    try:
        return await job.run()
    finally:
        if ticker is not None:
            ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await ticker
        for signum in installed:
            loop.remove_signal_handler(signum)


def run_processes(
    plan: Plan,
    *,
    restarts: int = 3,
    timeout: float = 10.0,
    stall_after: float = 30.0,
    on_tick: Callable[[JobStatistics], None] | None = None,
    handle_signals: bool = True,
    debug: bool = False,
) -> JobResult:
    """Runs `plan` as OS processes on this host (see `cluster.Supervisor`), with
    the same signal handling and result as `run`.

    Args:
        plan: the compiled flow.
        restarts: restarts allowed per worker unit before the job fails.
        timeout: the transport's request timeout, in seconds.
        stall_after: seconds without progress before a warning says what is stuck.
        on_tick: called with a statistics snapshot at each report of the queues.
        handle_signals: handle SIGINT/SIGTERM (once: drain, twice: kill).
        debug: run the event loops in debug mode, here and in the workers, and
            log a crashed worker's traceback with its restart.
    """
    from reflow_lang.runtime.cluster import Supervisor

    try:
        supervisor = Supervisor(
            plan,
            restarts=restarts,
            timeout=timeout,
            stall_after=stall_after,
            on_tick=on_tick,
            debug=debug,
        )
    except PlanError as exc:
        return _refused(plan, exc)
    return asyncio.run(_supervise(supervisor, handle_signals), debug=debug)


async def _supervise(supervisor: Supervisor, handle_signals: bool) -> JobResult:
    loop = asyncio.get_running_loop()
    installed = _install_signals(loop, supervisor) if handle_signals else []
    try:
        return await supervisor.run()
    finally:
        for signum in installed:
            loop.remove_signal_handler(signum)


def _install_signals(loop: asyncio.AbstractEventLoop, job: Stoppable) -> list[int]:
    if threading.current_thread() is not threading.main_thread():
        return []
    presses = 0

    def on_signal() -> None:
        nonlocal presses
        presses += 1
        if presses == 1:
            logger.info("stopping: the sources end and what is in flight drains")
            job.stop()
        else:
            logger.info("aborting")
            job.abort()

    installed: list[int] = []
    for signum in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(signum, on_signal)
        except (NotImplementedError, RuntimeError):  # pragma: no cover - not on Unix
            continue
        installed.append(signum)
    return installed


async def _tick(
    job: Job, on_tick: Callable[[JobStatistics], None], tick: float
) -> None:
    while True:
        on_tick(job.statistics())
        await asyncio.sleep(tick)


def _refused(plan: Plan, error: PlanError) -> JobResult:
    return JobResult(
        ok=False,
        interrupted=False,
        aborted=False,
        error=error,
        statistics=JobStatistics(plan.flow, 0.0, ()),
    )

"""The supervisor of a job in process mode: one queue server and a process per unit.

`Supervisor.run` starts the queue server (`roles.serve_queues`) on a free loopback
port, then one worker process per worker unit (`fusion.fuse`), handing each the plan
as JSON on a pipe of its own (no file: nothing is left behind by a supervisor that
is killed), and watches them as asyncio subprocesses:

- a worker that exits 0 has ended its stages; once all have, the queue server is
  stopped and the job is ok;
- a worker that exits `EXIT_FATAL` failed the job for a reason a restart cannot fix:
  everything is stopped and its message is the job's error;
- any other end (a crash, a signal) restarts the worker, up to `restarts` times per
  unit; one more and the job fails, naming the stage, how it ended, the restarts and
  the last lines it wrote on stderr;
- a failure's or a crash's Python traceback, which the worker reports with it, is
  kept in the `ProcessFailure` (and, with `debug`, logged with each restart);
- the queue server ending before the job fails the job.

`stop` (a first Ctrl-C) sends SIGTERM to the source workers, which stop their
sources: the job drains. `abort` (a second) kills everything. Whatever happens, no
child is left alive when `run` returns: children run in their own session (the
terminal's Ctrl-C reaches only the supervisor) and also watch the supervisor's pid.
Children are signalled with `os.kill` and reaped by asyncio alone: `Popen`'s own
methods poll, and a poll that reaps a child before asyncio's watcher does makes it
report "Unknown child process pid" and an exit status of 255.

Progress comes from the queue server's statistics lines: per-stage events and queue
depths, plus restarts per unit. When nothing moves for `stall_after` seconds, a
warning names the full queues and the consumers that have not moved (and the job
keeps waiting: a slow user function is legal).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import sys
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from reflow_lang.errors import ReflowError
from reflow_lang.plan import Plan, Task
from reflow_lang.runtime.cluster.roles import (
    EXIT_FATAL,
    EXIT_OK,
    Report,
    hops,
    parse_counters,
    parse_crash,
    parse_failure,
    parse_statistics,
)
from reflow_lang.runtime.job import check_supported, units_of
from reflow_lang.runtime.queue import QueueStatistics
from reflow_lang.runtime.statistics import (
    JobResult,
    JobStatistics,
    RateMeter,
    StageStatistics,
)
from reflow_lang.runtime.view import format_duration

logger = logging.getLogger(__name__)

# Lines of a worker's stderr kept to explain its end.
STDERR_KEPT = 10

# Seconds the queue server has to report its endpoint, and the processes to end
# after SIGTERM before they are killed.
START_TIMEOUT = 30.0
STOP_TIMEOUT = 5.0

# Seconds a job that has moved no event yet may take to start before it is stalled.
STARTUP_GRACE = 10.0


class ProcessFailure(ReflowError):
    """The job failed in process mode: a worker's error, or one the supervisor saw.

    Attributes:
        traceback: the Python traceback of the error in the worker, as it printed
            it; `None` when there was none (a worker killed by a signal).
    """

    def __init__(self, message: str, traceback: str | None = None) -> None:
        super().__init__(message)
        self.traceback = traceback


class _Unit:
    """One worker unit: its stages, its process, and how often it was restarted."""

    __slots__ = (
        "counters",
        "crash",
        "done",
        "earlier",
        "name",
        "process",
        "reader",
        "restarts",
        "source",
        "stderr",
        "tasks",
    )

    def __init__(self, tasks: tuple[Task, ...]) -> None:
        self.tasks = tasks
        self.name = tasks[0].name
        self.source = tasks[0].kind == "source"
        self.process: asyncio.subprocess.Process | None = None
        self.reader: asyncio.Task[None] | None = None  # relays its stderr
        self.restarts = 0
        self.done = False
        self.stderr: deque[str] = deque(maxlen=STDERR_KEPT)
        self.crash: Report | None = None  # what its process said it crashed of
        # What its process reported of its stages' counters, and the sum of what
        # the processes before it (restarted away) had reported.
        self.counters: dict[str, dict[str, int]] = {}
        self.earlier: dict[str, dict[str, int]] = {}

    def restarted(self) -> None:
        """Keeps the counters of the process that ended, for the next to add to."""
        for stage, counters in self.counters.items():
            earlier = self.earlier.setdefault(stage, {})
            for name, value in counters.items():
                earlier[name] = earlier.get(name, 0) + value
        self.counters = {}

    def counter(self, stage: str, name: str) -> int | None:
        """A stage's counter over every process of the unit; `None` if never told."""
        if stage not in self.counters and stage not in self.earlier:
            return None
        now = self.counters.get(stage, {}).get(name, 0)
        return now + self.earlier.get(stage, {}).get(name, 0)


class Supervisor:
    """Runs a plan as OS processes on this host; see the module docstring.

    Args:
        plan: the compiled flow.
        restarts: restarts allowed per unit before the job fails.
        timeout: the transport's request timeout, in seconds (a queue server that
            answers nothing for 3x this long is unreachable).
        stall_after: seconds without progress before a warning says what is stuck.
        python: the interpreter that runs the children.
        on_tick: called with a statistics snapshot each time the queue server
            reports (every quarter second).
        debug: run the workers in debug mode (asyncio's, and worker lifecycles
            logged), and log a crashed worker's traceback with its restart.

    Raises:
        PlanError: the plan has a stage this runtime cannot run.
    """

    def __init__(
        self,
        plan: Plan,
        *,
        restarts: int = 3,
        timeout: float = 10.0,
        stall_after: float = 30.0,
        python: str = sys.executable,
        on_tick: Callable[[JobStatistics], None] | None = None,
        debug: bool = False,
    ) -> None:
        check_supported(plan)
        self.plan = plan
        self.debug = debug
        self.restarts = restarts
        self.timeout = timeout
        self.stall_after = stall_after
        self.python = python
        self.on_tick = on_tick
        self.units = [_Unit(unit) for unit in units_of(plan, None)]
        self._hops = hops(plan)
        self._server: asyncio.subprocess.Process | None = None
        self._endpoint = ""
        self._plan_json = plan.to_json().encode("utf-8")
        self._queues: dict[str, QueueStatistics] = {}
        self._started = time.monotonic()
        self._changed = self._started  # when the statistics last moved
        self._warned = False
        self._wake = asyncio.Event()
        self._stopped = False
        self._aborted = False
        self._error: ReflowError | None = None
        self._readers: list[asyncio.Task[None]] = []
        self._statistics: asyncio.Task[None] | None = None
        self._rates = {task.name: RateMeter(time.monotonic) for task in plan.tasks}

    # Control, from signal handlers.

    def stop(self) -> None:
        """Stops the sources (SIGTERM to their workers); the job drains and ends."""
        self._stopped = True
        for unit in self.units:
            if unit.source:
                _signal(unit.process, signal.SIGTERM)

    def abort(self) -> None:
        """Kills every process now."""
        self._stopped = True
        self._aborted = True
        self._wake.set()

    # The run.

    async def run(self) -> JobResult:
        """Runs the job to its end; a failure is in the result, not raised."""
        self._started = self._changed = time.monotonic()
        try:
            await self._start_server()
            for unit in self.units:
                if self._aborted:
                    break  # a second Ctrl-C while they start: start no more
                await self._start(unit)
            await self._watch()
            if not self._aborted:
                # Its last statistics line, also after a failure, makes the summary.
                await self._stop_server()
        except ReflowError as exc:
            self._error = exc
        finally:
            await self._kill_all()
        return self._result()

    def statistics(self) -> JobStatistics:
        """A snapshot built from the queue server's last report."""
        return JobStatistics(
            flow=self.plan.flow,
            elapsed=time.monotonic() - self._started,
            stages=tuple(
                self._stage(task, unit) for unit in self.units for task in unit.tasks
            ),
        )

    def _result(self) -> JobResult:
        return JobResult(
            ok=self._error is None and not self._aborted,
            interrupted=self._stopped,
            aborted=self._aborted,
            error=self._error,
            statistics=self.statistics(),
        )

    # The queue server.

    async def _start_server(self) -> None:
        self._server = await self._spawn(
            "queue-server",
            "--bind",
            "tcp://127.0.0.1:0",
            stdout=asyncio.subprocess.PIPE,
        )
        lines: deque[str] = deque(maxlen=STDERR_KEPT)
        relay = asyncio.create_task(self._relay(self._server, lines))
        self._readers.append(relay)
        self._endpoint = await self._endpoint_of(self._server, lines, relay)
        self._statistics = asyncio.create_task(self._read_statistics(self._server))
        self._readers.append(self._statistics)

    async def _endpoint_of(
        self,
        server: asyncio.subprocess.Process,
        lines: deque[str],
        relay: asyncio.Task[None],
    ) -> str:
        assert server.stdout is not None
        try:
            line = await asyncio.wait_for(server.stdout.readline(), START_TIMEOUT)
        except TimeoutError:
            line = b""
        try:
            return str(json.loads(line)["endpoint"])
        except (ValueError, KeyError, TypeError):
            if server.returncode is None:
                _kill_group(server)  # silent for START_TIMEOUT: it will not start
            await server.wait()
            await asyncio.wait([relay], timeout=STOP_TIMEOUT)
            if self._error is not None:
                raise self._error from None  # the failure line it wrote
            said = "; ".join(lines) or "nothing"
            msg = (
                f"the queue server of flow `{self.plan.flow}` did not start "
                f"(exit status {server.returncode}); it said: {said}"
            )
            raise ProcessFailure(msg) from None

    async def _read_statistics(self, server: asyncio.subprocess.Process) -> None:
        assert server.stdout is not None
        while line := await server.stdout.readline():
            try:
                queues = parse_statistics(json.loads(line))
            except (ValueError, KeyError, TypeError):
                continue  # not a statistics line
            self._note(queues)
            if self.on_tick is not None:
                self.on_tick(self.statistics())

    async def _stop_server(self) -> None:
        server = self._server
        if server is None or server.returncode is not None:
            return
        _signal(server, signal.SIGTERM)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(server.wait(), STOP_TIMEOUT)
        if self._statistics is not None:
            # Its last statistics line, written as it stopped, makes the summary.
            await asyncio.wait([self._statistics], timeout=STOP_TIMEOUT)

    # The workers.

    async def _start(self, unit: _Unit) -> None:
        stages = [arg for task in unit.tasks for arg in ("--stage", task.name)]
        # A source restarted after a first Ctrl-C starts stopped: it only ends.
        stopped = self._stopped and unit.source
        # What its last process said: the one before it ended, and was judged.
        unit.crash = None
        unit.stderr.clear()
        unit.process = await self._spawn(
            "worker",
            "--connect",
            self._endpoint,
            "--timeout",
            str(self.timeout),
            *stages,
            *(["--stopped"] if stopped else []),
            *(["--debug"] if self.debug else []),
        )
        if self._stopped and unit.source and not stopped:
            # A Ctrl-C came while it was being started, and `stop` found no process
            # to tell: told now, it stops as it starts.
            _signal(unit.process, signal.SIGTERM)
        unit.reader = asyncio.create_task(self._relay(unit.process, unit.stderr, unit))
        self._readers.append(unit.reader)

    async def _spawn(
        self, role: str, *args: str, stdout: int | None = None
    ) -> asyncio.subprocess.Process:
        level = logging.getLevelName(logging.getLogger().getEffectiveLevel())
        # The plan goes on a pipe the child inherits, not on its stdin, which stays
        # ours: a source may read `"-"`.
        plan, feed = os.pipe()
        try:
            process = await self._exec(
                self.python,
                "-m",
                "reflow_lang.runtime.cluster",
                role,
                "--plan-fd",
                str(plan),
                "--parent",
                str(os.getpid()),
                "--log-level",
                str(level),
                *args,
                stdout=stdout,
                stderr=asyncio.subprocess.PIPE,
                pass_fds=(plan,),
                # Its own session: the terminal's Ctrl-C reaches only the
                # supervisor, which decides what each child is told.
                start_new_session=True,
            )
        except BaseException:
            os.close(feed)
            raise
        finally:
            os.close(plan)
        # Written while the child reads: a plan larger than the pipe's buffer
        # would block a write made before it started.
        await asyncio.to_thread(_write_all, feed, self._plan_json)
        return process

    async def _exec(self, *command: str, **options: Any) -> asyncio.subprocess.Process:
        try:
            return await asyncio.create_subprocess_exec(*command, **options)
        except OSError as exc:  # the interpreter is missing, or no process is left
            msg = f"cannot start a process of flow `{self.plan.flow}`: {exc}"
            raise ProcessFailure(msg) from exc

    async def _relay(
        self,
        process: asyncio.subprocess.Process,
        lines: deque[str],
        unit: _Unit | None = None,
    ) -> None:
        # A child's stderr: its failure line becomes the job's error, its counters
        # lines the unit's counters; the rest is passed on to ours, and its last
        # lines are kept to explain a crash.
        assert process.stderr is not None
        while raw := await process.stderr.readline():
            line = raw.decode("utf-8", "replace").rstrip()
            failure = parse_failure(line)
            if failure is not None:
                self._fail(ProcessFailure(failure.message, failure.traceback))
                continue
            crash = parse_crash(line)
            if crash is not None:
                # Its traceback is kept, and shown on request; its summary is the
                # last word of a worker that ends by it.
                if unit is not None:
                    unit.crash = crash
                lines.append(crash.message)
                continue
            counters = parse_counters(line)
            if counters is not None:
                if unit is not None:
                    unit.counters = counters
                continue
            lines.append(line)
            # Passed on as it is: a child logs as `reflowc` does, and its records
            # name their stage.
            print(line, file=sys.stderr, flush=True)

    async def _watch(self) -> None:
        while self._error is None and not self._aborted:
            if all(unit.done for unit in self.units):
                return
            waits = {
                asyncio.ensure_future(unit.process.wait()): unit
                for unit in self.units
                if unit.process is not None and not unit.done
            }
            server = asyncio.ensure_future(self._server_wait())
            woken = asyncio.ensure_future(self._wake.wait())
            try:
                done, _ = await asyncio.wait(
                    [*waits, server, woken],
                    timeout=self.stall_after / 4 if self.stall_after else None,
                    return_when=asyncio.FIRST_COMPLETED,
                )
            finally:
                for future in (*waits, server, woken):
                    future.cancel()
            self._check_stall()
            for future in done:
                if future is server:
                    self._server_gone()
                elif future in waits:
                    await self._ended(waits[future])

    async def _server_wait(self) -> int:
        assert self._server is not None
        return await self._server.wait()

    def _server_gone(self) -> None:
        assert self._server is not None
        status = _describe(self._server.returncode)
        msg = f"the queue server of flow `{self.plan.flow}` ended ({status})"
        self._fail(ProcessFailure(msg))

    async def _ended(self, unit: _Unit) -> None:
        assert unit.process is not None
        status = await unit.process.wait()
        if unit.reader is not None:
            # Its last lines (a failure line) are read before its end is judged.
            await asyncio.wait([unit.reader], timeout=STOP_TIMEOUT)
        if status == EXIT_OK:
            unit.done = True
            logger.info("worker `%s` ended", unit.name)
            return
        if status == EXIT_FATAL or self._error is not None:
            if self._error is None:
                self._fail(ProcessFailure(self._crash(unit, status, gave_up=False)))
            return
        if self._stopped and unit.source and status == -signal.SIGTERM:
            # Our own stop reached it before it could handle it (it was starting):
            # not a crash. Started again, stopped, it ends its stream.
            logger.info("worker `%s` was stopped while it started", unit.name)
            await self._start(unit)
            return
        if unit.restarts >= self.restarts:
            self._fail(self._crash_failure(unit, status))
            return

        unit.restarts += 1
        unit.restarted()
        crash, shown = unit.crash, ""
        if crash is not None and self.debug and crash.traceback:
            shown = "\n" + crash.traceback.rstrip()
        logger.warning(
            "worker `%s` %s (%s); restarting it (%d of %d)%s",
            unit.name,
            "ended" if crash is None else f"raised {crash.message}",
            _describe(status),
            unit.restarts,
            self.restarts,
            shown,
        )
        await self._start(unit)

    def _crash_failure(self, unit: _Unit, status: int) -> ProcessFailure:
        message = self._crash(unit, status, gave_up=True)
        return ProcessFailure(message, unit.crash.traceback if unit.crash else None)

    def _crash(self, unit: _Unit, status: int, *, gave_up: bool) -> str:
        said = " | ".join(line for line in unit.stderr if line.strip()) or "nothing"
        if gave_up:
            restarts = f"{unit.restarts} restart{'s' if unit.restarts != 1 else ''}"
            what = (
                f"ended ({_describe(status)}) after {restarts}, the most allowed "
                f"(--restarts {self.restarts})"
            )
        else:
            what = f"failed ({_describe(status)})"
        return (
            f"the worker of stage `{unit.name}` {what}; its last words on stderr: "
            f"{said}"
        )

    def _fail(self, error: ReflowError) -> None:
        if self._error is None:
            self._error = error
        self._wake.set()

    # The end.

    async def _kill_all(self) -> None:
        processes = [unit.process for unit in self.units if unit.process is not None]
        if self._server is not None:
            processes.append(self._server)
        for process in processes:
            if process.returncode is None:
                _kill_group(process)
        for process in processes:
            with contextlib.suppress(ProcessLookupError):
                await process.wait()
        for reader in self._readers:
            reader.cancel()
        await asyncio.gather(*self._readers, return_exceptions=True)

    # Progress and stalls.

    def _note(self, queues: dict[str, QueueStatistics]) -> None:
        if _progress(self._queues) != _progress(queues):
            self._changed = time.monotonic()
            self._warned = False
        self._queues = queues

    def _check_stall(self) -> None:
        # Until the first event moves, the processes may still be starting: that
        # is a stall only after `STARTUP_GRACE` too.
        idle = time.monotonic() - self._changed
        started = any(queue.tail for queue in self._queues.values())
        patience = self.stall_after if started else max(self.stall_after, STARTUP_GRACE)
        if not self.stall_after or idle < patience or self._warned:
            return
        self._warned = True
        running = [unit.name for unit in self.units if not unit.done]
        logger.warning("%s", stall_message(self.plan.flow, idle, self._queues, running))

    def _stage(self, task: Task, unit: _Unit) -> StageStatistics:
        # Counted from the queues: what the unit's first stage acknowledged and
        # what its last one put. Between fused stages there is no queue (`-`, as
        # in a local run), and nothing to count from.
        queues = self._queues
        output = queues.get(task.output or "") if task.output in self._hops else None
        events_in = sum(_committed(queues.get(name), task.name) for name in task.inputs)
        events_out = output.events if output is not None else 0
        if task.kind == "source":
            events_in = events_out
        elif task.kind == "sink":
            events_out = events_in
        # Inside a fused chain no queue counts: the worker's counters do.
        if task.kind != "source" and not self._hops.intersection(task.inputs):
            events_in = unit.counter(task.name, "events_in") or 0
        if task.kind != "sink" and task.output not in self._hops:
            events_out = unit.counter(task.name, "events_out") or 0

        def counted(name: str) -> int:
            return unit.counter(task.name, name) or 0

        return StageStatistics(
            name=task.name,
            kind=task.kind,
            workers=task.workers,
            order=str(task.order),
            events_in=events_in,
            events_out=events_out,
            errors=counted("errors"),
            skipped=counted("skipped"),
            retried=counted("retried"),
            dead_lettered=counted("dead_lettered"),
            held=0,
            queue_depth=output.depth if output is not None else None,
            queue_capacity=output.capacity if output is not None else None,
            rate=self._rates[task.name].sample(events_out),
            restarts=unit.restarts if task is unit.tasks[0] else 0,
        )


def stall_message(
    flow: str,
    idle: float,
    queues: Mapping[str, QueueStatistics],
    running: Sequence[str] = (),
) -> str:
    """What a stalled job says: its full queues, the consumers that lag, and the
    workers not yet ended."""
    full = [
        f"`{q.name}` ({q.depth}/{q.capacity})"
        for q in queues.values()
        if q.depth >= q.capacity
    ]
    behind = [
        f"`{consumer}` on `{q.name}` (at {offset} of {q.tail})"
        for q in queues.values()
        for consumer, offset in q.committed
        if offset < q.tail
    ]
    message = (
        f"flow `{flow}` has made no progress for {format_duration(idle)}; "
        f"full queues: {', '.join(full) or 'none'}; "
        f"consumers behind: {', '.join(behind) or 'none'}"
    )
    if running:
        message += "; workers still running: " + ", ".join(f"`{n}`" for n in running)
    return message


def _progress(queues: Mapping[str, QueueStatistics]) -> list[object]:
    return [(q.tail, q.committed) for q in queues.values()]


def _committed(queue: QueueStatistics | None, consumer: str) -> int:
    return 0 if queue is None else queue.acknowledged(consumer)


def _describe(status: int | None) -> str:
    if status is None:
        return "still running"
    if status < 0:
        try:
            return f"killed by {signal.Signals(-status).name}"
        except ValueError:
            return f"killed by signal {-status}"
    return f"exit status {status}"


def _signal(process: asyncio.subprocess.Process | None, signum: int) -> None:
    # `os.kill`, not `Process.send_signal`: that polls, and may reap (see the module
    # docstring). An unreaped child keeps its pid, dead or not; asyncio's watcher
    # sets `returncode` one turn of the loop after it reaps, the one moment the pid
    # could be another's (as with any signal sent by pid).
    if process is not None and process.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(process.pid, signum)


def _kill_group(process: asyncio.subprocess.Process) -> None:
    # The child leads its own session and process group: kill the group, so that
    # whatever it started (a user function's subprocess) ends with it. Not
    # `Process.kill`, which polls (see `_signal`).
    if process.returncode is not None:
        return
    try:
        # No group left: the child has ended, and asyncio will know.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
    except PermissionError:
        _signal(process, signal.SIGKILL)  # a group member we may not signal


def _write_all(fd: int, data: bytes) -> None:
    # A child that ends before it has read the plan says why on stderr, and its
    # end is judged as any other: a broken pipe here has nothing to add.
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
    except BrokenPipeError:
        logger.debug("a child ended before it read the plan")
    finally:
        os.close(fd)

"""A job: a plan running in this process as asyncio workers linked by bounded queues.

`Job` builds one in-memory queue per plan queue and one worker per task, or per
fused chain of stateless tasks (see `fusion`), and runs them until end-of-source has
reached every sink. A user error ends the job with a result that carries it; `stop`
ends the sources so that what is in flight drains; `abort` cancels everything now.

In process mode (`reflow_lang.runtime.cluster`) a worker process runs a `Job` over
remote queues (`queues=`), for some of the plan's units only (`stages=`), and with
`recover=True`: before its workers start, each consumer attaches to its input queues
and restores what its first input saved (a join: what each saved), and each source
resumes after the events its output queue already holds.
"""

from __future__ import annotations

import asyncio
import difflib
import logging
import time
from collections.abc import Awaitable, Callable, Collection, Mapping
from typing import Any

from reflow_lang.errors import PlanError, ReflowError
from reflow_lang.plan import STAGE_KINDS, Plan, Task
from reflow_lang.runtime.chain import Chain, Link
from reflow_lang.runtime.dedup import guarded, remembering
from reflow_lang.runtime.functions import UserFunction, key_reader, resolve
from reflow_lang.runtime.fusion import STATELESS, fuse
from reflow_lang.runtime.join import Join, JoinInput
from reflow_lang.runtime.offload import Offload
from reflow_lang.runtime.policy import ErrorHandler
from reflow_lang.runtime.ports import QueueInput, QueueOutput
from reflow_lang.runtime.queue import EventQueue, MemoryQueue
from reflow_lang.runtime.rejoin import Rejoin, traced
from reflow_lang.runtime.sink import SinkOutput
from reflow_lang.runtime.source import SourceInput
from reflow_lang.runtime.statistics import (
    JobResult,
    JobStatistics,
    RateMeter,
    StageCounters,
    StageStatistics,
)
from reflow_lang.runtime.steps import Aggregate, Passthrough
from reflow_lang.runtime.worker import Worker

logger = logging.getLogger(__name__)

Sleep = Callable[[float], Awaitable[None]]


def check_supported(plan: Plan) -> None:
    """Raises `PlanError` for a plan this runtime cannot run: unknown kinds, repeated inputs."""
    for task in plan.tasks:
        if task.kind not in STAGE_KINDS:
            msg = (
                f"stage `{task.name}` at {task.location} has an unknown kind "
                f"`{task.kind}`"
            )
            raise PlanError(msg)
        _check_inputs_distinct(task)


def _check_inputs_distinct(task: Task) -> None:
    # A consumer has one cursor per queue: reading a queue twice would share it
    # between two inputs, and the job would never end.
    seen: set[str] = set()
    for name in task.inputs:
        if name in seen:
            msg = (
                f"stage `{task.name}` at {task.location} reads the queue `{name}` "
                f"twice; this runtime reads each queue once per stage"
            )
            raise PlanError(msg)
        seen.add(name)


def memory_queues(plan: Plan) -> dict[str, MemoryQueue]:
    """One in-memory queue per plan queue: a local job's, or a queue server's."""
    return {
        queue.name: MemoryQueue(
            queue.name,
            queue.capacity,
            queue.consumers,
            remember=remembering(plan, queue.name),
        )
        for queue in plan.queues
    }


def units_of(plan: Plan, stages: Collection[str] | None) -> list[tuple[Task, ...]]:
    """The worker units (see `fusion`) holding any of `stages`; all when `None`.

    Raises:
        PlanError: a stage named is not in the plan.
    """
    units = fuse(plan)
    if stages is None:
        return units
    known = [task.name for task in plan.tasks]
    unknown = sorted(set(stages) - set(known))
    if unknown:
        names = ", ".join(f"`{name}`" for name in unknown)
        close = difflib.get_close_matches(unknown[0], known, n=1)
        hint = (
            f"did you mean `{close[0]}`?"
            if close
            else "its stages: " + ", ".join(f"`{name}`" for name in known)
        )
        msg = f"flow `{plan.flow}` has no stage {names}; {hint}"
        raise PlanError(msg)
    return [unit for unit in units if any(task.name in stages for task in unit)]


class Job:
    """One run of a plan; see the module docstring.

    Args:
        plan: the compiled flow.
        queues: the queues to use, by name (remote ones in a worker process);
            `None` builds a `MemoryQueue` per plan queue.
        stages: run only the worker units holding these stages; `None` for all.
        recover: attach to the input queues and restore saved state, and resume
            the sources, before the workers start; steps track their changes.
        debug: log every worker's lifecycle (and run the loop in debug mode, via
            `run`).
        sleep: how retries and sink backoffs wait (tests pass a fake).
        clock: seconds, monotonic (tests pass a fake for timeouts and rates).

    Raises:
        PlanError: the plan has a stage this runtime cannot run.
    """

    def __init__(
        self,
        plan: Plan,
        *,
        queues: Mapping[str, EventQueue] | None = None,
        stages: Collection[str] | None = None,
        recover: bool = False,
        debug: bool = False,
        sleep: Sleep | None = None,
        clock: Callable[[], float] | None = None,
    ) -> None:
        check_supported(plan)
        self.plan = plan
        self.units = units_of(plan, stages)
        self.recover = recover
        self.debug = debug
        self._given = queues
        self._sleep: Sleep = sleep or asyncio.sleep
        self._clock = clock or time.monotonic
        self._started = self._clock()
        self._counters = {task.name: StageCounters() for task in plan.tasks}
        self._rates = {task.name: RateMeter(self._clock) for task in plan.tasks}
        self._queues: dict[str, EventQueue] = {}
        # By the first stage of a unit reading queues: its input, and the part of
        # it that keeps state (its step, or a sink's output).
        self._inputs: dict[str, QueueInput] = {}
        self._stateful: dict[str, Any] = {}
        self._workers: dict[str, Worker] = {}  # by the name of their last task
        self._concurrency = {task.name: 1 for task in plan.tasks}
        self._sources: list[SourceInput] = []
        self._offloads: list[Offload] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._stopped = False
        self._aborted = False

    def stop(self) -> None:
        """Ends the sources; what is in flight drains and the job ends."""
        self._stopped = True
        for source in self._sources:
            source.stop()

    def abort(self) -> None:
        """Cancels every worker now."""
        self._stopped = True
        self._aborted = True
        for task in self._tasks:
            task.cancel()

    async def run(self) -> JobResult:
        """Runs to completion; a user's error is in the result, not raised."""
        self._started = self._clock()
        try:
            await self._prepare()
        except ReflowError as exc:
            return self._result(exc)
        logger.info(
            "job `%s` starts: %d stages in %d workers",
            self.plan.flow,
            sum(len(unit) for unit in self.units),
            len(self._workers),
        )
        try:
            error = await self._supervise()
        finally:
            for offload in self._offloads:
                offload.close()
        result = self._result(error)
        logger.info(
            "job `%s` ends after %.2fs: %s",
            self.plan.flow,
            result.statistics.elapsed,
            "ok" if result.ok else "aborted" if result.aborted else "failed",
        )
        return result

    async def _supervise(self) -> ReflowError | None:
        self._tasks = [
            asyncio.create_task(_guarded(name, worker), name=f"reflow:{name}")
            for name, worker in self._workers.items()
        ]
        if self._aborted:
            self.abort()
        pending = set(self._tasks)
        while pending:
            done, pending = await asyncio.wait(
                pending, return_when=asyncio.FIRST_EXCEPTION
            )
            failed = [
                t for t in done if not t.cancelled() and t.exception() is not None
            ]
            if failed or self._aborted:
                return await self._cancel_all(failed)
        return None

    async def _cancel_all(self, failed: list[asyncio.Task[None]]) -> ReflowError | None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if not failed:
            return None
        error = failed[0].exception()
        if isinstance(error, ReflowError):
            # The result carries the error to the caller, who reports it once.
            logger.debug("job `%s` failed: %s", self.plan.flow, error)
            return error
        assert error is not None
        raise error

    def _result(self, error: ReflowError | None) -> JobResult:
        return JobResult(
            ok=error is None and not self._aborted,
            interrupted=self._stopped,
            aborted=self._aborted,
            error=error,
            statistics=self.statistics(),
        )

    def statistics(self) -> JobStatistics:
        """A snapshot of every stage this job runs; cheap, callable at any time."""
        return JobStatistics(
            flow=self.plan.flow,
            elapsed=self._clock() - self._started,
            stages=tuple(
                self._stage_statistics(task) for unit in self.units for task in unit
            ),
        )

    def _stage_statistics(self, task: Task) -> StageStatistics:
        counters = self._counters[task.name]
        worker = self._workers.get(task.name)
        queue = self._queues.get(task.output or "") if worker is not None else None
        if not isinstance(queue, MemoryQueue):
            queue = None  # a remote queue's depth is the queue server's to report
        return StageStatistics(
            name=task.name,
            kind=task.kind,
            workers=self._concurrency[task.name],
            order=str(task.order),
            events_in=counters.events_in,
            events_out=counters.events_out,
            errors=counters.errors,
            skipped=counters.skipped,
            retried=counters.retried,
            dead_lettered=counters.dead_lettered,
            held=worker.held() if worker is not None else 0,
            queue_depth=queue.depth() if queue is not None else None,
            queue_capacity=queue.capacity if queue is not None else None,
            rate=self._rates[task.name].sample(counters.events_out),
        )

    # Building the workers.

    async def _prepare(self) -> None:
        if self._given is None:
            self._queues = dict(memory_queues(self.plan))
        else:
            self._queues = dict(self._given)
        self._build()
        if self.recover:
            await self._attach()
            await self._resume()

    def _build(self) -> None:
        for unit in self.units:
            worker = self._worker(unit)
            self._workers[unit[-1].name] = worker
        if self._stopped:
            self.stop()

    async def _attach(self) -> None:
        # Every consumer goes back to its committed offsets; its stateful part (a
        # sink, a count, a rejoin) gets back what it saved with the
        # acknowledgements of its first input (a join: of each input), and from now
        # on tracks its changes, which the worker hands to those acknowledgements.
        for unit in self.units:
            input = self._inputs.get(unit[0].name)
            if input is None:
                continue  # a source
            state = await input.attach()
            if input.finished:
                # It had forwarded end-of-source before its process died.
                del self._workers[unit[-1].name]
                continue
            part = self._stateful[unit[0].name]
            self._restore(part, input, state)
            if isinstance(part, Join):
                await self._resume_join(unit[0], part)

    def _restore(self, part: Any, input: QueueInput, state: dict[Any, Any]) -> None:
        start = getattr(part, "track_changes", None)
        if start is not None:
            start()
        if isinstance(part, Join):
            part.restore(input.states)  # each side's table, saved with its own queue
            return
        restore = getattr(part, "restore", None)
        if restore is not None and state:
            restore(state)

    async def _resume_join(self, task: Task, join: Join) -> None:
        # The unmatched rows its output queue already holds (see `join`).
        assert task.output is not None
        point = await self._queues[task.output].resume_point(join.unmatched)
        join.resume(point.high)

    async def _resume(self) -> None:
        # A source resumes after the last event its output queue holds from it.
        for source in self._sources:
            output = self.plan.task(source.name).output
            assert output is not None
            point = await self._queues[output].resume_point(source.name)
            source.resume(point)

    def _worker(self, unit: tuple[Task, ...]) -> Worker:
        first, last = unit[0], unit[-1]
        workers = self._workers_of(unit)
        offload = Offload(first.name, workers)
        self._offloads.append(offload)
        handlers = [self._handler(task, offload) for task in unit]

        input, step, output = self._parts(unit, handlers, offload)
        if first.inputs:
            self._stateful[first.name] = output if first.kind == "sink" else step
        expansions = [task.expansion for task in unit if task.kind == "flat_map"]
        capacity = (
            self._queues[last.output].capacity if last.output else first.batch or 256
        )
        return Worker(
            last.name,
            input,
            step,
            output,
            handlers=handlers,
            dead_letters={
                task.name: self._queues[task.dead_letter]
                for task in unit
                if task.dead_letter
            },
            workers=workers,
            batch=first.batch or self._bulk(first),
            expansion=_product(expansions),
            expands=bool(expansions),
            credit=capacity,
            traces=traced(self.plan, last),
            order=first.order,
        )

    def _workers_of(self, unit: tuple[Task, ...]) -> int:
        # Stateless stages run their calls in parallel; the others keep state (or
        # an order of calls, for sources and sinks) and run one call at a time.
        first = unit[0]
        workers = first.workers if first.kind in STATELESS else 1
        if workers != first.workers:
            logger.debug("stage `%s` runs one worker: its kind keeps state", first.name)
        for task in unit:
            self._concurrency[task.name] = workers
        return workers

    def _bulk(self, task: Task) -> int | None:
        # A stage that calls no user function per batch (a merge, a count by the
        # event or a field) takes whole queue items: fewer, larger rounds.
        if task.kind == "merge" or (
            task.kind == "count" and (task.by is None or task.by.kind != "function")
        ):
            return max(self._queues[name].capacity for name in task.inputs)
        return None

    def _handler(self, task: Task, offload: Offload) -> ErrorHandler:
        return ErrorHandler(
            task.name,
            _display(task),
            task.on_error,
            self._counters[task.name],
            self._sleep,
        )

    def _parts(
        self, unit: tuple[Task, ...], handlers: list[ErrorHandler], offload: Offload
    ) -> tuple[Any, Any, Any]:
        # The input, the step and the output of a worker, by the kind of its stages.
        first, last = unit[0], unit[-1]
        if first.kind == "source":
            return (
                self._source(first, handlers[0], offload),
                Passthrough(None),
                self._output(last),
            )

        queues = [self._queues[name] for name in first.inputs]
        queue_input = self._inputs[first.name] = QueueInput(queues, first.name)
        input = guarded(self.plan, first, queue_input)
        if first.kind == "sink":
            return (
                input,
                Passthrough(self._counters[first.name], count_out=False),
                self._sink(first, handlers[0], offload),
            )
        if first.kind == "join":
            join = self._join(first, handlers[0])
            # Not `guarded`: a join saves each side's table with its own queue.
            return JoinInput(queue_input, join), join, self._output(last)
        return input, self._step(unit, handlers, offload), self._output(last)

    def _step(
        self, unit: tuple[Task, ...], handlers: list[ErrorHandler], offload: Offload
    ) -> Any:
        first = unit[0]
        counters = self._counters[first.name]
        if first.kind == "merge":
            return Passthrough(counters)
        if first.kind == "rejoin":
            capacity = self._queues[first.inputs[0]].capacity
            function = self._function(first)
            return Rejoin(
                first.name,
                function,
                handlers[0],
                counters,
                offload,
                capacity,
                ordered=Rejoin.in_order(self.plan, first),
            )
        if first.kind in {"count", "reduce"}:
            return self._aggregate(first, handlers[0], offload)

        links = [
            Link(
                task.kind,
                self._function(task),
                handler,
                self._counters[task.name],
                task.timeout,
                self._clock,
            )
            for task, handler in zip(unit, handlers, strict=True)
        ]
        return Chain(links, offload)

    def _source(
        self, task: Task, handler: ErrorHandler, offload: Offload
    ) -> SourceInput:
        source = SourceInput(
            task.name,
            self._function(task),
            task.rewindable,
            handler,
            self._counters[task.name],
            offload,
            self._clock,
        )
        self._sources.append(source)
        return source

    def _sink(self, task: Task, handler: ErrorHandler, offload: Offload) -> SinkOutput:
        return SinkOutput(
            self._function(task),
            handler,
            self._counters[task.name],
            offload,
            task.timeout,
            self._sleep,
        )

    def _join(self, task: Task, handler: ErrorHandler) -> Join:
        keys = [key_reader(key, task.name) for key in task.join_keys]
        return Join(
            task.name,
            (keys[0], keys[1]),
            task.how or "inner",
            handler,
            self._counters[task.name],
        )

    def _aggregate(
        self, task: Task, handler: ErrorHandler, offload: Offload
    ) -> Aggregate:
        function = self._function(task) if task.kind == "reduce" else None
        return Aggregate(
            task.name,
            key_reader(task.by, task.name),
            function,
            task.initial,
            handler,
            self._counters[task.name],
            offload,
            grouped=task.by is not None,
        )

    def _output(self, task: Task) -> QueueOutput:
        if task.output is None:
            msg = f"stage `{task.name}` is a `{task.kind}` without an output queue"
            raise PlanError(msg)
        return QueueOutput(self._queues[task.output])

    def _function(self, task: Task) -> UserFunction:
        if task.function is None:
            msg = f"stage `{task.name}` is a `{task.kind}` without a function"
            raise PlanError(msg)
        return resolve(task.function, task.name)


def _product(values: list[float | None]) -> float | None:
    # The expected outputs per input of a chain of flat-maps; unknown if any is.
    if not values or any(value is None for value in values):
        return None
    result = 1.0
    for value in values:
        result *= value  # type: ignore[operator]
    return result


def _display(task: Task) -> str:
    # What a failure names: the user function, or for a stage without one (a join,
    # a count) the key functions that are all it runs of the user's.
    function = task.function
    if function is not None:
        return function.display or f"{function.module}.{function.name}"
    keys = [str(key) for key in (*task.join_keys, task.by) if key is not None]
    return f"{task.kind} by {' and '.join(keys)}" if keys else task.kind


async def _guarded(name: str, worker: Worker) -> None:
    # `SystemExit` (a user function calling `sys.exit`) is no `Exception`: no policy
    # catches it, and asyncio would let it end the whole process. It fails the job.
    try:
        await worker.run()
    except SystemExit as exc:
        msg = (
            f"stage `{name}` failed: a user function raised SystemExit({exc.code!r}), "
            "which would end the process; a stage's function reports an error by "
            "raising an exception"
        )
        raise ReflowError(msg) from exc

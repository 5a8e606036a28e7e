"""Recovery without processes: workers killed at any moment and built again on the
same queues deliver every event to a checkpointing sink exactly once.

A "process" here is the set of workers of a small flow (a source, a fused map and
flat_map, a file sink) running on `MemoryQueue`s. It dies when a `Killed` is raised
at a chosen tick: before or after any request to a queue (so a put or an
acknowledgement may be done with its answer lost), or between a sink's write and
its acknowledgement. Its open sink file goes with it. Then fresh workers attach to
the same queues, the sink restores its checkpoint, the source resumes after what
its output queue holds, and they run on; workers that had ended are not started
again, as a supervisor would not restart a worker that exited 0.

These run no `Job` (they build workers on this process's `MemoryQueue`s, to kill
them between any two requests), so they have one mode; in process mode, worker
processes killed with SIGKILL while a job runs are `tests/test_faults.py`.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from reflow_lang.stdlib import _files, text

from reflow_lang.plan import ErrorPolicy
from reflow_lang.runtime.chain import Chain, Link
from reflow_lang.runtime.dedup import Remember
from reflow_lang.runtime.events import Item
from reflow_lang.runtime.functions import UserFunction
from reflow_lang.runtime.offload import Offload
from reflow_lang.runtime.policy import ErrorHandler
from reflow_lang.runtime.ports import QueueInput, QueueOutput
from reflow_lang.runtime.queue import Credit, MemoryQueue
from reflow_lang.runtime.sink import SinkOutput
from reflow_lang.runtime.source import SourceInput
from reflow_lang.runtime.statistics import StageCounters
from reflow_lang.runtime.steps import Passthrough
from reflow_lang.runtime.worker import Worker

EVENTS = 30  # a run without kills makes 240 ticks: kills are drawn up to 250


class Killed(BaseException):
    """The process dies here (a `BaseException`: no error policy catches it)."""


@dataclass
class Fuse:
    """Counts ticks and raises `Killed` at the chosen ones."""

    kills: list[int]
    ticks: int = 0

    def tick(self) -> None:
        self.ticks += 1
        if self.kills and self.ticks == self.kills[0]:
            self.kills.pop(0)
            raise Killed


class FragileQueue(MemoryQueue):
    """A queue whose requests tick the fuse before and after they are answered."""

    def __init__(self, fuse: Fuse, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fuse = fuse

    async def put(self, item: Item) -> Credit:
        self.fuse.tick()
        credit = await super().put(item)
        self.fuse.tick()
        return credit

    async def get(self, consumer: str, limit: int) -> Item:
        self.fuse.tick()
        return await super().get(consumer, limit)

    async def ack(self, consumer: str, offset: int, changes: Any = None) -> None:
        self.fuse.tick()
        await super().ack(consumer, offset, changes)
        self.fuse.tick()


def numbers(count: int, start: int = 0) -> Iterator[int]:
    return iter(range(start, count))


def tens(event: int) -> int:
    return event * 10


def pair(event: int) -> list[int]:
    return [event, event + 1]


@dataclass
class Flow:
    """The queues of the flow (they outlive every process) and its sink file."""

    fuse: Fuse
    path: str
    remember: Remember = "total"
    checkpoint: bool = True
    first: FragileQueue = field(init=False)
    second: FragileQueue = field(init=False)
    ended: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.first = FragileQueue(self.fuse, "q0", 4, ["map"], remember=self.remember)
        self.second = FragileQueue(self.fuse, "q1", 5, ["out"], remember=self.remember)

    printed: list[str] = field(default_factory=list)
    """Without a checkpoint the sink prints, as to a terminal: nothing is undone."""

    def sink(self) -> Any:
        fuse = self.fuse
        printed = self.printed

        def write(batch: Sequence[Any], path: str) -> None:
            text.write_lines(batch, path)
            fuse.tick()  # written, not yet acknowledged

        def print_(batch: Sequence[Any], path: str) -> None:
            printed.extend(str(event) for event in batch)
            fuse.tick()

        if not self.checkpoint:
            return print_
        write.checkpoint = text.write_lines.checkpoint  # type: ignore[attr-defined]
        write.restore = text.write_lines.restore  # type: ignore[attr-defined]
        write.end = text.write_lines.end  # type: ignore[attr-defined]
        return write

    def lines(self) -> list[str]:
        """What the sink delivered."""
        if not self.checkpoint:
            return self.printed
        return Path(self.path).read_text().splitlines()


def _function(function: Any, *args: Any) -> UserFunction:
    return UserFunction(function, args, function.__name__, False, True)


def _handler(stage: str, counters: StageCounters) -> ErrorHandler:
    return ErrorHandler(stage, stage, ErrorPolicy(), counters, asyncio.sleep)


def _link(kind: str, function: Any) -> Link:
    counters = StageCounters()
    handler = _handler(kind, counters)
    return Link(kind, _function(function), handler, counters, None, time.monotonic)


async def _workers(flow: Flow, offload: Offload) -> dict[str, Worker]:
    # The workers not yet ended, attached, restored and resumed as a restart does;
    # one whose every input's end-of-source was acknowledged had ended: not run.
    workers: dict[str, Worker] = {}
    if "src" not in flow.ended:
        workers["src"] = await _source(flow, offload)
    for name, build in (("flat", _chain), ("out", _sink)):
        if name not in flow.ended:
            worker = await build(flow, offload)
            if worker is None:
                flow.ended.add(name)
            else:
                workers[name] = worker
    return workers


async def _source(flow: Flow, offload: Offload) -> Worker:
    counters = StageCounters()
    source = SourceInput(
        "src",
        _function(numbers, EVENTS),
        True,
        _handler("src", counters),
        counters,
        offload,
        time.monotonic,
    )
    source.resume(await flow.first.resume_point("src"))
    output = QueueOutput(flow.first)
    return Worker("src", source, Passthrough(None), output, batch=3)


async def _chain(flow: Flow, offload: Offload) -> Worker | None:
    input = QueueInput([flow.first], "map")
    await input.attach()
    if input.finished:
        return None
    return Worker(
        "flat",
        input,
        Chain([_link("map", tens), _link("flat_map", pair)], offload),
        QueueOutput(flow.second),
        batch=3,
        expands=True,
        expansion=2.0,
        credit=flow.second.capacity,
    )


async def _sink(flow: Flow, offload: Offload) -> Worker | None:
    input = QueueInput([flow.second], "out")
    state = await input.attach()
    if input.finished:
        return None
    counters = StageCounters()
    sink = SinkOutput(
        _function(flow.sink(), flow.path),
        _handler("out", counters),
        counters,
        offload,
        None,
        asyncio.sleep,
    )
    sink.restore(state)
    return Worker("out", input, Passthrough(counters, count_out=False), sink)


async def _run_once(flow: Flow) -> bool:
    """Runs a process until the flow ends (`True`) or the process is killed."""
    offload = Offload("recovery", 1)
    try:
        workers = await _workers(flow, offload)
    except Killed:
        _files.close(flow.path)  # the process is gone: its file closed, not ended
        offload.close()
        return False
    if not workers:  # every worker had ended before the process died
        offload.close()
        return True
    tasks = {
        name: asyncio.create_task(worker.run()) for name, worker in workers.items()
    }
    try:
        while True:
            done, _ = await asyncio.wait(
                tasks.values(), return_when=asyncio.FIRST_EXCEPTION
            )
            for name, task in tasks.items():
                if task.done() and task.exception() is None:
                    flow.ended.add(name)
            failed = [t for t in done if t.exception() is not None]
            if failed:
                error = failed[0].exception()
                if not isinstance(error, Killed):
                    raise error  # type: ignore[misc]
                return False
            if len(flow.ended) == 3:
                return True
    finally:
        for task in tasks.values():
            task.cancel()
        await asyncio.gather(*tasks.values(), return_exceptions=True)
        # The process is gone: so is its open file (a new one truncates, unless
        # a checkpoint restores it).
        _files.close(flow.path)  # closed, not ended (the sink did not end)
        offload.close()


async def _run(flow: Flow) -> list[str]:
    for _ in range(20):
        if await _run_once(flow):
            return flow.lines()
    msg = "the flow did not end after 20 processes"
    raise AssertionError(msg)


EXPECTED = [
    str(value) for event in range(EVENTS) for value in (10 * event, 10 * event + 1)
]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(1, 250), min_size=1, max_size=4, unique=True))
def test_recovery_a_killed_flow_delivers_every_event_exactly_once(
    kills: list[int],
) -> None:
    with tempfile.TemporaryDirectory() as scratch:
        flow = Flow(Fuse(sorted(kills)), str(Path(scratch) / "out.txt"))

        lines = asyncio.run(_run(flow))

    assert lines == EXPECTED


def _kill_between_write_and_ack() -> int:
    # The tick right after the sink's second write (its first batch is then
    # acknowledged, with a checkpoint): found by a run without kills.
    with tempfile.TemporaryDirectory() as scratch:
        fuse = Fuse([])
        flow = Flow(fuse, str(Path(scratch) / "out.txt"))
        ticks: list[int] = []
        original = flow.sink

        def spying() -> Any:
            write = original()

            def spy(batch: Sequence[Any], path: str) -> None:
                write(batch, path)
                ticks.append(fuse.ticks)

            return spy

        flow.sink = spying  # type: ignore[method-assign]
        asyncio.run(_run(flow))
    return ticks[1]


def test_recovery_without_checkpoint_a_sink_writes_twice() -> None:
    # The same kill with the checkpoint left out: the batch written but not
    # acknowledged is written again; so the test above can fail.
    kill = _kill_between_write_and_ack()
    with tempfile.TemporaryDirectory() as scratch:
        flow = Flow(Fuse([kill]), str(Path(scratch) / "out.txt"), checkpoint=False)

        lines = asyncio.run(_run(flow))

    assert sorted(set(lines), key=int) == EXPECTED
    assert len(lines) > len(EXPECTED)


def test_recovery_with_checkpoint_the_same_kill_writes_once() -> None:
    kill = _kill_between_write_and_ack()
    with tempfile.TemporaryDirectory() as scratch:
        flow = Flow(Fuse([kill]), str(Path(scratch) / "out.txt"))

        lines = asyncio.run(_run(flow))

    assert lines == EXPECTED


@settings(max_examples=30, deadline=None)
@given(st.integers(1, 250))
def test_recovery_queues_that_remember_nothing_let_replays_through(
    kill: int,
) -> None:
    # Without the queues dropping replays, some kill points duplicate events;
    # whichever it is, nothing is lost.
    with tempfile.TemporaryDirectory() as scratch:
        flow = Flow(Fuse([kill]), str(Path(scratch) / "out.txt"), remember="none")

        lines = asyncio.run(_run(flow))

    assert sorted(set(lines), key=int) == EXPECTED


def test_recovery_queues_that_remember_nothing_duplicate_a_replayed_put() -> None:
    # A producer killed after its put and before its acknowledgement puts its
    # outputs again: a queue that remembers nothing stores them twice at some of
    # these points, where the property test above finds every event once.
    duplicated = False
    for kill in range(1, 60):
        with tempfile.TemporaryDirectory() as scratch:
            flow = Flow(Fuse([kill]), str(Path(scratch) / "out.txt"), remember="none")
            lines = asyncio.run(_run(flow))
        duplicated = duplicated or len(lines) > len(EXPECTED)
    assert duplicated

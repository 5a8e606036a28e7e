"""A worker acknowledges its inputs every half input queue, and before it waits.

Fewer acknowledgements cost less over a transport, and a stateful step's changes to
several batches leave in one. What must hold: an acknowledgement held back never
holds room its producer waits for while the worker itself waits (for input, or for
room in its output), and the state it carries is the state of exactly the inputs it
commits."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Iterator, Mapping
from typing import Any

import pytest

from reflow_lang.plan import ErrorPolicy
from reflow_lang.runtime.events import END_OF_SOURCE, Batch, Offsets
from reflow_lang.runtime.offload import Offload
from reflow_lang.runtime.policy import ErrorHandler
from reflow_lang.runtime.ports import QueueInput, QueueOutput
from reflow_lang.runtime.queue import MemoryQueue
from reflow_lang.runtime.statistics import StageCounters
from reflow_lang.runtime.steps import Aggregate, Passthrough
from reflow_lang.runtime.worker import Worker


class RecordingQueue(MemoryQueue):
    """A queue that records each acknowledgement, and says when someone waits on
    it for data or for room (events, no sleeps)."""

    def __init__(self, name: str, capacity: int, consumers: list[str]) -> None:
        super().__init__(name, capacity, consumers)
        self.acks: list[tuple[int, dict[Any, Any]]] = []
        self.waiting_data = asyncio.Event()
        self.waiting_room = asyncio.Event()

    async def ack(
        self, consumer: str, offset: int, changes: Mapping[Any, Any] | None = None
    ) -> None:
        self.acks.append((offset, dict(changes or {})))
        await super().ack(consumer, offset, changes)

    async def wait_data(self, consumer: str) -> None:
        self.waiting_data.set()
        await super().wait_data(consumer)

    async def wait_room(self, at_least: int = 1) -> int:
        self.waiting_room.set()
        return await super().wait_room(at_least)


def one(position: int, value: Any) -> Batch:
    return Batch([value], Offsets("src", position, position + 1))


def fill(queue: MemoryQueue, values: list[Any], *, end: bool) -> None:
    for position, value in enumerate(values):
        assert queue.put_nowait(one(position, value)).accepted == 1
    if end:
        assert queue.put_nowait(END_OF_SOURCE).accepted == 1


@pytest.fixture
def offload() -> Iterator[Offload]:
    pool = Offload("count", 1)
    yield pool
    pool.close()


def counting(offload: Offload) -> Aggregate:
    counters = StageCounters()
    handler = ErrorHandler("count", "count", ErrorPolicy(), counters, asyncio.sleep)
    step = Aggregate("count", None, None, 0, handler, counters, offload)
    step.track_changes()  # as in process mode, where acknowledgements carry state
    return step


async def test_worker_acknowledges_every_half_queue_while_input_is_there() -> None:
    source = RecordingQueue("in", 8, ["pass"])
    out = MemoryQueue("out", 64, ["next"])
    fill(source, list("abcdef"), end=True)
    worker = Worker(
        "pass", QueueInput([source], "pass"), Passthrough(None), QueueOutput(out)
    )

    await worker.run()

    # Half the queue (4 events), then the rest with end-of-source, at the end.
    assert [offset for offset, _ in source.acks] == [4, 7]
    assert out.statistics().tail == 7


async def test_worker_acknowledges_what_it_holds_before_waiting_for_input() -> None:
    source = RecordingQueue("in", 8, ["pass"])
    out = MemoryQueue("out", 64, ["next"])
    fill(source, ["a", "b"], end=False)
    worker = Worker(
        "pass", QueueInput([source], "pass"), Passthrough(None), QueueOutput(out)
    )
    running = asyncio.create_task(worker.run())

    await source.waiting_data.wait()
    held_back = [offset for offset, _ in source.acks]
    source.put_nowait(END_OF_SOURCE)
    await running

    assert held_back == [2]
    assert source.statistics().committed == (("pass", 3),)


async def test_worker_acknowledges_what_it_holds_before_waiting_for_room() -> None:
    source = RecordingQueue("in", 8, ["pass"])
    out = RecordingQueue("out", 2, ["next"])
    fill(source, ["a", "b", "c"], end=True)
    worker = Worker(
        "pass",
        QueueInput([source], "pass"),
        Passthrough(None),
        QueueOutput(out),
        credit=2,
    )
    running = asyncio.create_task(worker.run())

    await out.waiting_room.wait()
    committed_while_waiting = source.statistics().committed
    taken = [out.get_nowait("next", 8), out.get_nowait("next", 8)]
    out.ack_nowait("next", 2)
    while taken[-1] is not END_OF_SOURCE:  # the rest, as the consumer takes it
        await out.wait_data("next")
        taken.append(out.get_nowait("next", 8))
        out.ack_nowait("next", len(taken))
    await running

    assert committed_while_waiting == (("pass", 2),)
    assert [item for item in taken if item is not END_OF_SOURCE] == [
        one(0, "a"),
        one(1, "b"),
        one(2, "c"),
    ]
    assert source.statistics().committed == (("pass", 4),)


async def test_aggregate_changes_coalesce_and_match_the_committed_inputs(
    offload: Offload,
) -> None:
    words = list("abacabdd")
    source = RecordingQueue("in", 10, ["count"])
    out = MemoryQueue("out", 64, ["sink"])
    fill(source, words, end=True)
    worker = Worker(
        "count", QueueInput([source], "count"), counting(offload), QueueOutput(out)
    )

    await worker.run()

    # Each acknowledgement carries every count its inputs changed, as of its
    # offset: the saved state after it is the count of exactly those inputs.
    saved: dict[Any, Any] = {}
    for offset, changes in source.acks:
        saved.update(changes)
        events = min(offset, len(words))
        expected = Counter(words[:events])
        assert saved == {("acc", word): n for word, n in expected.items()}
    assert [offset for offset, _ in source.acks] == [5, 9]
    assert source.attach_nowait("count").state == {
        ("acc", word): n for word, n in Counter(words).items()
    }

"""Replays are dropped by id, and an id counts as seen only once it is delivered."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from reflow_lang.runtime.dedup import DedupInput, RecentIds, Via, stamp_at
from reflow_lang.runtime.events import (
    END_OF_SOURCE,
    Batch,
    Listed,
    Offsets,
    derive,
)
from reflow_lang.runtime.ports import QueueInput
from reflow_lang.runtime.queue import MemoryQueue


def _input(total: bool, capacity: int = 64) -> tuple[MemoryQueue, DedupInput]:
    queue = MemoryQueue("q", capacity, ["stage"])
    return queue, DedupInput(QueueInput([queue], "stage"), [total], [capacity])


def _offsets(start: int, stop: int) -> Batch:
    return Batch(list(range(start, stop)), Offsets("src", start, stop))


async def test_total_input_drops_a_replayed_prefix_by_high_water_stamp() -> None:
    queue, input = _input(total=True)
    queue.put_nowait(_offsets(0, 4))
    _, first = await input.take(100)
    await input.ack([4])

    queue.put_nowait(_offsets(2, 6))  # 2 and 3 again, then 4 and 5
    _, second = await input.take(100)
    assert isinstance(second, Batch)
    assert second.values == [4, 5]
    assert second.ids() == [("src", 4), ("src", 5)]
    await input.ack([2])
    assert await queue.committed("stage") == 8  # the dropped replays are acknowledged
    assert input.dropped == 2


async def test_an_id_is_seen_only_once_it_is_delivered() -> None:
    queue, input = _input(total=True)
    queue.put_nowait(_offsets(0, 3))
    queue.put_nowait(_offsets(0, 3))  # replayed before the first copy is delivered
    await input.take(100)
    _, again = await input.take(100)
    assert isinstance(again, Batch)
    assert again.values == [0, 1, 2]
    assert input.dropped == 0


async def test_a_batch_of_replays_only_is_skipped_and_acknowledged() -> None:
    queue, input = _input(total=True)
    queue.put_nowait(_offsets(0, 3))
    await input.take(100)
    await input.ack([3])
    queue.put_nowait(_offsets(0, 3))
    queue.put_nowait(END_OF_SOURCE)

    index, item = await input.take(100)
    assert (index, item) == (0, END_OF_SOURCE)
    await input.ack([1])
    assert await queue.committed("stage") == 7


async def test_weak_order_drops_scattered_replays_by_recent_ids() -> None:
    queue, input = _input(total=False)
    first = Batch(["a", "b", "c"], Listed("src", ((5,), (1,), (3,))))
    queue.put_nowait(first)
    await input.take(100)
    await input.ack([3])

    replay = Batch(["x", "b", "y", "c"], Listed("src", ((2,), (1,), (4,), (3,))))
    queue.put_nowait(replay)
    _, kept = await input.take(100)
    assert isinstance(kept, Batch)
    assert kept.values == ["x", "y"]
    assert kept.ids() == [("src", 2), ("src", 4)]
    await input.ack([2])
    assert await queue.committed("stage") == 7


async def test_merge_inputs_tag_the_ids_of_what_they_forward() -> None:
    left = MemoryQueue("l", 8, ["merge"])
    right = MemoryQueue("r", 8, ["merge"])
    input = DedupInput(
        QueueInput([left, right], "merge"), [True, True], [8, 8], ["m[0]", "m[1]"]
    )
    left.put_nowait(_offsets(0, 1))
    right.put_nowait(_offsets(0, 1))
    ids = set()
    for _ in range(2):
        _, item = await input.take(10)
        assert isinstance(item, Batch)
        ids.update(item.ids())
    assert ids == {("src@m[0]", 0), ("src@m[1]", 0)}


def test_recent_ids_forget_the_oldest_beyond_their_bound() -> None:
    recent = RecentIds(3)
    recent.add([("s", 1), ("s", 2)])
    recent.add([("s", 3), ("s", 4)])
    assert len(recent) == 2  # the oldest batch is forgotten whole
    assert ("s", 1) not in recent
    assert ("s", 4) in recent
    assert recent.any_of([("s", 9), ("s", 3)])


@settings(max_examples=40, deadline=None)
@given(
    counts=st.lists(st.integers(min_value=0, max_value=4), min_size=1, max_size=10),
    data=st.data(),
)
def test_stamp_at_agrees_with_materialise(
    counts: list[int], data: st.DataObject
) -> None:
    split = derive(Offsets("src", 3, 3 + len(counts)), counts, split=True)
    keep = data.draw(
        st.lists(st.integers(0, 1), min_size=len(split), max_size=len(split))
    )
    for stamps in (split, derive(split, keep, split=False), Via(split, "m")):
        every = stamps.materialise()
        assert [stamp_at(stamps, i) for i in range(len(stamps))] == every

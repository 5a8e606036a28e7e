"""The bounded queue: credit, fan-out, acknowledgement by offset, waiting."""

from __future__ import annotations

import asyncio
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reflow_lang.errors import WouldBlock
from reflow_lang.runtime.events import END_OF_SOURCE, Batch, Offsets
from reflow_lang.runtime.queue import Credit, MemoryQueue


def batch(start: int, count: int) -> Batch:
    return Batch(
        list(range(start, start + count)), Offsets("src", start, start + count)
    )


def test_put_accepts_prefix_and_answers_credit() -> None:
    queue = MemoryQueue("q", 5, ["a"])

    assert queue.put_nowait(batch(0, 3)) == Credit(3, 2)
    assert queue.put_nowait(batch(3, 4)) == Credit(2, 0)
    assert queue.put_nowait(batch(5, 1)) == Credit(0, 0)
    assert queue.get_nowait("a", 100).values == [0, 1, 2]
    assert queue.get_nowait("a", 100).values == [3, 4]


def test_get_slices_entries_to_limit() -> None:
    queue = MemoryQueue("q", 10, ["a"])
    queue.put_nowait(batch(0, 5))

    first = queue.get_nowait("a", 2)
    second = queue.get_nowait("a", 10)

    assert first.values == [0, 1]
    assert first.stamps.materialise() == [(0,), (1,)]
    assert second.values == [2, 3, 4]
    assert second.stamps.materialise() == [(2,), (3,), (4,)]


def test_get_nowait_empty_raises_would_block() -> None:
    queue = MemoryQueue("q", 4, ["a"])

    with pytest.raises(
        WouldBlock, match=re.escape("queue `q` has nothing for `a` now")
    ):
        queue.get_nowait("a", 1)


def test_instruction_takes_one_slot_and_is_indivisible() -> None:
    queue = MemoryQueue("q", 2, ["a"])
    queue.put_nowait(batch(0, 1))

    assert queue.put_nowait(END_OF_SOURCE) == Credit(1, 0)
    assert queue.put_nowait(END_OF_SOURCE) == Credit(0, 0)
    assert queue.get_nowait("a", 5).values == [0]
    assert queue.get_nowait("a", 5) is END_OF_SOURCE


def test_fan_out_every_consumer_sees_every_event() -> None:
    queue = MemoryQueue("q", 10, ["a", "b"])
    queue.put_nowait(batch(0, 4))

    assert queue.get_nowait("a", 10).values == [0, 1, 2, 3]
    assert queue.get_nowait("b", 3).values == [0, 1, 2]
    assert queue.get_nowait("b", 3).values == [3]


def test_room_frees_only_when_every_consumer_acknowledged() -> None:
    queue = MemoryQueue("q", 4, ["a", "b"])
    queue.put_nowait(batch(0, 4))
    queue.get_nowait("a", 4)
    queue.get_nowait("b", 4)

    queue.ack_nowait("a", 4)
    assert queue.room() == 0
    assert queue.statistics().entries == 1
    queue.ack_nowait("b", 2)
    assert queue.room() == 2
    assert queue.statistics().entries == 1
    queue.ack_nowait("b", 4)
    assert queue.room() == 4
    assert queue.statistics().entries == 0


def test_ack_is_idempotent_and_never_moves_backwards() -> None:
    queue = MemoryQueue("q", 4, ["a"])
    queue.put_nowait(batch(0, 4))
    queue.get_nowait("a", 4)

    queue.ack_nowait("a", 3)
    queue.ack_nowait("a", 3)
    queue.ack_nowait("a", 1)

    assert queue.statistics().committed == (("a", 3),)
    assert queue.room() == 3


def test_ack_past_what_was_read_is_refused() -> None:
    queue = MemoryQueue("q", 4, ["a"])
    queue.put_nowait(batch(0, 4))
    queue.get_nowait("a", 2)

    message = "`a` acknowledged offset 3 of queue `q`; it has read only up to 2"
    with pytest.raises(ValueError, match=re.escape(message)):
        queue.ack_nowait("a", 3)


async def test_wait_room_wakes_on_acknowledgement() -> None:
    queue = MemoryQueue("q", 2, ["a"])
    queue.put_nowait(batch(0, 2))
    waiter = asyncio.ensure_future(queue.wait_room())
    await asyncio.sleep(0)
    assert not waiter.done()

    await queue.get("a", 2)
    await queue.ack("a", 1)

    assert await waiter == 1


async def test_wait_room_at_least_waits_for_enough() -> None:
    queue = MemoryQueue("q", 4, ["a"])
    queue.put_nowait(batch(0, 3))
    queue.put_nowait(batch(3, 1))
    await queue.get("a", 4)
    waiter = asyncio.ensure_future(queue.wait_room(3))

    await queue.ack("a", 1)
    await asyncio.sleep(0)
    assert not waiter.done()
    await queue.ack("a", 3)

    assert await waiter == 3


async def test_wait_room_answers_any_room_once_consumers_read_everything() -> None:
    # A consumer that waits for more input before acknowledging must not deadlock
    # with a producer that waits for much room.
    queue = MemoryQueue("q", 4, ["a"])
    queue.put_nowait(batch(0, 3))
    waiter = asyncio.ensure_future(queue.wait_room(3))
    await asyncio.sleep(0)
    assert not waiter.done()

    await queue.get("a", 4)

    assert await waiter == 1


async def test_get_waits_for_data() -> None:
    queue = MemoryQueue("q", 4, ["a"])
    getter = asyncio.ensure_future(queue.get("a", 4))
    await asyncio.sleep(0)
    assert not getter.done()

    queue.put_nowait(batch(0, 2))

    assert (await getter).values == [0, 1]


async def test_poll_answers_none_when_empty() -> None:
    queue = MemoryQueue("q", 4, ["a"])

    assert await queue.poll("a", 4) is None
    queue.put_nowait(batch(0, 1))
    taken = await queue.poll("a", 4)
    assert taken is not None and taken.values == [0]


operations = st.lists(
    st.one_of(
        st.tuples(st.just("put"), st.integers(1, 6)),
        st.tuples(st.just("get"), st.sampled_from("ab"), st.integers(1, 6)),
        st.tuples(st.just("ack"), st.sampled_from("ab"), st.integers(0, 40)),
    ),
    max_size=60,
)


@settings(max_examples=150, deadline=None)
@given(operations)
def test_queue_invariants_hold_for_any_sequence(ops: list[tuple]) -> None:
    capacity = 8
    queue = MemoryQueue("q", capacity, ["a", "b"])
    produced = 0
    read = {"a": [], "b": []}
    committed = {"a": 0, "b": 0}
    entry_ends: list[int] = []
    for op in ops:
        if op[0] == "put":
            credit = queue.put_nowait(batch(produced, op[1]))
            low = min(committed.values())
            assert credit.accepted == min(op[1], capacity - (produced - low))
            produced += credit.accepted
            if credit.accepted:
                entry_ends.append(produced)
        elif op[0] == "get":
            try:
                read[op[1]].extend(queue.get_nowait(op[1], op[2]).values)
            except WouldBlock:
                assert len(read[op[1]]) == produced
        else:
            consumer, offset = op[1], min(op[2], len(read[op[1]]))
            queue.ack_nowait(consumer, offset)
            committed[consumer] = max(committed[consumer], offset)

        # Offsets never go backwards; every consumer reads every event in order;
        # entries are held exactly while some consumer has not acknowledged them.
        stats = queue.statistics()
        assert dict(stats.committed) == committed
        for values in read.values():
            assert values == list(range(len(values)))
        assert stats.depth == produced - min(committed.values())
        assert queue.room() == capacity - stats.depth
        assert stats.depth <= capacity
        low = min(committed.values())
        assert stats.entries == sum(1 for end in entry_ends if end > low)

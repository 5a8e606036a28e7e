"""The bounded queue: credit, fan-out, acknowledgement by offset, waiting; replays
dropped on put, positioned reads, attach, state saved with acknowledgements, resume
points."""

from __future__ import annotations

import asyncio
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reflow_lang.errors import WouldBlock
from reflow_lang.runtime.events import END_OF_SOURCE, Batch, Listed, Offsets, derive
from reflow_lang.runtime.ports import QueueInput
from reflow_lang.runtime.queue import (
    DELETED,
    Credit,
    MemoryQueue,
    QueueStatistics,
    Resume,
    Saved,
)


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
    queue.put_nowait(batch(0, 2))

    assert queue.put_nowait(END_OF_SOURCE) == Credit(0, 0)
    queue.get_nowait("a", 1)
    queue.ack_nowait("a", 1)
    assert queue.put_nowait(END_OF_SOURCE) == Credit(1, 0)
    assert queue.get_nowait("a", 5).values == [1]
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


# Replays dropped on put.


def test_total_queue_drops_a_replayed_prefix_by_high_water_stamp() -> None:
    queue = MemoryQueue("q", 8, ["a"], remember="total")
    queue.put_nowait(batch(0, 4))

    assert queue.put_nowait(batch(2, 4)) == Credit(4, 2)  # 2 and 3 again, 4 and 5
    queue.get_nowait("a", 100)
    again = queue.get_nowait("a", 100)
    assert isinstance(again, Batch)
    assert again.values == [4, 5]
    assert again.ids() == [("src", 4), ("src", 5)]
    assert queue.statistics().tail == 6


def test_a_put_of_replays_only_is_accepted_whole_even_when_full() -> None:
    queue = MemoryQueue("q", 3, ["a"], remember="total")
    queue.put_nowait(batch(0, 3))

    assert queue.put_nowait(batch(0, 3)) == Credit(3, 0)
    assert queue.statistics().tail == 3


def test_replays_cost_no_room_and_the_taken_prefix_counts_them() -> None:
    queue = MemoryQueue("q", 4, ["a"], remember="total")
    queue.put_nowait(batch(0, 2))

    # 0 and 1 are replays; 2 and 3 fill the queue; 4 and 5 do not fit.
    assert queue.put_nowait(batch(0, 6)) == Credit(4, 0)
    assert queue.get_nowait("a", 10).values == [0, 1]
    assert queue.get_nowait("a", 10).values == [2, 3]


def test_an_id_is_recorded_only_for_the_events_a_queue_took() -> None:
    queue = MemoryQueue("q", 3, ["a"], remember="total")

    assert queue.put_nowait(batch(0, 5)) == Credit(3, 0)
    queue.get_nowait("a", 3)
    queue.ack_nowait("a", 3)
    assert queue.put_nowait(batch(3, 2)) == Credit(2, 1)  # refused before: new now
    assert queue.get_nowait("a", 10).values == [3, 4]


def test_weak_order_drops_scattered_replays_by_recent_ids() -> None:
    queue = MemoryQueue("q", 8, ["a"], remember="recent")
    queue.put_nowait(Batch(["a", "b", "c"], Listed("src", ((5,), (1,), (3,)))))
    queue.get_nowait("a", 10)

    replay = Batch(["x", "b", "y", "c"], Listed("src", ((2,), (1,), (4,), (3,))))
    assert queue.put_nowait(replay) == Credit(4, 3)
    kept = queue.get_nowait("a", 10)
    assert isinstance(kept, Batch)
    assert kept.values == ["x", "y"]
    assert kept.ids() == [("src", 2), ("src", 4)]


def test_split_stamps_are_replays_by_their_parts() -> None:
    queue = MemoryQueue("q", 16, ["a"], remember="total")
    parts = derive(Offsets("src", 0, 3), [2, 0, 3], split=True)
    queue.put_nowait(Batch(list("abc"), parts.slice(0, 3)))

    assert queue.put_nowait(Batch(list("abcde"), parts)) == Credit(5, 11)
    queue.get_nowait("a", 10)
    rest = queue.get_nowait("a", 10)
    assert isinstance(rest, Batch)
    assert rest.ids() == [("src", 2, 1), ("src", 2, 2)]


def test_a_queue_that_remembers_nothing_stores_replays() -> None:
    queue = MemoryQueue("q", 8, ["a"])
    queue.put_nowait(batch(0, 2))

    assert queue.put_nowait(batch(0, 2)) == Credit(2, 4)
    assert queue.statistics().tail == 4


def test_a_second_end_of_source_is_dropped() -> None:
    queue = MemoryQueue("q", 4, ["a"])
    queue.put_nowait(END_OF_SOURCE)

    assert queue.put_nowait(END_OF_SOURCE) == Credit(1, 3)
    assert queue.statistics().tail == 1


def test_traces_are_stored_every_time_they_are_offered() -> None:
    # A trace has no event, so no id: see `dedup`'s docstring.
    queue = MemoryQueue("q", 4, ["a"], remember="total")
    trace = Batch([], derive(Offsets("src", 0, 1), [0], split=True))

    assert queue.put_nowait(trace) == Credit(1, 3)
    assert queue.put_nowait(trace) == Credit(1, 2)


# Positioned reads, attach, saved state, resume points.


def test_read_nowait_reads_again_from_an_earlier_offset() -> None:
    queue = MemoryQueue("q", 10, ["a"])
    queue.put_nowait(batch(0, 3))
    queue.put_nowait(batch(3, 3))
    queue.get_nowait("a", 10)
    queue.get_nowait("a", 10)

    assert queue.read_nowait("a", 1, 10).values == [1, 2]
    assert queue.read_nowait("a", 4, 1).values == [4]
    assert queue.get_nowait("a", 10).values == [5]


def test_read_nowait_at_the_tail_waits_then_reads_what_comes() -> None:
    queue = MemoryQueue("q", 10, ["a"])
    queue.put_nowait(batch(0, 2))

    with pytest.raises(WouldBlock):
        queue.read_nowait("a", 2, 10)
    queue.put_nowait(batch(2, 1))
    assert queue.get_nowait("a", 10).values == [2]


def test_read_nowait_outside_commit_and_tail_is_refused() -> None:
    queue = MemoryQueue("q", 10, ["a"])
    queue.put_nowait(batch(0, 4))
    queue.get_nowait("a", 4)
    queue.ack_nowait("a", 2)

    message = (
        "`a` asked queue `q` for offset 1; it can read from its committed offset 2 to 4"
    )
    with pytest.raises(ValueError, match=re.escape(message)):
        queue.read_nowait("a", 1, 10)
    with pytest.raises(ValueError, match="for offset 5;"):
        queue.read_nowait("a", 5, 10)


def test_attach_moves_the_cursor_back_to_the_commit_and_answers_state() -> None:
    queue = MemoryQueue("q", 10, ["a", "b"])
    queue.put_nowait(batch(0, 5))
    queue.get_nowait("a", 5)
    queue.ack_nowait("a", 3, {"sink": 30, "k": 1})

    assert queue.attach_nowait("a") == Saved(3, {"sink": 30, "k": 1})
    assert queue.get_nowait("a", 10).values == [3, 4]
    assert queue.attach_nowait("b") == Saved(0, {})


def test_ack_changes_merge_and_deleted_removes_a_key() -> None:
    queue = MemoryQueue("q", 10, ["a"])
    queue.put_nowait(batch(0, 5))
    queue.get_nowait("a", 5)

    queue.ack_nowait("a", 1, {"x": 1, "y": 2})
    queue.ack_nowait("a", 2, {"y": DELETED, "z": 3})
    queue.ack_nowait("a", 2, {"w": 4})  # the same offset again: changes still apply
    queue.ack_nowait("a", 1, {"x": 9})  # an older offset: ignored, changes too

    assert queue.attach_nowait("a") == Saved(2, {"x": 1, "z": 3, "w": 4})


def test_ack_refused_keeps_its_changes_out() -> None:
    queue = MemoryQueue("q", 10, ["a"])
    queue.put_nowait(batch(0, 5))
    queue.get_nowait("a", 2)

    with pytest.raises(ValueError, match="has read only up to 2"):
        queue.ack_nowait("a", 3, {"x": 1})
    assert queue.attach_nowait("a") == Saved(0, {})


def test_resume_point_answers_high_water_stamp_and_end() -> None:
    queue = MemoryQueue("q", 10, ["a"])
    assert queue.resume_point_nowait("src") == Resume(None, False)

    queue.put_nowait(batch(0, 4))
    assert queue.resume_point_nowait("src") == Resume((3,), False)
    queue.put_nowait(END_OF_SOURCE)
    assert queue.resume_point_nowait("src") == Resume((3,), True)
    assert queue.resume_point_nowait("other") == Resume(None, True)


def test_resume_point_counts_only_the_prefix_taken() -> None:
    queue = MemoryQueue("q", 3, ["a"], remember="total")

    queue.put_nowait(batch(0, 5))

    assert queue.resume_point_nowait("src") == Resume((2,), False)


async def test_async_requests_answer_as_the_synchronous_ones() -> None:
    queue = MemoryQueue("q", 4, ["a"])
    queue.put_nowait(batch(0, 3))
    await queue.get("a", 3)
    await queue.ack("a", 2, {"k": "v"})

    assert await queue.attach("a") == Saved(2, {"k": "v"})
    assert await queue.resume_point("src") == Resume((2,), False)
    assert (await queue.get("a", 3)).values == [2]


restarts = st.lists(
    st.one_of(
        st.tuples(st.just("put"), st.integers(0, 20), st.integers(1, 6)),
        st.tuples(st.just("get"), st.integers(1, 6)),
        st.tuples(st.just("ack"), st.integers(0, 40)),
        st.tuples(st.just("attach")),
    ),
    max_size=60,
)


@settings(max_examples=150, deadline=None)
@given(restarts)
def test_replayed_puts_and_rereads_deliver_each_event_once(ops: list[tuple]) -> None:
    # A producer that puts any range again (a restart), a consumer that attaches
    # again at any moment: what the consumer reads past its commit is every event
    # taken, once, in order.
    queue = MemoryQueue("q", 8, ["a"], remember="total")
    taken = 0  # events 0 .. taken-1 are in the queue or were
    read: list[int] = []
    for op in ops:
        if op[0] == "put":
            start = min(op[1], taken)  # from anything already put, up to new ones
            credit = queue.put_nowait(batch(start, op[2]))
            taken = max(taken, start + credit.accepted)
        elif op[0] == "get":
            try:
                read.extend(queue.get_nowait("a", op[1]).values)
            except WouldBlock:
                pass
        elif op[0] == "ack":
            committed = dict(queue.statistics().committed)["a"]
            queue.ack_nowait("a", min(max(op[1], committed), len(read)))
        else:
            saved = queue.attach_nowait("a")
            del read[saved.committed :]
        assert read == list(range(len(read)))
        assert queue.statistics().tail == taken


def test_attach_after_end_of_source_was_acknowledged_says_ended() -> None:
    queue = MemoryQueue("q", 4, ["a"])
    queue.put_nowait(batch(0, 2))
    queue.put_nowait(END_OF_SOURCE)
    queue.get_nowait("a", 4)
    queue.get_nowait("a", 4)

    queue.ack_nowait("a", 2)
    assert queue.attach_nowait("a") == Saved(2, {}, ended=False)
    queue.get_nowait("a", 4)
    queue.ack_nowait("a", 3)
    assert queue.attach_nowait("a") == Saved(3, {}, ended=True)


async def test_queue_input_attach_closes_inputs_whose_end_was_acknowledged() -> None:
    left = MemoryQueue("l", 4, ["m"])
    right = MemoryQueue("r", 4, ["m"])
    left.put_nowait(END_OF_SOURCE)
    right.put_nowait(END_OF_SOURCE)
    left.get_nowait("m", 1)
    left.ack_nowait("m", 1, {"k": 1})

    input = QueueInput([left, right], "m")
    assert await input.attach() == {"k": 1}
    assert not input.finished
    assert await input.take(4) == (1, END_OF_SOURCE)  # the open input only
    assert input.end_of(1)  # ... which was the last open one


def test_statistics_count_events_not_traces_nor_the_end() -> None:
    # Inside a split, a batch whose parts were all dropped travels as a trace: it
    # takes an offset and holds no event, so it is not counted as one.
    queue = MemoryQueue("q", 8, ["a", "b"])
    split = derive(Offsets("src", 0, 2), [2, 1], split=True)
    queue.put_nowait(Batch(["x"], split.slice(0, 1)))
    queue.put_nowait(Batch([], split.slice(1, 3)))  # a trace
    queue.put_nowait(Batch([], split.slice(1, 3)))  # another
    queue.put_nowait(END_OF_SOURCE)
    for _ in range(3):
        queue.get_nowait("a", 8)
        queue.get_nowait("b", 8)
    queue.ack_nowait("a", 2)
    queue.ack_nowait("b", 3)

    stats = queue.statistics()

    assert (stats.tail, stats.traces, stats.events) == (4, 2, 1)
    assert stats.traced == (("a", 1), ("b", 2))
    assert [stats.acknowledged(name) for name in ("a", "b")] == [1, 1]
    assert QueueStatistics.from_row(stats.to_row()) == stats

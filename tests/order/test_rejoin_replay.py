"""`rejoin` under replays: a split position covered twice is counted once.

A producer between a split and its rejoin, restarted after putting outputs and
before acknowledging its inputs, produces them again, maybe cut into other batches.
Its queue drops the replayed events by id, but stores replayed traces, slices of
partly replayed batches and (inside a split) wholly replayed batches as traces; the
rejoin must still give every parent once, with the right parts. The unit tests pin
each case; the property replays random suffixes of a filter's output through a real
`MemoryQueue` into a `Rejoin`. They run no job: the queue and the step are this
process's objects, so they stay local (the `mode` fixture is for tests that run
jobs).
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from reflow_lang.plan import ErrorPolicy
from reflow_lang.runtime.dedup import Remember, kept
from reflow_lang.runtime.events import Batch, Derived, Item, Offsets, derive, size
from reflow_lang.runtime.functions import UserFunction
from reflow_lang.runtime.offload import Offload
from reflow_lang.runtime.policy import ErrorHandler
from reflow_lang.runtime.queue import MemoryQueue
from reflow_lang.runtime.rejoin import Rejoin, cover
from reflow_lang.runtime.statistics import StageCounters


@contextmanager
def _rejoin(capacity: int = 100) -> Iterator[Rejoin]:
    async def sleep(seconds: float) -> None:
        return None

    counters = StageCounters()
    offload = Offload("rejoin", 1)
    handler = ErrorHandler("r", "tuple", ErrorPolicy(), counters, sleep)
    function = UserFunction(tuple, (), "tuple", False)
    try:
        yield Rejoin("r", function, handler, counters, offload, capacity)
    finally:
        offload.close()


def _split(counts: list[int]) -> Derived:
    stamps = derive(Offsets("src", 0, len(counts)), counts, split=True)
    assert isinstance(stamps, Derived)
    return stamps


def _filtered(split: Derived, start: int, stop: int, dropped: set[int]) -> Batch:
    # What a filter gives for split positions `start` to `stop`: the survivors
    # (each valued by its own stamp), or a trace when none survives.
    keep = [int(position not in dropped) for position in range(start, stop)]
    stamps = derive(split.slice(start, stop), keep, split=False)
    return Batch(stamps.materialise(), stamps)


async def _outputs(rejoin: Rejoin, batches: list[Batch]) -> list[tuple[Any, Any]]:
    found: list[tuple[Any, Any]] = []
    for batch in batches:
        outcome = await rejoin.process(batch)
        assert outcome.outputs is not None
        found.extend(zip(outcome.outputs.ids(), outcome.outputs.values, strict=True))
    return found


# The same trace twice; a replay cut anew; a late trace of a rejoined parent.


async def test_rejoin_counts_a_trace_given_twice_once() -> None:
    split = _split([4])
    trace = _filtered(split, 1, 2, {1})  # part 1 dropped
    batches = [
        _filtered(split, 0, 1, set()),
        trace,
        trace,  # stored again by the queue: a trace has no id
        _filtered(split, 2, 3, set()),
        _filtered(split, 3, 4, set()),
    ]
    with _rejoin() as rejoin:
        found = await _outputs(rejoin, batches)
        assert found == [(("src", 0), ((0, 0), (0, 2), (0, 3)))]
        assert rejoin.held() == 0


async def test_rejoin_counts_a_replay_cut_into_other_batches_once() -> None:
    # Parent 0 has 6 parts, 1 and 4 dropped. The original covered parts 0-2 as one
    # batch; the replay covers 0-3 (parts 0 and 2 already seen) and 3-5.
    split = _split([6, 1])
    dropped = {1, 4}
    replay_first = _filtered(split, 0, 4, dropped)
    keep = [stamp not in {(0, 0), (0, 2)} for stamp in replay_first.values]
    batches = [
        _filtered(split, 0, 3, dropped),
        kept(replay_first, keep),  # what the queue stores of it
        _filtered(split, 4, 7, dropped),
    ]
    with _rejoin() as rejoin:
        found = await _outputs(rejoin, batches)
    assert found == [
        (("src", 0), ((0, 0), (0, 2), (0, 3), (0, 5))),
        (("src", 1), ((1, 0),)),
    ]


async def test_rejoin_merges_covers_that_overlap_out_of_order() -> None:
    # Parts 2 and 3 dropped; a later cover overlaps both earlier ones.
    split = _split([5])
    dropped = {2, 3}
    batches = [
        _filtered(split, 2, 4, dropped),  # a trace of parts 2-3
        _filtered(split, 0, 2, dropped),
        _filtered(split, 1, 4, dropped),  # part 1 again, and parts 2-3
    ]
    with _rejoin() as rejoin:
        assert await _outputs(rejoin, batches) == []
        found = await _outputs(rejoin, [_filtered(split, 4, 5, dropped)])
    assert found == [(("src", 0), ((0, 0), (0, 1), (0, 4)))]


async def test_rejoin_ignores_a_late_trace_of_a_parent_it_rejoined() -> None:
    split = _split([2, 1])
    with _rejoin() as rejoin:
        first = await _outputs(rejoin, [_filtered(split, 0, 2, set())])
        assert first == [(("src", 0), ((0, 0), (0, 1)))]

        late = _filtered(split, 1, 2, {1})  # a replayed trace of parent 0
        outcome = await rejoin.process(late)
        assert outcome.outputs is not None
        assert (outcome.outputs.values, outcome.ends) == ([], [0])
        assert rejoin.held() == 0

        # Parent 1 is not held behind a reopened parent 0.
        second = await _outputs(rejoin, [_filtered(split, 2, 3, set())])
        assert second == [(("src", 1), ((1, 0),))]


async def test_rejoin_ignores_replayed_parts_of_a_parent_it_rejoined() -> None:
    split = _split([2, 2])
    with _rejoin() as rejoin:
        await _outputs(rejoin, [_filtered(split, 0, 2, set())])
        found = await _outputs(
            rejoin, [_filtered(split, 1, 3, set()), _filtered(split, 3, 4, set())]
        )
    assert found == [(("src", 1), ((1, 0), (1, 1)))]


# What the queue stores of a replay inside a split.


def test_kept_slice_covers_the_parts_its_dropped_replays_covered() -> None:
    split = _split([5])
    batch = _filtered(split, 0, 5, {1, 3, 4})  # parts 0 and 2 survive
    slice_ = kept(batch, [False, True])  # part 0 was already accepted
    assert slice_.values == [(0, 2)]
    found = cover(slice_.stamps)
    assert [(touch.first, touch.covered) for touch in found.touches] == [(0, 5)]
    assert (found.parents, found.parts) == ((0,), (2,))
    assert slice_.ids() == [("src", 0, 2)]


def test_queue_keeps_a_wholly_replayed_batch_inside_a_split_as_a_trace() -> None:
    split = _split([5])
    queue = MemoryQueue("q", 4, ["r"], remember="total")
    original = _filtered(split, 0, 5, {1, 3, 4})
    queue.put_nowait(original.slice(0, 1))  # part 0 only, then a crash
    assert queue.room() == 3

    replay = _filtered(split, 0, 2, {1, 3, 4})  # part 0 again, and dropped part 1
    credit = queue.put_nowait(replay)
    assert (credit.accepted, credit.room) == (1, 2)  # one slot: the trace
    queue.get_nowait("r", 10)
    stored = queue.get_nowait("r", 10)
    assert isinstance(stored, Batch) and stored.values == []
    found = cover(stored.stamps)
    assert [(touch.first, touch.covered) for touch in found.touches] == [(0, 2)]


def test_queue_drops_a_wholly_replayed_batch_outside_a_split() -> None:
    queue = MemoryQueue("q", 4, ["r"], remember="total")
    batch = Batch(["a", "b"], Offsets("src", 0, 2))
    queue.put_nowait(batch)
    credit = queue.put_nowait(batch)
    assert (credit.accepted, credit.room) == (2, 2)
    assert queue.statistics().entries == 1


# The property: random parts, filtering, cuts, and replays of any suffix.


class _Pipe:
    """A filter's output queue, read by a rejoin as a worker would."""

    def __init__(self, rejoin: Rejoin, queue: MemoryQueue, rnd: random.Random) -> None:
        self.rejoin = rejoin
        self.queue = queue
        self.rnd = rnd
        self.read = 0
        self.found: list[tuple[Any, Any]] = []

    async def drain(self) -> None:
        while self.read < self.queue.statistics().tail:
            item = self.queue.read_nowait("r", self.read, self.rnd.randint(1, 4))
            self.read += size(item)
            await self._feed(item)
            self.queue.ack_nowait("r", self.read)

    async def _feed(self, item: Item) -> None:
        assert isinstance(item, Batch)
        outcome = await self.rejoin.process(item)
        assert outcome.outputs is not None
        outputs = outcome.outputs
        self.found.extend(zip(outputs.ids(), outputs.values, strict=True))

    async def put(self, item: Batch, crash: bool) -> int:
        # Offers `item` as a worker does; a crash stops after the first put.
        # Answers how many of its events the queue took.
        start = 0
        while True:
            offered = item if start == 0 else item.slice(start, len(item))
            credit = self.queue.put_nowait(offered)
            start += credit.accepted
            if crash or start >= size(item):
                return start
            await self.drain()


async def _replayed(
    counts: list[int], dropped: set[int], rnd: random.Random, remember: Remember
) -> list[tuple[Any, Any]]:
    split = _split(counts)
    total = len(split)
    with _rejoin() as rejoin:
        pipe = _Pipe(
            rejoin, MemoryQueue("q", rnd.randint(1, 6), ["r"], remember=remember), rnd
        )
        position, crashes = 0, rnd.randint(0, 3)
        while position < total or total == 0:
            stop = min(total, position + rnd.randint(1, 4))
            batch = _filtered(split, position, stop, dropped)
            crash = crashes > 0 and rnd.random() < 0.4
            taken = await pipe.put(batch, crash)
            if crash:
                # Restarted from any point the stored covers reach: a suffix of
                # what it put is produced again, cut anew.
                crashes -= 1
                reached = _reached(batch, taken, position, stop)
                position = rnd.randint(0, reached)
                continue
            position = stop
            if total == 0:
                break
        await pipe.drain()
        return pipe.found


def _reached(batch: Batch, taken: int, start: int, stop: int) -> int:
    # The split positions the stored part of `batch` covers end at its last event
    # taken (all of them when it was taken whole).
    if taken >= size(batch):
        return stop
    positions = [start + index for index, flag in enumerate(_keeps(batch)) if flag]
    return positions[taken - 1] + 1 if taken else start


def _keeps(batch: Batch) -> list[int]:
    stamps = batch.stamps
    assert isinstance(stamps, Derived)
    return list(stamps.counts)


@settings(max_examples=60, deadline=None)
@given(
    data=st.data(),
    counts=st.lists(st.integers(min_value=0, max_value=4), max_size=10),
    rnd=st.randoms(use_true_random=False),
    remember=st.sampled_from(["total", "recent"]),
)
def test_rejoin_gives_every_parent_once_with_its_parts_under_replays(
    data: st.DataObject, counts: list[int], rnd: random.Random, remember: Remember
) -> None:
    positions = sum(counts)
    dropped: set[int] = set()
    if positions:
        dropped = set(data.draw(st.sets(st.integers(0, positions - 1))))

    found = asyncio.run(_replayed(counts, dropped, rnd, remember))

    expected = []
    position = 0
    for parent, count in enumerate(counts):
        parts = []
        for part in range(count):
            if position not in dropped:
                parts.append((parent, part))
            position += 1
        expected.append((("src", parent), tuple(parts)))
    assert found == expected

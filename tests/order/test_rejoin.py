"""`rejoin`: one output per parent, in order, with the surviving parts in split order.

The property runs a flow where parts are dropped at random, parents may have no
parts, and the stages between the split and the rejoin run on several workers; the
unit tests pin the split covers and when the rejoin's inputs are acknowledged.

Every test that runs a flow runs in both modes (the `mode` fixture); the unit tests
of `cover` and `Rejoin` are about this process's objects and stay local.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from hypothesis import given
from hypothesis import strategies as st

from reflow_lang.errors import ReflowError, StageError
from reflow_lang.plan import ErrorPolicy
from reflow_lang.runtime.dedup import kept
from reflow_lang.runtime.events import Batch, Derived, Offsets, derive
from reflow_lang.runtime.functions import UserFunction
from reflow_lang.runtime.offload import Offload
from reflow_lang.runtime.policy import ErrorHandler
from reflow_lang.runtime.rejoin import Rejoin, Touch, cover
from reflow_lang.runtime.statistics import StageCounters

from .helpers import examples, fns, only, run


def test_rejoin_gives_every_parent_once_with_its_surviving_parts(mode: str) -> None:
    @examples(mode, 30)
    @given(
        data=st.data(),
        parts=st.lists(st.integers(min_value=0, max_value=6), max_size=12),
        workers=st.integers(min_value=1, max_value=4),
        batch=st.integers(min_value=1, max_value=5),
        capacity=st.integers(min_value=1, max_value=8),
        order=st.sampled_from(["partial", "total"]),
        delays=st.lists(st.integers(min_value=0, max_value=8), min_size=1, max_size=8),
    )
    def check(
        data: st.DataObject,
        parts: list[int],
        workers: int,
        batch: int,
        capacity: int,
        order: str,
        delays: list[int],
    ) -> None:
        every = [(parent, i) for parent, n in enumerate(parts) for i in range(n)]
        dropped = (
            set(data.draw(st.lists(st.sampled_from(every), unique=True)))
            if every
            else set()
        )
        fns.configure(
            range(len(parts)),
            delays=delays,
            parts=dict(enumerate(parts)),
            dropped=dropped,
        )
        options = f"workers = {workers}, batch = {batch}, capacity = {capacity}"
        _, sinks = run(
            "xs = source f.events()\n"
            f"xs | flat_map f.explode [capacity = {capacity}]\n"
            f"   | filter f.keep [{options}]\n"
            f"   | map f.work [{options}, order = {order}]\n"
            "   | rejoin f.gather | sink f.work\n",
            mode,
        )

        expected = [
            tuple(
                part for part in ((parent, i) for i in range(n)) if part not in dropped
            )
            for parent, n in enumerate(parts)
        ]
        assert only(sinks) == expected

    check()


def test_rejoin_counts_parents_with_no_parts_and_parents_filtered_out(
    mode: str,
) -> None:
    fns.configure(
        range(5),
        parts={0: 2, 1: 0, 2: 3, 3: 0, 4: 1},
        dropped={(2, 0), (2, 1), (2, 2), (4, 0)},
    )
    _, sinks = run(
        "xs = source f.events()\n"
        "xs | flat_map f.explode | filter f.keep | rejoin f.gather | sink f.work\n",
        mode,
    )
    assert only(sinks) == [((0, 0), (0, 1)), (), (), (), ()]


def test_rejoin_of_a_flow_that_drops_everything_still_gives_every_parent(
    mode: str,
) -> None:
    fns.configure(
        range(30),
        parts={n: 2 for n in range(30)},
        dropped={(n, i) for n in range(30) for i in range(2)},
    )
    _, sinks = run(
        "xs = source f.events()\n"
        "xs | flat_map f.explode [batch = 4] | filter f.keep [batch = 3]"
        " | rejoin f.gather | sink f.work\n",
        mode,
    )
    assert only(sinks) == [()] * 30


# Covers: which split positions a batch accounts for.


def _split(counts: list[int]) -> Derived:
    parents = Offsets("src", 10, 10 + len(counts))
    stamps = derive(parents, counts, split=True)
    assert isinstance(stamps, Derived)
    return stamps


def _touch(stamp: tuple[int, ...], total: int, covered: int, first: int = 0) -> Touch:
    return Touch(stamp, total, covered, first=first, origin="src")


def test_cover_of_a_split_slice_names_parents_and_parts() -> None:
    stamps = _split([2, 0, 3]).slice(1, 4)
    found = cover(stamps)
    assert found.touches == (
        _touch((10,), 2, 1, first=1),
        _touch((11,), 0, 0),
        _touch((12,), 3, 2),
    )
    assert (found.parents, found.parts) == ((0, 2, 2), (1, 0, 1))


def test_cover_gives_dropped_parts_to_the_slice_of_the_next_survivor() -> None:
    split = _split([3, 2])
    kept = derive(split, [1, 0, 0, 1, 0], split=False)  # keeps (10, 0) and (11, 0)
    first, second = cover(kept.slice(0, 1)), cover(kept.slice(1, 2))
    assert first.touches == (_touch((10,), 3, 1),)
    assert second.touches == (_touch((10,), 3, 2, first=1), _touch((11,), 2, 2))
    assert second.parents == (1,)


def test_cover_of_a_trace_accounts_for_everything_it_dropped() -> None:
    split = _split([1, 0, 2])
    trace = derive(split, [0, 0, 0], split=False)
    found = cover(trace)
    assert found.touches == (
        _touch((10,), 1, 1),
        _touch((11,), 0, 0),
        _touch((12,), 2, 2),
    )
    assert found.parents == ()


def test_cover_without_a_split_is_an_error() -> None:
    with pytest.raises(ReflowError, match=r"^events of `src` reached a rejoin without"):
        cover(Offsets("src", 0, 3))


# Acknowledgement: a part is freed by its parent's output.


@contextmanager
def _rejoin(capacity: int = 100, fail_on: object = None) -> Iterator[Rejoin]:
    def gather(parts: list[object]) -> tuple[object, ...]:
        if fail_on in parts:
            msg = "bad part"
            raise ValueError(msg)
        return tuple(parts)

    async def sleep(seconds: float) -> None:
        return None

    counters = StageCounters()
    offload = Offload("rejoin", 1)
    handler = ErrorHandler("r", "gather", ErrorPolicy(), counters, sleep)
    function = UserFunction(gather, (), "gather", False)
    try:
        yield Rejoin("r", function, handler, counters, offload, capacity)
    finally:
        offload.close()


def _batch(stamps: Derived, start: int, stop: int) -> Batch:
    positions = stamps.slice(start, stop).materialise()
    return Batch([stamp[-1] for stamp in positions], stamps.slice(start, stop))


async def test_rejoin_acknowledges_parts_only_with_their_parents_output() -> None:
    split = _split([3, 1, 0])
    with _rejoin() as rejoin:
        first = await rejoin.process(_batch(split, 0, 2))
        assert first.outputs is not None
        assert (first.outputs.values, first.ends) == ([], [])
        assert rejoin.held() == 2

        second = await rejoin.process(_batch(split, 2, 4))
        assert second.outputs is not None
        assert second.outputs.values == [(0, 1, 2), (0,), ()]
        # Parts of parent 10 are freed by output 1; the last input also waits for
        # the parent with no parts that its batch accounts for.
        assert second.ends == [1, 1, 1, 3]
        assert rejoin.held() == 0


async def test_rejoin_acknowledges_early_rather_than_block_its_producer() -> None:
    split = _split([5])
    with _rejoin(capacity=2) as rejoin:
        outcome = await rejoin.process(_batch(split, 0, 2))
        assert outcome.ends == [0, 0]  # freed at once: holding them would deadlock
        final = await rejoin.process(_batch(split, 2, 5))
        assert final.outputs is not None
        assert final.outputs.values == [(0, 1, 2, 3, 4)]
        assert final.ends == [1, 1, 1]


async def test_rejoin_leaves_its_producer_room_for_half_its_queue() -> None:
    # A producer facing a full queue waits for half of it to be free: with a
    # queue of 6, a parent may hold 3 parts unacknowledged, not 4.
    split = _split([6])
    with _rejoin(capacity=6) as rejoin:
        held = await rejoin.process(_batch(split, 0, 3))
        assert (held.ends, rejoin.held()) == ([], 3)
        freed = await rejoin.process(_batch(split, 3, 4))
        assert (freed.ends, rejoin.held()) == ([0, 0, 0, 0], 0)


async def test_rejoin_failure_names_the_parent() -> None:
    split = _split([2])
    with _rejoin(fail_on=1) as rejoin:
        with pytest.raises(StageError) as caught:
            await rejoin.process(_batch(split, 0, 2))
        assert str(caught.value) == (
            "stage `r` failed: `gather` raised ValueError: bad part; "
            "event ('src', 10): [0, 1]"
        )
        assert isinstance(caught.value.__cause__, ValueError)


def test_nested_rejoins_close_their_own_splits(mode: str) -> None:
    @examples(mode, 25)
    @given(
        data=st.data(),
        parts=st.lists(st.integers(min_value=0, max_value=4), max_size=8),
        workers=st.integers(min_value=1, max_value=3),
        batch=st.integers(min_value=1, max_value=4),
        delays=st.lists(st.integers(min_value=0, max_value=6), min_size=1, max_size=6),
    )
    def check(
        data: st.DataObject,
        parts: list[int],
        workers: int,
        batch: int,
        delays: list[int],
    ) -> None:
        middle = [(parent, i) for parent, n in enumerate(parts) for i in range(n)]
        counts = {
            part: data.draw(st.integers(min_value=0, max_value=3)) for part in middle
        }
        leaves = [(part, j) for part in middle for j in range(counts[part])]
        dropped: set[object] = set()
        if leaves:
            dropped = set(data.draw(st.lists(st.sampled_from(leaves), unique=True)))
        splits: dict[object, int] = dict(enumerate(parts))
        splits.update(counts)
        fns.configure(range(len(parts)), delays=delays, parts=splits, dropped=dropped)
        options = f"workers = {workers}, batch = {batch}"
        _, sinks = run(
            "xs = source f.events()\n"
            "xs | flat_map f.explode\n"
            f"   | flat_map f.explode [{options}]\n"
            f"   | filter f.keep [{options}]\n"
            "   | rejoin f.gather\n"
            f"   | map f.work [{options}]\n"
            "   | rejoin f.gather | sink f.work\n",
            mode,
        )

        def inner(part: tuple[int, int]) -> tuple[object, ...]:
            return tuple(
                leaf
                for leaf in ((part, j) for j in range(counts[part]))
                if leaf not in dropped
            )

        expected = [
            tuple(inner((parent, i)) for i in range(n))
            for parent, n in enumerate(parts)
        ]
        assert only(sinks) == expected

    check()


def test_three_nested_rejoins_pass_outer_traces_through_inner_ones(mode: str) -> None:
    @examples(mode, 15)
    @given(
        rnd=st.randoms(use_true_random=False),
        workers=st.integers(min_value=1, max_value=3),
        batch=st.integers(min_value=1, max_value=3),
    )
    def check(rnd: random.Random, workers: int, batch: int) -> None:
        parts: dict[object, int] = {}

        def build(key: object, depth: int) -> None:
            parts[key] = rnd.randint(0, 3)
            if depth < 2:
                for i in range(parts[key]):
                    build((key, i), depth + 1)

        count = rnd.randint(0, 4)
        for parent in range(count):
            build(parent, 0)
        leaves = [
            ((key, i), j)
            for key, n in parts.items()
            for i in range(n)
            for j in range(parts.get((key, i), 0))
        ]
        dropped = {leaf for leaf in leaves if rnd.random() < 0.4}
        delays = [rnd.randint(0, 5) for _ in range(4)]
        fns.configure(range(count), parts=parts, dropped=dropped, delays=delays)
        options = f"workers = {workers}, batch = {batch}"
        _, sinks = run(
            "xs = source f.events()\n"
            f"xs | flat_map f.explode | flat_map f.explode [{options}]\n"
            f"   | flat_map f.explode [batch = {batch}] | filter f.keep [{options}]\n"
            f"   | rejoin f.gather | rejoin f.gather | map f.work [{options}]\n"
            "   | rejoin f.gather | sink f.work\n",
            mode,
        )

        def rejoined(key: object, depth: int) -> tuple[object, ...]:
            children = [(key, i) for i in range(parts.get(key, 0))]
            if depth == 2:
                return tuple(child for child in children if child not in dropped)
            return tuple(rejoined(child, depth + 1) for child in children)

        assert only(sinks) == [rejoined(parent, 0) for parent in range(count)]

    check()


def test_nested_rejoins_with_a_filter_between_them(mode: str) -> None:
    # The outer rejoin counts the inner rejoin's outputs that the filter drops.
    parts: dict[object, int] = {0: 2, 1: 1, 2: 0, (0, 0): 2, (0, 1): 1, (1, 0): 3}
    inner = {
        middle: tuple((middle, leaf) for leaf in range(parts[middle]))
        for middle in [(0, 0), (0, 1), (1, 0)]
    }
    fns.configure(range(3), parts=parts, dropped={inner[(0, 1)]})
    _, sinks = run(
        "xs = source f.events()\n"
        "xs | flat_map f.explode | flat_map f.explode [batch = 1]\n"
        "   | rejoin f.gather | filter f.keep | rejoin f.gather | sink f.work\n",
        mode,
    )
    assert only(sinks) == [(inner[(0, 0)],), (inner[(1, 0)],), ()]


async def test_rejoin_counts_a_kept_slice_of_an_inner_rejoins_outputs() -> None:
    # An inner rejoin's outputs, replayed: the queue keeps the new one as a slice
    # whose stamps filter the whole batch's (`kept`), and the outer rejoin counts
    # the positions of the dropped replay too.
    outer = _split([3])
    inner_split = derive(outer, [1, 1, 1], split=True)
    values = [(stamp, 0) for stamp in inner_split.materialise()]
    with _rejoin() as inner_step:
        outcome = await inner_step.process(Batch(values, inner_split))
    assert outcome.outputs is not None and len(outcome.outputs) == 3
    replay = kept(outcome.outputs, [False, True, True])
    with _rejoin() as outer_step:
        first = await outer_step.process(outcome.outputs.slice(0, 1))
        assert first.outputs is not None and first.outputs.values == []
        found = await outer_step.process(replay)
    assert found.outputs is not None
    assert found.outputs.ids() == [("src", 10)]
    assert found.outputs.values == [tuple((value,) for value in values)]

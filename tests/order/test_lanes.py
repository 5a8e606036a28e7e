"""Keyed lanes: runs of equal keys, and keys that cannot be compared.

A batch is cut into lanes by runs of equal keys (a run is hashed once); these tests
check where runs are cut, and that `keyed` keeps each key's order when the keys come
in runs or when comparing two keys raises.

The flows run in both modes (the `mode` fixture); the tests of `_run_bounds` and
`_gather` are unit tests of this process's objects and stay local.
"""

from __future__ import annotations

from collections import defaultdict, deque
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from reflow_lang.runtime.events import Batch, Listed, Offsets
from reflow_lang.runtime.reorder import _gather, _Piece, _run_bounds

from .helpers import examples, fns, only, run

# The key that `orderfns.stubborn_key_of` makes: `!=` raises.
Stubborn = fns.Stubborn


def test_run_bounds_cut_where_the_key_changes() -> None:
    assert _run_bounds([1, 1, 2, 2, 2, 1, 3]) == [0, 2, 5, 6, 7]


def test_run_bounds_of_one_key_are_one_run() -> None:
    assert _run_bounds(["a"] * 4) == [0, 4]


def test_run_bounds_of_uncomparable_keys_make_every_event_a_run() -> None:
    keys = [Stubborn(1), Stubborn(1), Stubborn(2)]
    assert _run_bounds(keys) == [0, 1, 2, 3]


def test_gather_copies_pieces_of_several_batches_into_one_unit() -> None:
    first = Batch(list("abcdef"), Offsets("xs", 0, 6))
    second = Batch(list("ghij"), Offsets("xs", 6, 10))
    pieces = deque(
        [
            _Piece(0, first, first.stamps.materialise(), [(0, 2), (4, 5)], 0, 3),
            _Piece(0, second, None, [(0, 4)], 6, 4),
        ]
    )

    unit = _gather(pieces, 1, 100)

    assert unit.item == Batch(
        list("abeghij"),
        Listed("xs", ((0,), (1,), (4,), (6,), (7,), (8,), (9,))),
    )
    assert unit.ranges == [(0, 2), (4, 5), (6, 10)]
    assert unit.lane == 1
    assert not pieces


def test_gather_cuts_the_last_piece_to_a_batch() -> None:
    batch = Batch(list("abcdefgh"), Offsets("xs", 0, 8))
    stamps = batch.stamps.materialise()
    pieces = deque([_Piece(0, batch, stamps, [(0, 3), (5, 8)], 0, 6)])

    unit = _gather(pieces, 0, 4)

    assert unit.item == Batch(list("abcf"), Listed("xs", ((0,), (1,), (2,), (5,))))
    assert unit.ranges == [(0, 3), (5, 6)]
    assert list(pieces) == [_Piece(0, batch, stamps, [(6, 8)], 0, 2)]


def test_gather_runs_a_whole_batch_of_one_lane_as_it_is() -> None:
    batch = Batch(list("abc"), Offsets("xs", 3, 6))
    pieces = deque([_Piece(0, batch, None, [(0, 3)], 3, 3)])

    unit = _gather(pieces, 2, 8)

    assert unit.item is batch
    assert unit.ranges == [(3, 6)]


def test_keyed_order_keeps_each_keys_order_when_keys_come_in_runs(mode: str) -> None:
    @examples(mode, 20)
    @given(
        runs=st.lists(
            st.tuples(
                st.integers(min_value=0, max_value=5),
                st.integers(min_value=1, max_value=6),
            ),
            max_size=14,
        ),
        workers=st.integers(min_value=2, max_value=4),
        batch=st.integers(min_value=1, max_value=16),
        delays=st.lists(st.integers(min_value=0, max_value=8), min_size=1, max_size=12),
    )
    def check(
        runs: list[tuple[int, int]], workers: int, batch: int, delays: list[int]
    ) -> None:
        keys = [key for key, length in runs for _ in range(length)]
        events = [(key, position) for position, key in enumerate(keys)]
        out = _run_keyed(mode, events, "f.key_of", workers, batch, delays)

        assert sorted(out) == sorted(events)
        assert _per_key(out) == _per_key(events)

    check()


def test_keyed_order_keeps_each_keys_order_when_keys_cannot_be_compared(
    mode: str,
) -> None:
    # The key function gives `Stubborn` keys, made in the stage's process.
    @examples(mode, 20)
    @given(
        keys=st.lists(st.integers(min_value=0, max_value=3), max_size=30),
        batch=st.integers(min_value=1, max_value=10),
        delays=st.lists(st.integers(min_value=0, max_value=8), min_size=1, max_size=12),
    )
    def check(keys: list[int], batch: int, delays: list[int]) -> None:
        events = [(key, position) for position, key in enumerate(keys)]
        out = _run_keyed(mode, events, "f.stubborn_key_of", 3, batch, delays)

        assert sorted(out) == sorted(events)
        assert _per_key(out) == _per_key(events)

    check()


def _run_keyed(
    mode: str,
    events: list[Any],
    key: str,
    workers: int,
    batch: int,
    delays: list[int],
) -> list[Any]:
    fns.configure(events, delays=delays, chunk=1)
    _, sinks = run(
        "xs = source f.events()\n"
        f"xs | map f.work [workers = {workers}, batch = {batch}, "
        f"order = keyed({key})] | sink f.work\n",
        mode,
    )
    return only(sinks)


def _per_key(events: list[Any]) -> dict[Any, list[Any]]:
    grouped: dict[Any, list[Any]] = defaultdict(list)
    for event in events:
        grouped[event[0]].append(event)
    return dict(grouped)

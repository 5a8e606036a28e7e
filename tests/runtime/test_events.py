"""Compact stamps: what they materialise to, sliced anywhere."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from reflow_lang.runtime.events import (
    END_OF_SOURCE,
    Batch,
    Listed,
    Offsets,
    derive,
    size,
    slice_item,
)


def test_offsets_materialise_and_ids() -> None:
    batch = Batch(["a", "b", "c"], Offsets("lines", 7, 10))

    assert batch.stamps.materialise() == [(7,), (8,), (9,)]
    assert batch.ids() == [("lines", 7), ("lines", 8), ("lines", 9)]
    assert batch.event_id(1) == ("lines", 8)


def test_split_stamps_add_part_index() -> None:
    parts = derive(Offsets("s", 7, 10), [2, 0, 1], split=True)

    assert parts.materialise() == [(7, 0), (7, 1), (9, 0)]
    assert parts.origin == "s"


def test_filter_of_split_keeps_part_stamps() -> None:
    parts = derive(Offsets("s", 0, 2), [3, 2], split=True)
    kept = derive(parts, [1, 0, 1, 0, 1], split=False)

    assert kept.materialise() == [(0, 0), (0, 2), (1, 1)]
    assert kept.slice(1, 3).materialise() == [(0, 2), (1, 1)]


def test_listed_stamps() -> None:
    stamps = Listed("s", ((3,), (4, 1)))

    assert stamps.slice(1, 2).materialise() == [(4, 1)]
    assert len(stamps) == 2


def test_instruction_is_one_slot_and_indivisible() -> None:
    assert size(END_OF_SOURCE) == 1
    assert slice_item(END_OF_SOURCE, 0, 1) is END_OF_SOURCE


def test_batch_slice_keeps_keys_aligned() -> None:
    batch = Batch([1, 2, 3], Offsets("s", 0, 3), ["a", "b", "c"])

    part = batch.slice(1, 3)

    assert (part.values, part.keys, part.ids()) == (
        [2, 3],
        ["b", "c"],
        [("s", 1), ("s", 2)],
    )


@settings(max_examples=100, deadline=None)
@given(
    st.lists(st.integers(0, 4), min_size=1, max_size=10),
    st.lists(st.booleans(), min_size=40, max_size=40),
    st.integers(0, 40),
    st.integers(0, 40),
)
def test_slices_of_derived_stamps_match_materialised(
    counts: list[int], keep: list[bool], start: int, stop: int
) -> None:
    parts = derive(Offsets("s", 5, 5 + len(counts)), counts, split=True)
    kept = derive(parts, keep[: len(parts)], split=False)
    full = kept.materialise()
    start, stop = sorted((min(start, len(full)), min(stop, len(full))))

    assert kept.slice(start, stop).materialise() == full[start:stop]
    assert len(kept.slice(start, stop)) == stop - start
    expected = [(5 + p, i) for p, c in enumerate(counts) for i in range(c)]
    assert full == [s for s, k in zip(expected, keep, strict=False) if k]

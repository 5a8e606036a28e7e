"""The input/output map: RUNTIME.md's worked example, and its properties."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reflow_lang.runtime.iomap import IOMap


def worked_example() -> IOMap:
    iomap = IOMap()
    iomap.one_to_one(1)  # input 1 -> output 1
    iomap.filtered(1)  # input 2 -> nothing
    iomap.counts([3])  # input 3 -> outputs 2-4
    iomap.no_input(1)  # output 5
    iomap.batch(2, 3)  # inputs 4-5 -> outputs 6-8
    return iomap


@pytest.mark.parametrize(
    ("accepted", "delivered"),
    [(0, 0), (1, 2), (2, 2), (3, 2), (4, 3), (5, 3), (6, 3), (7, 3), (8, 5)],
)
def test_iomap_worked_example_table(accepted: int, delivered: int) -> None:
    iomap = worked_example()

    assert iomap.advance(accepted) == [delivered]


def test_iomap_worked_example_one_output_at_a_time() -> None:
    iomap = worked_example()

    freed = [iomap.advance(1)[0] for _ in range(8)]

    assert freed == [2, 0, 0, 1, 0, 0, 0, 2]
    assert len(iomap) == 0


def test_iomap_single_filtered_input_is_delivered() -> None:
    iomap = IOMap()
    iomap.filtered(1)

    assert iomap.advance(0) == [1]


def test_iomap_batch_all_filtered_is_delivered() -> None:
    iomap = IOMap()
    iomap.counts([0] * 256)

    assert iomap.advance(0) == [256]
    assert len(iomap) == 0


def test_iomap_one_to_one_run_is_one_record() -> None:
    iomap = IOMap()
    iomap.one_to_one(256)

    assert len(iomap) == 1
    assert iomap.advance(100) == [100]
    assert iomap.advance(156) == [156]


def test_iomap_instruction_freed_once_its_output_accepted() -> None:
    iomap = IOMap()
    iomap.one_to_one(2)
    iomap.instruction(1)

    assert iomap.advance(2) == [2]
    assert iomap.advance(1) == [1]


def test_iomap_counts_per_input_queue() -> None:
    iomap = IOMap(inputs=2)
    iomap.one_to_one(2, input=1)
    iomap.one_to_one(3, input=0)
    iomap.instruction(0, input=1)

    assert iomap.advance(3) == [1, 2]
    assert iomap.advance(2) == [2, 1]


def test_iomap_refuses_more_than_pending() -> None:
    iomap = IOMap()
    iomap.one_to_one(2)

    with pytest.raises(
        ValueError, match=re.escape("accepted 3 outputs; only 2 are pending")
    ):
        iomap.advance(3)


# A record, as (kind, size): one-to-one run, per-input counts, m:n batch, no input.
records = st.lists(
    st.one_of(
        st.tuples(st.just("one"), st.integers(1, 5)),
        st.tuples(
            st.just("counts"), st.lists(st.integers(0, 3), min_size=1, max_size=6)
        ),
        st.tuples(st.just("batch"), st.tuples(st.integers(0, 3), st.integers(0, 4))),
        st.tuples(st.just("filtered"), st.integers(1, 3)),
    ),
    max_size=12,
)


def build(spec: list[tuple]) -> tuple[IOMap, list[list[int]]]:
    """The map, and for each input the (global) output positions it needs."""
    iomap = IOMap()
    needs: list[list[int]] = []
    output = 0
    for kind, size in spec:
        if kind == "one":
            iomap.one_to_one(size)
            needs.extend([[output + i] for i in range(size)])
            output += size
        elif kind == "counts":
            iomap.counts(size)
            for count in size:
                needs.append(list(range(output, output + count)))
                output += count
        elif kind == "filtered":
            iomap.filtered(size)
            needs.extend([] for _ in range(size))
        else:
            inputs, outputs = size
            iomap.batch(inputs, outputs)
            if inputs:
                needs.extend(
                    list(range(output, output + outputs)) for _ in range(inputs)
                )
            output += outputs
    return iomap, needs


@settings(max_examples=200, deadline=None)
@given(records, st.lists(st.integers(0, 5), max_size=30))
def test_iomap_acks_exactly_the_delivered_prefix(
    spec: list[tuple], steps: list[int]
) -> None:
    iomap, needs = build(spec)
    accepted = 0
    acked = 0
    for step in [*steps, iomap.pending_outputs]:
        step = min(step, iomap.pending_outputs)
        accepted += step
        freed = iomap.advance(step)[0]
        assert freed >= 0  # acknowledgement never moves backwards
        acked += freed

        # Never past an input whose outputs are not all accepted; always the whole
        # prefix whose outputs are (a filtered input goes with what is before it).
        expected = 0
        while expected < len(needs) and all(o < accepted for o in needs[expected]):
            expected += 1
        assert acked == expected
    assert acked == len(needs)
    assert len(iomap) == 0

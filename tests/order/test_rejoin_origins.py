"""`rejoin` keys its parents by origin and stamp, and replays of old parents.

A `merge` before the split tags each input's stamps with the input (`Via`), so two
parents may share a stamp and differ by origin: they are two parents, and each
output keeps its own parent's origin (an output batch has one origin, so a round
that closes parents of several origins gives one batch per run of one origin).

Where the split's input is in `total` order the rejoin remembers the highest parent
it rejoined per origin, saved with its acknowledgements: a replay reaching back
further than its bounded memory of recent parents is still ignored, also after a
restart.

The flows run in both modes (the `mode` fixture); the ids of the rejoin's outputs
are read from the in-memory queues (`observing_queues`), so in local mode only. The
tests of the `Rejoin` step are about this process's objects and stay local.
"""

from __future__ import annotations

import contextlib
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from reflow_lang.frontend.api import compile_source
from reflow_lang.plan import ErrorPolicy, Plan
from reflow_lang.runtime.chain import Outcome
from reflow_lang.runtime.dedup import Via
from reflow_lang.runtime.events import Batch, Derived, Offsets, derive
from reflow_lang.runtime.functions import UserFunction
from reflow_lang.runtime.offload import Offload
from reflow_lang.runtime.policy import ErrorHandler
from reflow_lang.runtime.rejoin import Concat, Rejoin
from reflow_lang.runtime.statistics import StageCounters
from reflow_lang.testing import Put, observing_queues

from .helpers import FLOW, examples, fns, only, run

MERGED = (
    "xs = source f.events()\n"
    "ys = source f.right_events()\n"
    "merge(xs, ys) | flat_map f.explode | rejoin f.gather | sink f.work\n"
)


def _expected(values: list[Any], parts: dict[Any, int], dropped: set[Any]) -> list[Any]:
    # One output per parent, in its input's order: its surviving parts.
    return [
        tuple(
            (value, index)
            for index in range(parts.get(value, 0))
            if (value, index) not in dropped
        )
        for value in values
    ]


# The flow of the issue: a merge of two inputs of 0, 1, 2 before the split.


def test_rejoin_after_a_merge_gives_every_parent_of_both_inputs(mode: str) -> None:
    xs, ys = [0, 1, 2], [10, 11, 12]
    parts = {0: 2, 1: 1, 2: 3, 10: 2, 11: 0, 12: 1}
    fns.configure(xs, right=ys, parts=parts)
    result, sinks = run(MERGED, mode)

    assert Counter(only(sinks)) == Counter(
        _expected(xs, parts, set()) + _expected(ys, parts, set())
    )
    (rejoin,) = (stage for stage in result.statistics.stages if stage.kind == "rejoin")
    assert (rejoin.events_in, rejoin.events_out) == (9, 6)


def test_rejoin_after_a_merge_of_equal_inputs_gives_six_outputs(mode: str) -> None:
    fns.configure([0, 1, 2], right=[0, 1, 2], parts={0: 2, 1: 2, 2: 2})
    result, sinks = run(MERGED, mode)

    expected = [((value, 0), (value, 1)) for value in (0, 1, 2)]
    assert Counter(only(sinks)) == Counter(expected * 2)
    (rejoin,) = (stage for stage in result.statistics.stages if stage.kind == "rejoin")
    assert (rejoin.events_in, rejoin.events_out) == (12, 6)


def test_rejoin_after_a_merge_gives_distinct_ids_in_an_exactly_once_flow(
    mode: str,
) -> None:
    # The ids are read from the in-memory queues, so locally only; in process mode
    # the queue after the rejoin drops an id it has seen, so six outputs there show
    # six ids too.
    fns.configure([0, 1, 2], right=[0, 1, 2], parts={0: 2, 1: 2, 2: 2})
    body = (
        "xs = source f.events()\n"
        "ys = source f.right_events()\n"
        "rejoined = merge(xs, ys) | flat_map f.explode | rejoin f.gather\n"
        "rejoined | map f.work | sink f.work\n"
    )
    observing = (
        observing_queues(fused=False)
        if mode == "local"
        else contextlib.nullcontext(list[Put]())
    )
    with observing as puts:
        _, sinks = run(body, mode, delivery="exactly_once")

    expected = [((value, 0), (value, 1)) for value in (0, 1, 2)]
    assert Counter(only(sinks)) == Counter(expected * 2)
    if mode == "local":
        _assert_distinct_parent_ids(puts, expected)


def _assert_distinct_parent_ids(puts: list[Put], expected: list[Any]) -> None:
    outputs = [
        (event_id, value)
        for put in puts
        if put.queue == "rejoined" and isinstance(put.item, Batch)
        for event_id, value in zip(put.item.ids(), put.item.values, strict=True)
    ]
    ids = [event_id for event_id, _ in outputs]
    assert len(ids) == len(set(ids)) == 6
    # Each id is its own parent's: the merge's input, then the source offset.
    assert {(event_id[0].split("@")[0], event_id[1:]) for event_id in ids} == {
        (source, (offset,)) for source in ("xs", "ys") for offset in range(3)
    }
    for event_id, value in outputs:
        assert value == expected[event_id[1]]


def test_rejoin_after_a_merge_gives_each_inputs_parents_in_order(mode: str) -> None:
    @examples(mode, 25)
    @given(
        data=st.data(),
        left=st.lists(st.integers(min_value=0, max_value=4), max_size=8),
        right=st.lists(st.integers(min_value=0, max_value=4), max_size=8),
        batch=st.integers(min_value=1, max_value=4),
        capacity=st.integers(min_value=1, max_value=6),
        delays=st.lists(st.integers(min_value=0, max_value=6), min_size=1, max_size=6),
    )
    def check(
        data: st.DataObject,
        left: list[int],
        right: list[int],
        batch: int,
        capacity: int,
        delays: list[int],
    ) -> None:
        # Both inputs number their parents from 0: every stamp is given twice.
        xs = [("x", index) for index in range(len(left))]
        ys = [("y", index) for index in range(len(right))]
        parts = dict(zip(xs + ys, left + right, strict=True))
        every = [(value, i) for value, count in parts.items() for i in range(count)]
        dropped: set[Any] = set()
        if every:
            dropped = set(data.draw(st.lists(st.sampled_from(every), unique=True)))
        fns.configure(xs, right=ys, parts=parts, dropped=dropped, delays=delays)
        options = f"batch = {batch}, capacity = {capacity}"
        _, sinks = run(
            "xs = source f.events()\n"
            "ys = source f.right_events()\n"
            f"merge(xs, ys) | flat_map f.explode [{options}]\n"
            f"   | filter f.keep [{options}] | rejoin f.gather | sink f.work\n",
            mode,
        )

        found = only(sinks)
        assert len(found) == len(xs) + len(ys)
        # A parent with no surviving part gives `()`, which names no input.
        named = [output for output in found if output]
        for side, values in (("x", xs), ("y", ys)):
            mine = [output for output in named if output[0][0][0] == side]
            assert mine == [
                output for output in _expected(values, parts, dropped) if output
            ]
        assert Counter(found) == Counter(
            _expected(xs, parts, dropped) + _expected(ys, parts, dropped)
        )

    check()


# The step itself: parents of one stamp and two origins, in one round.


@contextmanager
def _rejoin(capacity: int = 100, *, ordered: bool = False) -> Iterator[Rejoin]:
    async def sleep(seconds: float) -> None:
        return None

    counters = StageCounters()
    offload = Offload("rejoin", 1)
    handler = ErrorHandler("r", "tuple", ErrorPolicy("skip"), counters, sleep)
    function = UserFunction(_gather, (), "gather", False)
    try:
        yield Rejoin(
            "r", function, handler, counters, offload, capacity, ordered=ordered
        )
    finally:
        offload.close()


def _gather(parts: list[Any]) -> tuple[Any, ...]:
    if "bad" in parts:
        msg = "a bad part"
        raise ValueError(msg)
    return tuple(parts)


def _split(counts: list[int], tag: str | None = None) -> Derived:
    parents = Offsets("src", 0, len(counts))
    stamps = derive(parents if tag is None else Via(parents, tag), counts, split=True)
    assert isinstance(stamps, Derived)
    return stamps


def _parts(split: Derived, start: int, stop: int, values: list[Any]) -> Batch:
    return Batch(values[start:stop], split.slice(start, stop))


def _batches(outcome: Outcome) -> list[list[tuple[Any, Any]]]:
    # Each output batch's ids and values.
    batches = [] if outcome.outputs is None else [outcome.outputs]
    return [
        list(zip(batch.ids(), batch.values, strict=True))
        for batch in (*batches, *outcome.more)
    ]


async def test_rejoin_gives_one_batch_per_run_of_parents_of_one_origin() -> None:
    left = _split([2, 1], "m[0]")
    right = _split([1], "m[1]")
    values = ["a0", "a1", "b0"]
    with _rejoin() as rejoin:
        first = await rejoin.process(_parts(left, 0, 1, values))  # parent 0 open
        assert _batches(first) == [[]]
        second = await rejoin.process(_parts(right, 0, 1, ["c0"]))  # after it
        assert (_batches(second), second.ends) == ([[]], [])
        third = await rejoin.process(_parts(left, 1, 3, values))

    assert _batches(third) == [
        [(("src@m[0]", 0), ("a0", "a1"))],
        [(("src@m[1]", 0), ("c0",))],
        [(("src@m[0]", 1), ("b0",))],
    ]
    # Inputs are freed by their own parent's output, counted across the batches.
    assert third.ends == [1, 2, 2, 3]


async def test_rejoin_keeps_a_skipped_parent_with_the_run_that_follows_it() -> None:
    # The call of `src@m[1]` 0 fails and is skipped: its piece has no event and
    # rides with the next run rather than make an empty output batch.
    left = _split([2, 1], "m[0]")
    right = _split([1], "m[1]")
    with _rejoin() as rejoin:
        await rejoin.process(_parts(left, 0, 1, ["a0"]))
        await rejoin.process(_parts(right, 0, 1, ["bad"]))
        outcome = await rejoin.process(_parts(left, 1, 3, ["", "a1", "b0"]))

    assert _batches(outcome) == [
        [(("src@m[0]", 0), ("a0", "a1")), (("src@m[0]", 1), ("b0",))]
    ]
    assert outcome.outputs is not None
    stamps = outcome.outputs.stamps
    assert isinstance(stamps, Concat) and len(stamps.pieces) == 3


async def test_rejoin_saves_open_parents_of_two_origins_apart() -> None:
    left = _split([4], "m[0]")
    right = _split([4], "m[1]")
    with _rejoin(capacity=4) as rejoin:
        rejoin.track_changes()
        await rejoin.process(_parts(left, 0, 1, ["a"]))
        await rejoin.process(_parts(right, 0, 2, ["b", "c"]))  # held past the bound
        saved = rejoin.changes()
    assert saved == {
        ("rejoin", "src@m[0]", (0,)): (0, 4, ((0, 1),), {0: "a"}),
        ("rejoin", "src@m[1]", (0,)): (1, 4, ((0, 2),), {0: "b", 1: "c"}),
    }

    with _rejoin(capacity=4) as restored:
        restored.restore(saved)
        one = await restored.process(_parts(right, 2, 4, [None, None, "d", "e"]))
        assert _batches(one) == [[]]  # waits for `src@m[0]` 0, seen first
        two = await restored.process(_parts(left, 1, 4, [None, "f", "g", "h"]))
    assert _batches(two) == [
        [(("src@m[0]", 0), ("a", "f", "g", "h"))],
        [(("src@m[1]", 0), ("b", "c", "d", "e"))],
    ]


# Replays beyond the memory of recent parents, in `total` order.


def _filtered(split: Derived, start: int, stop: int, dropped: set[int]) -> Batch:
    # The survivors of split positions `start` to `stop`, each valued by its stamp,
    # or a trace when none survives.
    keep = [int(position not in dropped) for position in range(start, stop)]
    stamps = derive(split.slice(start, stop), keep, split=False)
    return Batch(stamps.materialise(), stamps)


async def _late_replay(ordered: bool) -> tuple[Outcome, Outcome, int]:
    # Ten parents of two parts rejoined, a queue of capacity 1 (the memory holds
    # four parents); then a replayed trace of parent 0's second part, and parent 10.
    split = _split([2] * 11)
    with _rejoin(capacity=1, ordered=ordered) as rejoin:
        for position in range(0, 20, 2):
            outcome = await rejoin.process(
                _filtered(split, position, position + 2, set())
            )
            assert outcome.outputs is not None and len(outcome.outputs) == 1
        late = await rejoin.process(_filtered(split, 1, 2, {1}))
        after = await rejoin.process(_filtered(split, 20, 22, set()))
        return late, after, rejoin.held()


async def test_rejoin_in_total_order_ignores_a_replay_older_than_its_memory() -> None:
    late, after, held = await _late_replay(ordered=True)
    assert (_batches(late), late.ends) == ([[]], [0])
    assert _batches(after) == [[(("src", 10), ((10, 0), (10, 1)))]]
    assert held == 0


async def test_rejoin_not_in_order_reopens_a_replay_older_than_its_memory() -> None:
    # The bound docs/limitations.md states: the parent is reopened, and holds
    # back the parents after it.
    late, after, _ = await _late_replay(ordered=False)
    assert _batches(late) == [[]]
    assert _batches(after) == [[]]


async def test_rejoin_saves_its_highest_parent_with_the_last_output_of_a_round() -> (
    None
):
    split = _split([1, 1, 1])
    with _rejoin(ordered=True) as rejoin:
        rejoin.track_changes()
        outcome = await rejoin.process(_filtered(split, 0, 2, set()))
        # Both inputs are freed with the round's last output: the mark must not
        # reach the saved state before every output it covers is accepted.
        assert outcome.ends == [2, 2]
        assert rejoin.changes() == {("rejoined", "src"): (1,)}
        await rejoin.process(_filtered(split, 2, 3, set()))
        assert rejoin.changes() == {("rejoined", "src"): (2,)}


async def test_rejoin_restored_ignores_the_rest_of_a_parent_it_rejoined() -> None:
    # Parent 0's parts 1 and 2 are dropped: the batch holding parent 1's first
    # part also covers them. Parent 0 is rejoined (its input acknowledged with
    # the mark); the worker dies before that batch is acknowledged and reads it
    # again after a restart.
    split = _split([3, 2])
    dropped = {1, 2}
    first = _filtered(split, 0, 1, dropped)
    second = _filtered(split, 1, 4, dropped)
    third = _filtered(split, 4, 5, dropped)
    with _rejoin(ordered=True) as rejoin:
        rejoin.track_changes()
        await rejoin.process(first)
        outcome = await rejoin.process(second)
        assert _batches(outcome) == [[(("src", 0), ((0, 0),))]]
        assert outcome.ends == [1]  # the first batch's part, with the mark
        saved = rejoin.changes()
    assert saved == {("rejoined", "src"): (0,)}

    with _rejoin(ordered=True) as restarted:
        restarted.track_changes()
        restarted.restore(saved)
        replayed = await restarted.process(second)
        assert _batches(replayed) == [[]]
        outcome = await restarted.process(third)
        assert _batches(outcome) == [[(("src", 1), ((1, 0), (1, 1)))]]
        assert restarted.held() == 0


def test_rejoin_is_in_order_only_when_its_split_keeps_total_order() -> None:
    def plan(body: str) -> Plan:
        text = f"flow t()\nuse python orderfns as f\n{body}"
        compiled = compile_source(text, FLOW, None)
        assert compiled.plan is not None, compiled.diagnostics
        return compiled.plan

    ordered = plan(
        "xs = source f.events()\n"
        "xs | flat_map f.explode | rejoin f.gather | sink f.work\n"
    )
    merged = plan(MERGED)
    unordered = plan(
        "xs = source f.events()\n"
        "xs | flat_map f.explode [workers = 2, order = none]"
        " | rejoin f.gather | sink f.work\n"
    )
    found = {
        name: [Rejoin.in_order(p, task) for task in p.tasks if task.kind == "rejoin"]
        for name, p in (("ordered", ordered), ("merged", merged), ("none", unordered))
    }
    assert found == {"ordered": [True], "merged": [False], "none": [False]}

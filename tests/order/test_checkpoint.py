"""Stateful steps that outlive their worker: `changes`, then `restore` on restart.

A harness plays the worker and the input queue: a step folds batches; at some
batch boundaries the inputs are acknowledged and the step's `changes` are stored
with the commit (a key mapped to `DELETED` is removed); at a random moment the
worker dies, and a fresh step restores the stored state and reads again from the
committed position, cut into batches anew. The result must be what an
uninterrupted run gives, for every input, cut and crash point.

They run no job: the steps are this process's objects, so they stay local (the
`mode` fixture is for tests that run jobs).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from reflow_lang.plan import ErrorPolicy
from reflow_lang.runtime.events import Batch, Derived, Offsets, derive
from reflow_lang.runtime.functions import UserFunction
from reflow_lang.runtime.offload import Offload
from reflow_lang.runtime.policy import ErrorHandler
from reflow_lang.runtime.queue import DELETED
from reflow_lang.runtime.rejoin import Rejoin
from reflow_lang.runtime.statistics import StageCounters
from reflow_lang.runtime.steps import Aggregate

EXAMPLES = settings(max_examples=40, deadline=None)

keys = st.sampled_from(["a", "b", "c", 1, 2, (3, "x")])
events = st.lists(st.tuples(keys, st.integers(-5, 5)), max_size=40)
cuts = st.lists(st.integers(min_value=1, max_value=7), min_size=1, max_size=12)


def _handler(stage: str, counters: StageCounters) -> ErrorHandler:
    return ErrorHandler(stage, stage, ErrorPolicy(), counters, asyncio.sleep)


def _store(saved: dict[Any, Any], changes: Mapping[Any, Any] | None) -> None:
    # What the queue does with the changes an acknowledgement carries.
    assert changes is not None
    for key, value in changes.items():
        if value is DELETED:
            saved.pop(key, None)
        else:
            saved[key] = value


def _batches(values: list[Any], start: int, widths: list[int]) -> Iterator[Batch]:
    # `values[start:]` in batches of the given widths (the last one repeated).
    position, turn = start, 0
    while position < len(values):
        stop = min(len(values), position + widths[min(turn, len(widths) - 1)])
        yield Batch(values[position:stop], Offsets("src", position, stop))
        position, turn = stop, turn + 1


# Aggregates.


@contextmanager
def _aggregate(kind: str, grouped: bool) -> Iterator[Callable[[], Aggregate]]:
    offload = Offload("agg", 1)

    def make() -> Aggregate:
        counters = StageCounters()
        function = None
        if kind == "reduce":
            function = UserFunction(_add, (), "add", False)
        return Aggregate(
            "agg",
            _first,
            function,
            0,
            _handler("agg", counters),
            counters,
            offload,
            grouped=grouped,
        )

    try:
        yield make
    finally:
        offload.close()


def _first(event: tuple[Any, int]) -> Any:
    return event[0]


def _add(total: int, event: tuple[Any, int]) -> int:
    return total + event[1]


async def _fold(make: Callable[[], Aggregate], values: list[Any]) -> list[Any]:
    step = make()
    for batch in _batches(values, 0, [5]):
        await step.process(batch)
    return step.finish().values


async def _fold_with_crash(
    make: Callable[[], Aggregate],
    values: list[Any],
    widths: list[int],
    acks: list[bool],
    crash: int,
) -> list[Any]:
    step = make()
    step.track_changes()
    saved: dict[Any, Any] = {}
    committed = taken = 0
    for turn, batch in enumerate(_batches(values, 0, widths)):
        if turn == crash:
            break
        await step.process(batch)
        taken += len(batch)
        if acks[turn % len(acks)]:  # inputs acknowledged, changes stored
            _store(saved, step.changes())
            committed = taken

    restarted = make()
    restarted.track_changes()
    restarted.restore(saved)
    for batch in _batches(values, committed, list(reversed(widths))):
        await restarted.process(batch)
    return restarted.finish().values


@EXAMPLES
@given(
    values=events,
    widths=cuts,
    acks=st.lists(st.booleans(), min_size=1, max_size=6),
    crash=st.integers(min_value=0, max_value=12),
    kind=st.sampled_from(["count", "reduce"]),
    grouped=st.booleans(),
)
def test_aggregate_restored_from_its_changes_ends_as_an_uninterrupted_run(
    values: list[Any],
    widths: list[int],
    acks: list[bool],
    crash: int,
    kind: str,
    grouped: bool,
) -> None:
    async def both() -> tuple[list[Any], list[Any]]:
        with _aggregate(kind, grouped) as make:
            whole = await _fold(make, values)
            cut = await _fold_with_crash(make, values, widths, acks, crash)
        return whole, cut

    whole, cut = asyncio.run(both())
    assert cut == whole


async def test_aggregate_changes_are_the_accumulators_changed_since_the_last_call() -> (
    None
):
    with _aggregate("reduce", True) as make:
        step = make()
        assert step.changes() is None  # tracking is off until the job turns it on
        step.track_changes()
        await step.process(Batch([("a", 1), ("b", 2)], Offsets("src", 0, 2)))
        assert step.changes() == {("acc", "a"): 1, ("acc", "b"): 2}
        await step.process(Batch([("a", 5)], Offsets("src", 2, 3)))
        assert step.changes() == {("acc", "a"): 6}
        assert step.changes() == {}


async def test_aggregate_without_key_saves_one_accumulator() -> None:
    with _aggregate("count", False) as make:
        step = make()
        step.track_changes()
        await step.process(Batch([("a", 1), ("b", 2)], Offsets("src", 0, 2)))
        assert step.changes() == {("acc", None): 2}


# Rejoins.


@contextmanager
def _rejoin(capacity: int) -> Iterator[Callable[[], Rejoin]]:
    offload = Offload("rejoin", 1)

    def make() -> Rejoin:
        counters = StageCounters()
        function = UserFunction(tuple, (), "tuple", False)
        return Rejoin(
            "r", function, _handler("r", counters), counters, offload, capacity
        )

    try:
        yield make
    finally:
        offload.close()


def _parts(split: Derived, start: int, widths: list[int]) -> Iterator[Batch]:
    # The split's parts from `start` on, in batches: each part is its own stamp.
    position, turn = start, 0
    while position < len(split):
        stop = min(len(split), position + widths[min(turn, len(widths) - 1)])
        stamps = split.slice(position, stop)
        yield Batch(stamps.materialise(), stamps)
        position, turn = stop, turn + 1


async def _gather_with_crash(
    make: Callable[[], Rejoin],
    split: Derived,
    widths: list[int],
    crash: int,
    lose_ack: bool,
) -> dict[Any, Any]:
    # Outputs by id; all outputs of a round are accepted before the next is taken,
    # as the worker does, and its recorded inputs acknowledged with the changes.
    outputs: dict[Any, Any] = {}
    saved: dict[Any, Any] = {}
    committed = 0
    step = make()
    step.track_changes()
    for turn, batch in enumerate(_parts(split, 0, widths)):
        outcome = await step.process(batch)
        _collect(outputs, outcome.outputs)
        recorded = len(outcome.ends or ())
        if turn == crash and lose_ack:
            break  # killed after the outputs were accepted, before the ack
        if recorded:
            _store(saved, step.changes())
            committed += recorded
        if turn == crash:
            break

    restarted = make()
    restarted.track_changes()
    restarted.restore(saved)
    for batch in _parts(split, committed, list(reversed(widths))):
        outcome = await restarted.process(batch)
        _collect(outputs, outcome.outputs)
    return outputs


def _collect(outputs: dict[Any, Any], batch: Batch | None) -> None:
    # A replayed output has the id and the value it had the first time.
    if batch is None:
        return
    for event_id, value in zip(batch.ids(), batch.values, strict=True):
        assert outputs.setdefault(event_id, value) == value
        outputs[event_id] = value


@EXAMPLES
@given(
    counts=st.lists(st.integers(min_value=1, max_value=9), min_size=1, max_size=8),
    widths=cuts,
    capacity=st.integers(min_value=2, max_value=12),
    crash=st.integers(min_value=0, max_value=20),
    lose_ack=st.booleans(),
)
def test_rejoin_restored_after_early_acks_loses_no_parent(
    counts: list[int], widths: list[int], capacity: int, crash: int, lose_ack: bool
) -> None:
    split = derive(Offsets("src", 0, len(counts)), counts, split=True)
    assert isinstance(split, Derived)

    async def gather() -> dict[Any, Any]:
        with _rejoin(capacity) as make:
            return await _gather_with_crash(make, split, widths, crash, lose_ack)

    outputs = asyncio.run(gather())
    expected = {
        ("src", parent): tuple((parent, part) for part in range(count))
        for parent, count in enumerate(counts)
    }
    assert outputs == expected


async def test_rejoin_saves_open_parents_when_it_acknowledges_early() -> None:
    split = derive(Offsets("src", 0, 2), [6, 1], split=True)
    assert isinstance(split, Derived)
    with _rejoin(4) as make:
        step = make()
        assert step.changes() is None
        step.track_changes()
        (first, second, third) = list(_parts(split, 0, [3, 3, 1]))

        early = await step.process(first)
        assert early.ends == [0, 0, 0]  # three parts of parent 0, held past the bound
        parts = {0: (0, 0), 1: (0, 1), 2: (0, 2)}
        # The parts covered are saved as runs of part indices: ((0, 3),).
        saved = (0, 6, ((0, 3),), parts)
        assert step.changes() == {("rejoin", "src", (0,)): saved}

        await step.process(second)
        assert step.changes() == {("rejoin", "src", (0,)): DELETED}
        outcome = await step.process(third)
        assert outcome.outputs is not None
        assert outcome.outputs.values == [((1, 0),)]
        assert step.changes() == {}

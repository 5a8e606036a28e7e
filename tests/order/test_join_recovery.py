"""`join` recovery: a join killed at any moment and restarted pairs every match once.

A "process" is a whole `Job` with `recover=True` over queues that outlive it (as a
queue server's do). It dies when a `Killed` is raised at a chosen tick: before or
after any request a worker makes of a queue, so a put, a read or an
acknowledgement (with its saved state) may be done with its answer lost. Then a new
job attaches to the same queues: the join restores both tables from what each input
queue saved, reads again from both commits, and the output queue drops the pairs it
already holds by their ids. The file sink restores its checkpoint, so under
`exactly_once` its lines must equal the reference join exactly, whatever the kill
points and the interleaving of the two sides (drawn: the capacities of the join's
input queues and the delays of the functions before it).

The unmatched rows of a `left` or `outer` join may be far more than the output
queue's recent ids: a restarted join asks the queue which of them it holds.

The pairs' ids are their events' positions in the join's input queues, so they do
not depend on the interleaving: two schedules give the same id to every pair. The
unit tests at the end drive the step and its input by hand: what an
acknowledgement saves, and what a restart makes again.
"""

from __future__ import annotations

import asyncio
import itertools
import tempfile
import textwrap
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from reflow_lang.stdlib import _files

from reflow_lang.frontend.api import compile_file
from reflow_lang.plan import ErrorPolicy, Plan
from reflow_lang.runtime.dedup import remembering
from reflow_lang.runtime.events import Batch, EventId, Item, Offsets
from reflow_lang.runtime.job import Job
from reflow_lang.runtime.join import Join, JoinInput
from reflow_lang.runtime.policy import ErrorHandler
from reflow_lang.runtime.ports import QueueInput
from reflow_lang.runtime.queue import Credit, MemoryQueue
from reflow_lang.runtime.statistics import StageCounters

FUNCTIONS = '''
"""Functions of the join-recovery flows: a key, and delays drawn by the test."""

import asyncio
import zlib

TURNS = {turns!r}


def key(line):
    return line.split(",")[0]


async def wait(line):
    # The delay depends only on the event and the test's draw: no wall clock.
    for _ in range(TURNS[zlib.crc32(line.encode()) % len(TURNS)]):
        await asyncio.sleep(0)
    return line
'''

FLOW = """
flow joined(left: path, right: path, out: path) [delivery = exactly_once]
use text
use python joinfns as j
lefts = source text.lines(left) | map j.wait [capacity = {left}]
rights = source text.lines(right) | map j.wait [capacity = {right}]
pairs = join lefts by j.key, rights by j.key [how = {how}, capacity = {joined}]
pairs | sink text.write_lines(out)
"""

keys = st.lists(st.integers(min_value=0, max_value=2), max_size=12)


class Killed(BaseException):
    """The process dies here (a `BaseException`: no error policy catches it)."""


@dataclass
class Fuse:
    """Counts ticks and raises `Killed` at the chosen ones."""

    kills: list[int]
    watched: set[str] = field(default_factory=set)
    """Count only the requests of these consumers and the puts to these queues;
    empty: every request."""
    ticks: int = 0

    def tick(self, name: str) -> None:
        if self.watched and name not in self.watched:
            return
        self.ticks += 1
        if self.kills and self.ticks == self.kills[0]:
            self.kills.pop(0)
            raise Killed


class FragileQueue(MemoryQueue):
    """A queue whose requests tick the fuse before and after they are answered,
    and that records the ids and values it accepted."""

    def __init__(self, fuse: Fuse, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fuse = fuse
        self.accepted: list[tuple[EventId, Any]] = []

    async def put(self, item: Item) -> Credit:
        self.fuse.tick(self.name)
        tail = self.statistics().tail
        credit = await super().put(item)
        if isinstance(item, Batch) and self.statistics().tail > tail:
            stored = item.slice(0, credit.accepted)
            self.accepted.extend(zip(stored.ids(), stored.values, strict=True))
        self.fuse.tick(self.name)
        return credit

    async def get(self, consumer: str, limit: int) -> Item:
        self.fuse.tick(consumer)
        return await super().get(consumer, limit)

    async def poll(self, consumer: str, limit: int) -> Item | None:
        self.fuse.tick(consumer)
        return await super().poll(consumer, limit)

    async def ack(self, consumer: str, offset: int, changes: Any = None) -> None:
        self.fuse.tick(consumer)
        await super().ack(consumer, offset, changes)
        self.fuse.tick(consumer)


@dataclass(frozen=True)
class Case:
    """One draw: the two sides' keys, the join's kind and the schedule."""

    left: list[int]
    right: list[int]
    how: str
    capacities: tuple[int, int] = (2, 3)
    joined: int = 8
    turns: tuple[int, ...] = (0,)

    def events(self) -> tuple[list[str], list[str]]:
        lefts = [f"{key},L,{index}" for index, key in enumerate(self.left)]
        rights = [f"{key},R,{index}" for index, key in enumerate(self.right)]
        return lefts, rights


@dataclass
class Flow:
    """A compiled case, its queues (which outlive every process) and its output."""

    plan: Plan
    out: Path
    fuse: Fuse
    queues: dict[str, FragileQueue] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.queues = {
            queue.name: FragileQueue(
                self.fuse,
                queue.name,
                queue.capacity,
                queue.consumers,
                remember=remembering(self.plan, queue.name),
            )
            for queue in self.plan.queues
        }

    def joined(self) -> FragileQueue:
        """The join's output queue."""
        (join,) = (task for task in self.plan.tasks if task.kind == "join")
        assert join.output is not None
        return self.queues[join.output]


def compiled(
    directory: Path, case: Case, kills: list[int], watch: str | None = None
) -> Flow:
    """The case's files written in `directory`, its flow compiled."""
    lefts, rights = case.events()
    (directory / "joinfns.py").write_text(
        FUNCTIONS.format(turns=list(case.turns)), encoding="utf-8"
    )
    (directory / "left.txt").write_text("".join(f"{e}\n" for e in lefts), "utf-8")
    (directory / "right.txt").write_text("".join(f"{e}\n" for e in rights), "utf-8")
    flow = FLOW.format(
        left=case.capacities[0],
        right=case.capacities[1],
        how=case.how,
        joined=case.joined,
    )
    path = directory / "joined.flow"
    path.write_text(textwrap.dedent(flow), encoding="utf-8")
    out = directory / "out.txt"
    params = {
        "left": str(directory / "left.txt"),
        "right": str(directory / "right.txt"),
        "out": str(out),
    }
    compilation = compile_file(str(path), params)
    assert compilation.plan is not None, compilation.diagnostics
    plan = compilation.plan
    watched: set[str] = set()
    if watch == "join":
        (join,) = (task for task in plan.tasks if task.kind == "join")
        assert join.output is not None
        watched = {join.name, join.output}
    return Flow(plan, out, Fuse(sorted(kills), watched))


async def _life(flow: Flow) -> bool:
    """One process: runs a job until the flow ends (`True`) or it is killed."""
    try:
        result = await Job(flow.plan, queues=flow.queues, recover=True).run()
    except Killed:
        return False
    finally:
        # The process is gone, and its open file with it (a new one truncates,
        # unless the sink's checkpoint restores it).
        _files.close(str(flow.out))  # closed, not ended (the sink did not end)
    assert result.ok, result.error
    return True


async def _run(flow: Flow) -> list[str]:
    for _ in range(30):
        if await _life(flow):
            if not flow.out.exists():  # no pair: the sink never wrote
                return []
            return flow.out.read_text(encoding="utf-8").splitlines()
    msg = "the flow did not end after 30 processes"
    raise AssertionError(msg)


def run_case(
    case: Case, kills: Sequence[int] = (), watch: str | None = None
) -> tuple[list[str], Flow]:
    """The sink's lines after running the case with those kill points (counting
    only the join's requests with `watch="join"`)."""
    with tempfile.TemporaryDirectory() as scratch:
        flow = compiled(Path(scratch), case, list(kills), watch)
        # Bounded: a replay stored after end-of-source, its reader gone, would
        # wait for room for ever.
        lines = asyncio.run(asyncio.wait_for(_run(flow), 60))
    return lines, flow


def reference_ids(case: Case, name: str) -> dict[EventId, str]:
    """The join by nested loops: each pair as the sink writes it, by the id it must
    have (the positions of its events in the join's input queues, -1 for none, an
    unmatched row from the origin `<join>:unmatched`)."""
    lefts, rights = case.events()
    ids: dict[EventId, str] = {}
    unmatched = f"{name}:unmatched"
    for i, a in enumerate(lefts):
        for j, b in enumerate(rights):
            if case.left[i] == case.right[j]:
                ids[(name, i, j)] = str((a, b))
    if case.how in ("left", "outer"):
        for i, a in enumerate(lefts):
            if case.left[i] not in case.right:
                ids[(unmatched, i, -1)] = str((a, None))
    if case.how == "outer":
        for j, b in enumerate(rights):
            if case.right[j] not in case.left:
                ids[(unmatched, -1, j)] = str((None, b))
    return ids


def reference(case: Case) -> Counter[str]:
    """What the sink must write, each line once."""
    return Counter(reference_ids(case, "join").values())


cases = st.builds(
    Case,
    left=keys,
    right=keys,
    how=st.sampled_from(["inner", "left", "outer"]),
    capacities=st.tuples(st.integers(1, 6), st.integers(1, 6)),
    joined=st.integers(8, 12),
    turns=st.lists(st.integers(0, 6), min_size=1, max_size=4).map(tuple),
)
points = st.lists(st.floats(0, 1), min_size=1, max_size=4)


def _ticks(fractions: list[float], ticks: int) -> list[int]:
    # Kill points spread over a run without kills (`ticks` long).
    return sorted({1 + int(fraction * (ticks - 1)) for fraction in fractions})


@settings(max_examples=60, deadline=None)
@given(case=cases, fractions=points)
def test_join_recovery_killed_anywhere_pairs_every_match_once(
    case: Case, fractions: list[float]
) -> None:
    clean, flow = run_case(case)
    assert Counter(clean) == reference(case)

    lines, _ = run_case(case, _ticks(fractions, flow.fuse.ticks))

    assert Counter(lines) == reference(case)


@settings(max_examples=60, deadline=None)
@given(case=cases, fractions=points)
def test_join_recovery_killed_in_the_join_pairs_every_match_once(
    case: Case, fractions: list[float]
) -> None:
    # Only the join's own requests count: every kill lands in the join worker
    # (a read of either side, a put of pairs, an acknowledgement with its table).
    _, flow = run_case(case, watch="join")
    kills = _ticks(fractions, flow.fuse.ticks)

    lines, _ = run_case(case, kills, watch="join")

    assert Counter(lines) == reference(case)


distinct = st.lists(st.integers(min_value=0, max_value=20), max_size=12, unique=True)


@settings(max_examples=40, deadline=None)
@given(
    case=st.builds(
        Case,
        left=distinct,
        right=distinct,
        how=st.sampled_from(["left", "outer"]),
        joined=st.just(1),
    ),
    fractions=points,
)
def test_join_recovery_unmatched_rows_beyond_the_recent_ids_leave_once(
    case: Case, fractions: list[float]
) -> None:
    # The output queue remembers 4 recent ids, far fewer than the unmatched rows
    # (each key is on a side at most once, so a pair never outgrows them): a
    # join killed while emitting the rows, or after, asks the queue where they
    # stop rather than count on its ids.
    _, flow = run_case(case, watch="join")

    lines, _ = run_case(case, _ticks(fractions, flow.fuse.ticks), watch="join")

    assert Counter(lines) == reference(case)


@settings(max_examples=30, deadline=None)
@given(case=cases)
def test_join_recovery_ids_are_the_input_positions(case: Case) -> None:
    # Whatever the schedule drawn, every pair the join's output queue accepted
    # carries the positions of its two events (or -1 for the missing side).
    _, flow = run_case(case)

    joined = flow.joined()
    assert {event_id: str(value) for event_id, value in joined.accepted} == (
        reference_ids(case, joined.name)
    )


# The step and its input, driven by hand.


def first(event: Any) -> Any:
    return event[0]


def _join(how: str = "inner") -> Join:
    counters = StageCounters()
    handler = ErrorHandler("j", "j", ErrorPolicy(), counters, asyncio.sleep)
    return Join("j", (first, first), how, handler, counters)


def _pieces(keys: list[int], cuts: list[int], tag: str) -> list[Batch]:
    # The side's events as batches, cut after the positions in `cuts`.
    events = [(key, tag, position) for position, key in enumerate(keys)]
    bounds = sorted({0, len(events), *(cut % (len(events) + 1) for cut in cuts)})
    return [
        Batch(events[start:stop], Offsets(tag, start, stop))
        for start, stop in itertools.pairwise(bounds)
    ]


async def _drive(
    join: Join, sides: tuple[list[Batch], list[Batch]], order: list[bool]
) -> dict[EventId, Any]:
    # Feeds the batches of both sides in the interleaving `order` (True: a left
    # batch next, while there is one), then ends; answers every output by id.
    pending = [list(sides[0]), list(sides[1])]
    read = [0, 0]
    outputs: dict[EventId, Any] = {}
    turns = iter(order)
    while pending[0] or pending[1]:
        side = 0 if pending[0] and (not pending[1] or next(turns, True)) else 1
        batch = pending[side].pop(0)
        join.side, join.position = side, read[side]
        read[side] += len(batch)
        outcome = await join.process(batch)
        assert outcome.outputs is not None
        outputs.update(zip(outcome.outputs.ids(), outcome.outputs.values, strict=True))
    last = join.finish()
    if last is not None:
        outputs.update(zip(last.ids(), last.values, strict=True))
    return outputs


@settings(max_examples=60, deadline=None)
@given(
    left=keys,
    right=keys,
    how=st.sampled_from(["inner", "left", "outer"]),
    cuts=st.tuples(st.lists(st.integers(0, 12)), st.lists(st.integers(0, 12))),
    orders=st.tuples(st.lists(st.booleans()), st.lists(st.booleans())),
)
def test_join_recovery_two_interleavings_give_the_same_ids(
    left: list[int],
    right: list[int],
    how: str,
    cuts: tuple[list[int], list[int]],
    orders: tuple[list[bool], list[bool]],
) -> None:
    sides = (_pieces(left, cuts[0], "L"), _pieces(right, cuts[1], "R"))

    one = asyncio.run(_drive(_join(how), sides, orders[0]))
    other = asyncio.run(_drive(_join(how), sides, orders[1]))

    assert one == other
    case = Case(left, right, how)
    expected = {
        event_id: str(value) for event_id, value in reference_ids(case, "j").items()
    }
    assert {key: str(_lines(value)) for key, value in one.items()} == expected


def _lines(pair: tuple[Any, Any]) -> tuple[str | None, str | None]:
    # A pair as `Case.events` writes its events: `key,side,position`.
    left, right = (None if e is None else ",".join(map(str, e)) for e in pair)
    return left, right


async def _queues(*batches: list[Batch]) -> tuple[MemoryQueue, MemoryQueue]:
    queues = (MemoryQueue("l", 16, ["j"]), MemoryQueue("r", 16, ["j"]))
    for queue, items in zip(queues, batches, strict=True):
        for batch in items:
            await queue.put(batch)
    return queues


async def _attached(queues: tuple[MemoryQueue, MemoryQueue]) -> JoinInput:
    # A join worker's input after a (re)start: attached, the tables restored.
    input = QueueInput(queues, "j")
    await input.attach()
    join = _join()
    join.track_changes()
    join.restore(input.states)
    return JoinInput(input, join)


async def _step(input: JoinInput, limit: int = 16) -> list[EventId]:
    _, item = await input.take(limit)
    assert isinstance(item, Batch)
    outcome = await input.step.process(item)
    assert outcome.outputs is not None
    return outcome.outputs.ids()


RIGHT_EVENT = Batch([(1, "R", 0)], Offsets("R", 0, 1))
LEFT_EVENTS = Batch([(1, "L", 0), (2, "L", 1), (1, "L", 2)], Offsets("L", 0, 3))


async def test_join_recovery_saves_only_the_acknowledged_events() -> None:
    queues = await _queues([LEFT_EVENTS], [RIGHT_EVENT])
    input = await _attached(queues)
    await _step(input)  # the left batch first: nothing to pair with yet
    assert await _step(input) == [("j", 0, 0), ("j", 2, 0)]

    await input.ack([2, 0])  # the first two left events are delivered

    saved = QueueInput(queues, "j")
    await saved.attach()
    assert saved.states == [
        {
            ("join", 0): (1, (1, "L", 0)),
            ("join", 1): (2, (2, "L", 1)),
            ("join-taken", 0): [1, 1],  # the last batch: the right one, up to 1
        },
        {},
    ]


@pytest.mark.parametrize(
    ("delivered", "again"),
    [
        ([0, 0], [("j", 0, 0), ("j", 2, 0)]),
        ([2, 0], [("j", 0, 0), ("j", 2, 0)]),
        ([2, 1], [("j", 2, 0)]),
        ([3, 1], []),
    ],
)
async def test_join_recovery_a_restarted_join_makes_again_the_uncommitted_pairs(
    delivered: list[int], again: list[EventId]
) -> None:
    # The pairs of two committed events were delivered; a restart makes every
    # other pair again, with the same id, and no committed pair.
    queues = await _queues([LEFT_EVENTS], [RIGHT_EVENT])
    input = await _attached(queues)
    await _step(input)
    await _step(input)
    await input.ack(delivered)

    restarted = await _attached(queues)
    made: list[EventId] = []
    while (taken := await restarted.poll(16)) is not None:
        assert isinstance(taken[1], Batch)
        outcome = await restarted.step.process(taken[1])
        assert outcome.outputs is not None
        made.extend(outcome.outputs.ids())

    assert sorted(made) == again


async def test_join_recovery_a_restarted_join_first_takes_the_side_it_took_last() -> (
    None
):
    # The output queue drops replayed pairs by its recent ids. A restarted join
    # first pairs again what the previous run paired last, in the same order and
    # before any new pair, however the inputs interleave: new pairs first (here,
    # the unread left events with the committed right one) could push the
    # replayed ones out of that memory.
    key = 1
    left = Batch([(key, "L", n) for n in range(5)], Offsets("L", 0, 5))
    right = Batch([(key, "R", n) for n in range(3)], Offsets("R", 0, 3))
    queues = await _queues([], [right.slice(0, 1), right.slice(1, 3)])
    input = await _attached(queues)
    assert await _step(input, limit=1) == []  # right 0: nothing to pair with
    await input.ack([0, 1])
    await queues[0].put(left.slice(0, 3))
    assert len(await _step(input, limit=3)) == 3  # left 0-2 with right 0
    await input.ack([3, 0])
    await queues[0].put(left.slice(3, 5))  # unread when the worker dies
    last = await _step(input, limit=2)  # right 1-2 with left 0-2: not acknowledged
    assert len(last) == 6

    restarted = await _attached(queues)

    assert await _step(restarted) == last
    assert len(await _step(restarted)) == 2 * 3  # then left 3-4 with right 0-2

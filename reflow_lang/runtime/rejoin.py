"""`rejoin`: gathering the parts of each split parent, and the traces that count them.

A `flat_map` turns each parent event into parts; the stages after it may drop parts
(a filter, a skipped error) and the queues between them may cut batches anywhere. The
rejoin still has to know when every part of a parent is in. It learns it from the
stamps alone: a batch's stamps are a chain of `Derived` descriptions down to the
split's own `Derived(split=True)`, which lists every parent of the flat-map's batch and
how many parts each gave. Walking the chain down tells which split positions a batch
*covers*: its surviving parts, and the dropped parts before them.

The convention that makes covers a partition: a dropped position (or a parent with no
parts) belongs to the slice that holds the next surviving event, and the last slice of
a sequence also covers whatever was dropped after its last event. A batch whose events
were all dropped is still sent, empty, as a *trace* (it takes one queue slot), so its
cover reaches the rejoin: a filtered part is counted, not awaited.

The rejoin keeps, per open parent, its part count, the part indices covered so far
(as runs of indices) and the surviving values; a parent is complete when every part
index is covered, and is then rejoined by `F(parts, *args)` with the parts in split
order. Inputs are recorded in the input/output map only once their parent's output
exists, so a part is acknowledged when the rejoined output of its parent is accepted
downstream.

A parent is known by its origin and its stamp: a `merge` before the split tags each
input's stamps with the input (`dedup.Via`), so `(0,)` of one input and `(0,)` of
the other are two parents. An output keeps its parent's id, and a batch has one
origin, so a round that completes parents of several origins gives one output
batch per run of parents of one origin (`Outcome.more` holds those after the
first).

Counting indices rather than adding up covers makes the accounting idempotent, which
replays need (`reflowc run --processes`): a producer restarted after putting outputs
and before acknowledging its inputs produces them again, maybe cut into other
batches. Its queue drops the replayed events by id (`dedup`), but stores a replayed
trace again, keeps the new events of a partly replayed batch as a slice whose cover
is the whole batch's, and keeps a wholly replayed batch inside a split as a trace
(its cover may hold dropped parts that no stored batch covers). So a rejoin may see a
part index covered twice: it counts it once. It may also see a cover of a parent
it has already rejoined, and ignores it rather than reopen a parent that would
never complete. Where the split's input is in `total` order (`Rejoin.in_order`),
parents arrive in stamp order, so the highest parent rejoined per origin tells
every replayed parent, however old; it is saved with the acknowledgements (below),
so a restarted rejoin knows it too. Elsewhere it remembers the parents it rejoined
recently (as many as `dedup.REMEMBER_PER_SLOT` times its queue's capacity);
docs/limitations.md says what this bound leaves out.

The outputs of an inner rejoin (nested splits) may be filtered on their way to the
outer rejoin, by a stage or by a queue keeping the new events of a replay
(`dedup.kept`): their cover is that of the outputs the filtered batch accounts for.

A parent too large to hold has its parts acknowledged early (see `Rejoin`). Where
a dead worker is restarted (`reflowc run --processes`), the job turns on
`track_changes`: the open parents are then saved with that acknowledgement
(`changes`, keys `("rejoin", origin, stamp)`) and deleted from the saved state with
the acknowledgement of their output, and a restarted worker `restore`s them before
it reads again, so that the parent is not lost; in `total` order the highest parent
rejoined per origin is saved too (`("rejoined", origin)`).
"""

from __future__ import annotations

import logging
from bisect import bisect_left, bisect_right
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from itertools import accumulate
from typing import Any

from reflow_lang.errors import ReflowError
from reflow_lang.plan import Plan, Task
from reflow_lang.runtime.chain import Outcome
from reflow_lang.runtime.dedup import REMEMBER_PER_SLOT, RecentIds
from reflow_lang.runtime.events import (
    Batch,
    Derived,
    Item,
    Listed,
    Stamp,
    Stamps,
    derive,
)
from reflow_lang.runtime.functions import UserFunction
from reflow_lang.runtime.offload import Offload
from reflow_lang.runtime.policy import DROP, ErrorHandler
from reflow_lang.runtime.queue import DELETED
from reflow_lang.runtime.statistics import StageCounters

logger = logging.getLogger(__name__)

ParentKey = tuple[str, Stamp]
"""A parent of the split: its origin and its stamp (a `merge` before the split
gives parents of one stamp and two origins)."""


def is_trace(item: Item) -> bool:
    """Whether an item is a trace: a batch whose events were all dropped."""
    return isinstance(item, Batch) and not item.values


@dataclass(frozen=True, slots=True)
class Touch:
    """What one batch tells about one parent of the split."""

    stamp: Stamp
    """The parent's stamp."""
    total: int
    """How many parts the parent gave at the split."""
    covered: int
    """How many of its parts this batch accounts for (survivors and dropped)."""
    source: Stamps | None = field(default=None, compare=False, repr=False)
    """The stamps of the flat-map's input batch the parent was in."""
    index: int = field(default=0, compare=False, repr=False)
    """The parent's position in `source`."""
    carried: bool = False
    """Not a parent: a trace of an enclosing split that crossed this one (a
    flat-map input batch with no event), in `source`. The rejoin passes it on, in
    its place, for the rejoin of that split."""
    first: int = 0
    """The first part index this batch accounts for: it covers parts `first` to
    `first + covered` (exclusive) of the parent."""
    origin: str = ""
    """The origin of the parent's id (that of the flat-map's input batch): with a
    `merge` before the split, parents of one stamp and two origins are two."""


@dataclass(frozen=True, slots=True)
class Cover:
    """The split positions a batch accounts for, and where its events sit."""

    origin: str
    """The origin of the batch's events (for messages: each touch names the
    origin of its own parent)."""
    touches: tuple[Touch, ...]
    """Every parent the batch accounts for, in split order."""
    parents: tuple[int, ...]
    """Per event of the batch, the index of its parent in `touches`."""
    parts: tuple[int, ...]
    """Per event of the batch, its part index within its parent."""


@dataclass(frozen=True, slots=True)
class Concat(Stamps):
    """The stamps of a rejoin's outputs: consecutive runs of its split's parents.

    Each piece is a slice of the stamps of one flat-map input batch (with the parents
    whose call was skipped left out by a `Derived` keep), so that a rejoin closing an
    outer split finds, below them, the outer split's stamps. A piece with no event
    left accounts for parents all the same: it belongs to the slice that holds what
    follows it, or to the last slice.
    """

    source: str
    pieces: tuple[Stamps, ...]

    @property
    def origin(self) -> str:
        return self.source

    def __len__(self) -> int:
        return sum(map(len, self.pieces))

    def slice(self, start: int, stop: int) -> Stamps:
        total = len(self)
        pieces = []
        offset = 0
        for piece in self.pieces:
            width = len(piece)
            low, high = max(start, offset), min(stop, offset + width)
            if width and low < high:
                pieces.append(piece.slice(low - offset, high - offset))
            elif not width and (start <= offset < stop or offset == stop == total):
                pieces.append(piece)
            offset += width
        return Concat(self.source, tuple(pieces))

    def materialise(self) -> list[Stamp]:
        return [stamp for piece in self.pieces for stamp in piece.materialise()]


def cover(stamps: Stamps) -> Cover:
    """What a batch with these stamps accounts for at the nearest split below it.

    Raises:
        ReflowError: the stamps lead to no split (the plan put a rejoin after a
            stage that does not keep split stamps).
    """
    if isinstance(stamps, Concat):
        return _concat_cover(stamps)
    level: Stamps = stamps
    positions = list(range(len(stamps)))
    lo, hi = 0, len(stamps)
    while isinstance(level, Derived) and not level.split:
        ends = list(accumulate(level.counts))
        positions = [bisect_right(ends, level.start + p) for p in positions]
        lo, hi = _parent_range(ends, level.start + lo, level.start + hi)
        level = level.parent
    if isinstance(level, Concat):
        return _filtered_concat_cover(level, positions, lo, hi)
    if not isinstance(level, Derived):
        msg = (
            f"events of `{stamps.origin}` reached a rejoin without the stamps of a "
            "split; the stages between a `flat_map` and its `rejoin` must keep them"
        )
        raise ReflowError(msg)
    absolute = [level.start + position for position in positions]
    return _split_cover(level, absolute, level.start + lo, level.start + hi)


def _concat_cover(stamps: Concat) -> Cover:
    # The covers of the pieces, end to end; a parent split across two is merged.
    touches: list[Touch] = []
    parents: list[int] = []
    parts: list[int] = []
    for piece in stamps.pieces:
        found = cover(piece)
        fresh = list(found.touches)
        base = len(touches)
        if touches and fresh and _adjacent(touches[-1], fresh[0]):
            first = fresh.pop(0)
            touches[-1] = replace(
                touches[-1], covered=touches[-1].covered + first.covered
            )
            base -= 1
        touches.extend(fresh)
        parents.extend(base + index for index in found.parents)
        parts.extend(found.parts)
    return Cover(stamps.source, tuple(touches), tuple(parents), tuple(parts))


def _filtered_concat_cover(
    stamps: Concat, positions: list[int], lo: int, hi: int
) -> Cover:
    # Some of an inner rejoin's outputs, filtered (by a stage, or by a queue that
    # dropped replays, `dedup.kept`): the cover of the outputs `lo` to `hi` that
    # they account for, with the survivors at `positions` among them.
    found = cover(stamps.slice(lo, hi))  # a `Concat` again
    parents = tuple(found.parents[position - lo] for position in positions)
    parts = tuple(found.parts[position - lo] for position in positions)
    return Cover(found.origin, found.touches, parents, parts)


def _adjacent(before: Touch, after: Touch) -> bool:
    # Two pieces covering one parent in a row: one touch. (Pieces that are not
    # adjacent stay two touches of the same parent; the rejoin merges their spans.)
    if before.carried or after.carried:
        return False
    if before.stamp != after.stamp or before.origin != after.origin:
        return False
    return before.first + before.covered == after.first


def _parent_range(ends: list[int], start: int, stop: int) -> tuple[int, int]:
    # Dropped positions belong to the slice holding the next survivor; the slice
    # that reaches the end of the sequence also holds what was dropped after it.
    lo = bisect_right(ends, start - 1) + 1 if start > 0 else 0
    total = ends[-1] if ends else 0
    if stop >= total:
        return lo, len(ends)
    return lo, bisect_right(ends, stop - 1) + 1 if stop > 0 else 0


def _split_cover(split: Derived, positions: list[int], start: int, stop: int) -> Cover:
    origin = split.origin
    if not len(split.parent):
        carried = Touch((), 0, 0, split.parent, 0, carried=True, origin=origin)
        return Cover(origin, (carried,), (), ())
    counts = split.counts
    ends = list(accumulate(counts))
    total = ends[-1] if ends else 0
    first = bisect_left(ends, start)
    if first < len(ends) and ends[first] == start and counts[first] > 0:
        first += 1  # a parent whose last part is before `start`: an earlier slice's
    if stop >= total:
        last = len(ends)
    else:
        last = bisect_right(ends, stop - 1) + 1 if stop > 0 else 0
    stamps = split.parent.slice(first, max(first, last)).materialise()

    touches = []
    for index, stamp in zip(range(first, last), stamps, strict=True):
        begin = ends[index] - counts[index]
        low = max(begin, start)
        covered = max(0, min(ends[index], stop) - low)
        part = low - begin if covered else 0
        touches.append(
            Touch(
                stamp,
                counts[index],
                covered,
                split.parent,
                index,
                first=part,
                origin=origin,
            )
        )
    parents, parts = [], []
    for position in positions:
        index = bisect_right(ends, position)
        parents.append(index - first)
        parts.append(position - (ends[index] - counts[index]))
    return Cover(origin, tuple(touches), tuple(parents), tuple(parts))


@dataclass(slots=True)
class _Parent:
    """An open parent: the order it was first seen in, and its parts so far."""

    seq: int
    origin: str
    stamp: Stamp
    total: int
    source: Stamps | None
    index: int
    accounted: int = 0
    """How many distinct part indices are covered (the length of `spans`)."""
    carried: bool = False
    """Not a parent: an enclosing split's trace, passed on in this place."""
    parts: dict[int, Any] = field(default_factory=dict)
    spans: list[tuple[int, int]] = field(default_factory=list)
    """The part indices covered so far, as sorted disjoint `[low, high)` runs."""

    @property
    def key(self) -> ParentKey:
        return (self.origin, self.stamp)

    @property
    def complete(self) -> bool:
        return self.accounted >= self.total

    def cover(self, low: int, high: int) -> None:
        """Counts parts `low` to `high` (exclusive) as covered, each index once
        however many batches cover it (a replay may cover it again)."""
        if low >= high:
            return
        spans = self.spans
        if not spans or low > spans[-1][1]:
            spans.append((low, high))  # the common case: after everything so far
            self.accounted += high - low
        elif low == spans[-1][1]:
            spans[-1] = (spans[-1][0], high)
            self.accounted += high - low
        else:
            self.accounted += _merge_span(spans, low, high)


def _merge_span(spans: list[tuple[int, int]], low: int, high: int) -> int:
    # Merges `[low, high)` into the runs in place; answers how many indices are new.
    new = high - low
    kept: list[tuple[int, int]] = []
    for begin, end in spans:
        if end < low or begin > high:
            kept.append((begin, end))
            continue
        new -= max(0, min(end, high) - max(begin, low))
        low, high = min(begin, low), max(end, high)
    kept.append((low, high))
    kept.sort()
    spans[:] = kept
    return new


class Rejoin:
    """The step of a `rejoin` stage; see the module docstring.

    Args:
        name: the stage's name, for messages.
        function: the user's `F(parts, *args)`.
        handler: the stage's error policy, applied to a failing call per parent.
        counters: the stage's counters.
        offload: where plain functions run.
        capacity: the input queue's bound. A parent holding more than half of it
            unacknowledged could block its producer forever; its parts are
            acknowledged early instead (see docs/order.md).
        ordered: the parents arrive in stamp order (the split's input is in
            `total` order, see `in_order`): a cover of a parent at or below the
            highest one rejoined of its origin is a replay, however old.
    """

    takes_traces = True

    def __init__(
        self,
        name: str,
        function: UserFunction,
        handler: ErrorHandler,
        counters: StageCounters,
        offload: Offload,
        capacity: int,
        *,
        ordered: bool = False,
    ) -> None:
        self.name = name
        self.function = function
        self.handler = handler
        self.counters = counters
        self.offload = offload
        self.capacity = capacity
        self.ordered = ordered
        self._open: dict[ParentKey, _Parent] = {}  # in the order first seen
        self._seen = 0
        # Per input taken and not yet recorded: the `seq` of the last parent whose
        # output it waits for (`None`: none).
        self._pending: list[int | None] = []
        # Tracking (`track_changes`): the parents in the saved state, and the
        # changes to it not yet handed to an acknowledgement.
        self._tracking = False
        self._saved: set[ParentKey] = set()
        self._delta: dict[Any, Any] = {}
        # Parents already rejoined, whose covers a replay may bring again: they are
        # ignored rather than reopened (see the module docstring). In stamp order,
        # the highest per origin says it of every older one; otherwise the recent
        # ones are remembered.
        self._high: dict[str, Stamp] = {}
        self._emitted = RecentIds(1 if ordered else REMEMBER_PER_SLOT * capacity)

    @staticmethod
    def in_order(plan: Plan, task: Task) -> bool:
        """Whether the parents reach the rejoin `task` in stamp order: the
        flat_map it closes keeps `total` order (the stages inside a split keep
        their input's order whatever theirs, see `reorder`)."""
        if task.closes is None:
            return False
        return plan.task(task.closes).order.kind == "total"

    def track_changes(self) -> None:
        """Saves the open parents whose parts are acknowledged early, and the
        highest parents rejoined (`ordered`), for `changes` (a job turns it on
        where acknowledgements carry state)."""
        self._tracking = True

    def changes(self) -> dict[Any, Any] | None:
        """Changes to the saved state since the last call: `("rejoin", origin,
        stamp)` to an open parent's snapshot, or to `DELETED` once its output
        exists; with `ordered`, `("rejoined", origin)` to the highest stamp of
        that origin rejoined; `None` when tracking is off.

        A round that changes the saved state has every input it records
        acknowledged at once, with its last output, so that the acknowledgement
        that carries these changes is the one that covers every part in them and
        comes after every output they speak of.
        """
        if not self._tracking:
            return None
        delta, self._delta = self._delta, {}
        return delta

    def restore(self, state: Mapping[Any, Any]) -> None:
        """Reopens the parents that `changes` saved, and takes back the highest
        parents rejoined (a restarted worker, before it reads again the inputs
        after its committed offset); entries that are not a rejoin's are ignored."""
        saved = []
        for entry, value in state.items():
            if not isinstance(entry, tuple) or not entry:
                continue
            if entry[0] == "rejoin" and len(entry) == 3:
                saved.append(((entry[1], tuple(entry[2])), value))
            elif entry[0] == "rejoined" and len(entry) == 2 and self.ordered:
                self._high[entry[1]] = tuple(value)
        for key, value in sorted(saved, key=lambda pair: pair[1][0]):
            parent = _reopened(key, value)
            self._open[key] = parent
            self._saved.add(key)
            self._seen = max(self._seen, parent.seq + 1)

    def held(self) -> int:
        """Parts held while their parents are incomplete."""
        return len(self._pending)

    async def process(self, batch: Batch) -> Outcome:
        """Accounts the batch's parts; rejoins the parents it completes.

        The outputs are one batch per run of parents of one origin (a batch's ids
        share its origin): the first is `outputs`, the others `more`.
        """
        self.counters.events_in += len(batch)
        found = cover(batch.stamps)
        self._account(batch, found)

        count, through, early = self._recordable()
        done = self._close(through)
        values, seqs, kept = await self._rejoin(done)
        self.counters.events_out += len(values)
        ends = self._ends(count, seqs)
        if self._tracking:
            ends = self._track(done, early, ends)
        first, *more = _batches(values, _pieces(done, kept), found.origin)
        return Outcome(first, ends, more=tuple(more))

    def finish(self) -> Batch | None:
        """Nothing: every parent is complete once its parts are all accounted for."""
        if self._open:
            logger.error(
                "rejoin `%s` ended with %d incomplete parents; their parts were lost "
                "upstream",
                self.name,
                len(self._open),
            )
        return None

    def _account(self, batch: Batch, found: Cover) -> None:
        opened = [self._parent(touch) for touch in found.touches]
        for value, index, part in zip(
            batch.values, found.parents, found.parts, strict=True
        ):
            parent = opened[index]
            if parent is not None:
                parent.parts.setdefault(part, value)  # a replay brings the same

        # An event waits for its own parent; the last input of the batch also for
        # every parent the batch accounts for (those with no parts left, after it).
        # A replay of a parent already rejoined waits for nothing.
        seqs = [None if parent is None else parent.seq for parent in opened]
        last = max((seq for seq in seqs if seq is not None), default=None)
        waits: list[int | None] = [seqs[index] for index in found.parents]
        if waits:
            waits[-1] = last
        else:
            waits.append(last)  # a trace: one input
        self._pending.extend(waits)

    def _parent(self, touch: Touch) -> _Parent | None:
        if touch.carried:
            assert touch.source is not None
            return self._carry(touch)
        key = (touch.origin, touch.stamp)
        parent = self._open.get(key)
        if parent is None:
            if self._rejoined(key):
                return None  # a replay of a parent already rejoined
            parent = _Parent(
                self._seen,
                touch.origin,
                touch.stamp,
                touch.total,
                touch.source,
                touch.index,
            )
            self._open[key] = parent
            self._seen += 1
        parent.cover(touch.first, touch.first + touch.covered)
        return parent

    def _rejoined(self, key: ParentKey) -> bool:
        if not self.ordered:
            return key in self._emitted
        high = self._high.get(key[0])
        return high is not None and key[1] <= high

    def _carry(self, touch: Touch) -> _Parent:
        stamp = (-1 - self._seen,)  # no parent's stamp is negative
        carried = _Parent(
            self._seen, touch.origin, stamp, 0, touch.source, 0, carried=True
        )
        self._open[carried.key] = carried
        self._seen += 1
        return carried

    def _recordable(self) -> tuple[int, int, bool]:
        # How many pending inputs have every parent they wait for complete, the
        # last parent those need, and whether the rest is acknowledged early too.
        # Parents leave in the order they were first seen.
        complete = -1
        for parent in self._open.values():
            if not parent.complete:
                break
            complete = parent.seq
        count, through = 0, -1
        for seq in self._pending:
            if seq is not None and seq > complete:
                break
            through = max(through, -1 if seq is None else seq)
            count += 1

        if len(self._pending) - count <= self._holdable():
            return count, through, False

        # Holding more could block the producer for good: acknowledge early.
        logger.debug("rejoin `%s` acknowledges open parents' parts early", self.name)
        return len(self._pending), through, True

    def _holdable(self) -> int:
        # A producer facing a full queue waits until about half of it is free
        # (`Worker.wake`), so the parts held must leave at least that much room.
        return self.capacity - max(1, self.capacity // 2)

    def _track(self, done: list[_Parent], early: bool, ends: list[int]) -> list[int]:
        # The saved state changes when parts are acknowledged early (every open
        # parent is saved), a saved parent is rejoined (it is deleted), or, in
        # stamp order, a parent is rejoined (the highest of its origin rises).
        closed = [parent.key for parent in done if parent.key in self._saved]
        raised = self._raised(done)
        if not early and not closed and not raised:
            return ends
        for key in closed:
            self._saved.discard(key)
            self._delta[("rejoin", *key)] = DELETED
        for origin in raised:
            self._delta[("rejoined", origin)] = self._high[origin]
        if early:
            for parent in self._open.values():
                snapshot = self._snapshot(parent)
                if snapshot is None:
                    continue
                self._saved.add(parent.key)
                self._delta[("rejoin", *parent.key)] = snapshot
        # One acknowledgement for the whole round: see `changes`.
        return [ends[-1]] * len(ends) if ends else ends

    def _raised(self, done: list[_Parent]) -> set[str]:
        # The origins whose highest rejoined parent this round raised.
        if not self.ordered:
            return set()
        return {parent.origin for parent in done if not parent.carried}

    def _snapshot(self, parent: _Parent) -> tuple[Any, ...] | None:
        # Plain data: a parent whose split is the only one below it needs only its
        # origin and stamp to be rejoined with the same id. One nested in an outer
        # split (or an outer trace) would need its stamps, which travel only in
        # items: it is not saved, and a crash now would lose it (docs/order.md).
        source = parent.source
        if parent.carried or source is None:
            return None
        if _splits_below(source.slice(parent.index, parent.index + 1)):
            logger.warning(
                "rejoin `%s` acknowledged parts of parent %s early and cannot save "
                "them (a rejoin nested in another split); a crash now would lose it",
                self.name,
                parent.stamp,
            )
            return None
        return (parent.seq, parent.total, tuple(parent.spans), dict(parent.parts))

    def _close(self, through: int) -> list[_Parent]:
        done = []
        for parent in self._open.values():
            if parent.seq > through:
                break
            done.append(parent)
        for parent in done:
            del self._open[parent.key]
        rejoined = [parent for parent in done if not parent.carried]
        if not rejoined:
            return done
        if not self.ordered:
            self._emitted.add([parent.key for parent in rejoined])
            return done
        for parent in rejoined:
            high = self._high.get(parent.origin)
            if high is None or parent.stamp > high:
                self._high[parent.origin] = parent.stamp
        return done

    async def _rejoin(
        self, done: list[_Parent]
    ) -> tuple[list[Any], list[int], list[bool]]:
        values: list[Any] = []
        seqs: list[int] = []
        kept: list[bool] = []
        for parent in done:
            if parent.carried:
                kept.append(False)
                continue
            parts = [parent.parts[index] for index in sorted(parent.parts)]
            result = await self._call(parts, parent)
            kept.append(result is not DROP)
            if result is not DROP:
                values.append(result)
                seqs.append(parent.seq)
        return values, seqs, kept

    async def _call(self, parts: list[Any], parent: _Parent) -> Any:
        try:
            return await self._again(parts)
        except Exception as exc:  # the user's function: its policy decides
            return await self.handler.recover(
                exc,
                parts,
                (parent.origin, *parent.stamp),
                lambda: self._again(parts),
            )

    async def _again(self, parts: list[Any]) -> Any:
        if self.function.is_async:
            return await self.function.call(parts)
        return await self.offload.run(self.function.call, parts)

    def _ends(self, count: int, seqs: list[int]) -> list[int]:
        # Each recorded input is freed by the output of the last parent it waits
        # for (a parent whose call was skipped: by the outputs before it); inputs
        # acknowledged early wait for every output of this round.
        ends: list[int] = []
        reached = -1
        emitted = 0
        for seq in self._pending[:count]:
            if seq is not None:
                reached = max(reached, seq)
            while emitted < len(seqs) and seqs[emitted] <= reached:
                emitted += 1
            ends.append(emitted)
        del self._pending[:count]
        if ends:
            ends[-1] = len(seqs)
        return ends


def _reopened(key: ParentKey, value: Any) -> _Parent:
    # A parent from its snapshot (see `Rejoin._snapshot`).
    origin, stamp = key
    seq, total, spans, parts = value
    source = Listed(origin, (stamp,))
    parent = _Parent(seq, origin, stamp, total, source, 0, parts=dict(parts))
    for low, high in spans:
        parent.cover(low, high)
    return parent


def _splits_below(stamps: Stamps) -> bool:
    # Whether a split lies under these stamps (a rejoin of an enclosing split will
    # look for it): then the stamps themselves are kept, not just the parent's.
    if isinstance(stamps, Derived):
        return stamps.split or _splits_below(stamps.parent)
    if isinstance(stamps, Concat):
        return any(_splits_below(piece) for piece in stamps.pieces)
    inner = getattr(stamps, "inner", None)  # a merge's tagged stamps
    if isinstance(inner, Stamps):
        return _splits_below(inner)
    return False


def _pieces(done: list[_Parent], kept: list[bool]) -> list[Stamps]:
    # Runs of consecutive parents of one flat-map batch, each one slice of its
    # stamps; parents whose call was skipped are left out by a keep.
    pieces: list[Stamps] = []
    begin = 0
    for end in range(1, len(done) + 1):
        if end < len(done) and _follows(done[end - 1], done[end]):
            continue
        first, last = done[begin], done[end - 1]
        assert first.source is not None
        if first.carried:
            pieces.append(first.source)
            begin = end
            continue
        piece = first.source.slice(first.index, last.index + 1)
        flags = kept[begin:end]
        if not all(flags):
            piece = derive(piece, [int(flag) for flag in flags], split=False)
        pieces.append(piece)
        begin = end
    return pieces


def _follows(before: _Parent, after: _Parent) -> bool:
    if before.carried or after.carried:
        return False
    return after.source is before.source and after.index == before.index + 1


def _batches(values: list[Any], pieces: list[Stamps], origin: str) -> list[Batch]:
    # The outputs, one batch per run of pieces whose events share an origin. A
    # piece with no event (its parents' calls skipped, an outer trace) goes with
    # the run that holds what follows it, or the last: its cover names its own
    # parents' origin, and it adds no id. With no event at all: one batch (a
    # trace when it accounts for anything), of `origin` when it has no piece.
    runs: list[tuple[str, list[Stamps]]] = []
    waiting: list[Stamps] = []
    for piece in pieces:
        if not len(piece):
            waiting.append(piece)
            continue
        if runs and runs[-1][0] == piece.origin:
            runs[-1][1].extend(waiting)
            runs[-1][1].append(piece)
        else:
            runs.append((piece.origin, [*waiting, piece]))
        waiting = []
    if not runs:
        return [Batch(values, Concat(origin, tuple(waiting)))]
    runs[-1][1].extend(waiting)

    batches = []
    start = 0
    for source, run in runs:
        stamps = Concat(source, tuple(run))
        stop = start + len(stamps)
        batches.append(Batch(values[start:stop], stamps))
        start = stop
    return batches


def traced(plan: Plan, task: Task) -> bool:
    """Whether a task's vanished batches must travel as traces: it is a `flat_map`
    that a rejoin closes, or lies inside such a split."""
    closed = {other.closes for other in plan.tasks if other.closes is not None}
    if task.kind == "flat_map" and task.name in closed:
        return True
    return task.split in closed and task.kind != "sink"

"""Spreading a stage's batches over its workers while keeping the order it promises.

A stage with `workers > 1` and `order = total` is resequenced by the worker itself:
batches run at once and their outputs leave in the order the batches were taken. The
weaker orders are scheduled here, each allowing more parallelism:

- `partial`: a batch is cut at parent boundaries (a parent is the stamp without its
  last part index); a parent with many parts is spread over the workers, and runs of
  parents with few parts are processed in one unit, one after another. No part of
  the next parent starts before every part of this one is done. Outputs leave in
  input order.
- `keyed(K)`: every key belongs to one lane (the hash of the key modulo the
  workers), and each lane runs one unit at a time, its events in stamp order, so
  equal keys are processed one after another and the lanes run in parallel. A batch
  is cut into one piece per lane, by runs of equal keys (hashed once per run); while
  a lane is busy its pieces gather, and it next runs up to a batch of them as one
  unit, copied in one pass, so that units stay about a batch long (a queue item
  costs far more than an event, see PERFORMANCE.md). A finished unit leaves at once.
- `none`: batches run at once and leave as they finish.

Inside a split that a rejoin closes, every order leaves in input order (the rejoin
meets the parents in order) and `keyed` cuts no lanes: a unit is a whole batch and
waits for every earlier unit that holds one of its keys.

At most `workers` units are taken and not yet released (running or finished and
waiting for their turn); with lanes, at most `2 x workers` batches' worth of
events. So the reorder buffer is bounded and counts against back-pressure: a slow
unit stops the stage from taking more input, never lets it grow. End-of-source is
released only after every unit taken before it.

Units that leave out of input order are acknowledged through a `Ledger`: it keeps
the input positions of each released unit and acknowledges, on the real input, only
the prefix of positions whose outputs are all delivered.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
import operator
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from reflow_lang.plan import Order
from reflow_lang.runtime.chain import Outcome
from reflow_lang.runtime.events import Batch, Instruction, Item, Listed, Stamp, size
from reflow_lang.runtime.functions import key_reader
from reflow_lang.runtime.ports import Input
from reflow_lang.runtime.rejoin import is_trace

if TYPE_CHECKING:
    from reflow_lang.runtime.worker import Step

logger = logging.getLogger(__name__)

Done = tuple[int, Item, Outcome | None]
Ranges = list[tuple[int, int]]


class Ledger:
    """An input whose acknowledgements may come for units released out of order.

    The worker acknowledges through it as through its input: counts of inputs
    delivered, per input queue, in the order the units were released. The ledger
    turns them back into input positions and acknowledges the delivered prefix.
    """

    def __init__(self, input: Input) -> None:
        self.source = input
        self.inputs = input.inputs
        self._taken = [0] * input.inputs
        self._committed = [0] * input.inputs
        self._delivered: list[list[tuple[int, int]]] = [[] for _ in range(input.inputs)]
        self._released: list[deque[list[tuple[int, int]]]] = [
            deque() for _ in range(input.inputs)
        ]

    def assign(self, index: int, count: int) -> int:
        """Positions for `count` more inputs taken from input `index`: the first."""
        start = self._taken[index]
        self._taken[index] += count
        return start

    def released(self, index: int, ranges: Ranges) -> None:
        """A unit of input `index` was released: its inputs' positions, in order."""
        self._released[index].append(list(ranges))

    async def take(self, limit: int) -> tuple[int, Item]:
        return await self.source.take(limit)

    async def poll(self, limit: int) -> tuple[int, Item] | None:
        return await self.source.poll(limit)

    def end_of(self, index: int) -> bool:
        return self.source.end_of(index)

    async def ack(
        self, delivered: Sequence[int], changes: Mapping[Any, Any] | None = None
    ) -> None:
        advanced = [
            self._consume(index, count) for index, count in enumerate(delivered)
        ]
        if any(advanced) or changes:
            await self.source.ack(advanced, changes)

    def _consume(self, index: int, count: int) -> int:
        # Marks `count` more positions of released units delivered; answers how far
        # the delivered prefix moved.
        units, heap = self._released[index], self._delivered[index]
        while count:
            ranges = units[0]
            start, stop = ranges[0]
            take = min(count, stop - start)
            heapq.heappush(heap, (start, start + take))
            count -= take
            if start + take < stop:
                ranges[0] = (start + take, stop)
            else:
                ranges.pop(0)
                if not ranges:
                    units.popleft()

        before = committed = self._committed[index]
        while heap and heap[0][0] <= committed:
            committed = max(committed, heapq.heappop(heap)[1])
        self._committed[index] = committed
        return committed - before


# Events below which cutting a batch (for `partial` or `keyed`) costs more than the
# parallelism it buys: each unit is one submission to the thread pool.
MIN_CHUNK = 32


class _Mixed:
    """The parent of a unit holding the parts of several parents."""

    __slots__ = ()


MIXED = _Mixed()


@dataclass(slots=True)
class _Unit:
    """Work taken and not yet released: a piece of an input item."""

    index: int
    item: Item
    ranges: Ranges
    future: asyncio.Future[Outcome | None] | None = None
    parent: Stamp | _Mixed | None = None
    """For `partial`: the parent whose parts the unit holds, or `MIXED`."""
    keys: set[Any] | None = None
    """For `keyed`: its distinct keys; it runs after earlier units sharing one."""
    trace: bool = False
    """A trace: never waits for a parent's parts (see `rejoin`)."""
    previous: list[asyncio.Future[Outcome | None]] | None = None
    lane: int = -1
    """For `keyed` outside a split: the lane whose keys the unit holds."""


@dataclass(frozen=True, slots=True)
class _Piece:
    """A lane's share of a batch, not yet copied out: its runs of positions.

    Pieces are copied into a unit only when their lane starts them, all at once,
    so that each event is copied once however many pieces a unit gathers.
    """

    index: int
    batch: Batch
    stamps: list[Stamp] | None
    """The batch's stamps, materialised once for all its pieces; `None` when the
    piece is the whole batch."""
    spans: Ranges
    """Positions in the batch, in order."""
    start: int
    """The input position of the batch's first event."""
    size: int


class Scheduler:
    """Runs units of a stage's input on its workers; see the module docstring.

    Args:
        order: the order the stage keeps: `partial`, `keyed` or `none`.
        input: the stage's input; the worker acknowledges through `self.input`.
        step: what processes a batch.
        workers: units taken and not released, at most.
        limit: events to take at once (the worker's batch or flat-map estimate).
        stage: the stage's name, for messages.
        split: the stage lies inside a split that a rejoin closes: its units
            leave in input order, so that the rejoin meets the parents in order,
            and `keyed` never cuts a batch into lanes (the rejoin reads contiguous
            slices of the split's stamps).
    """

    def __init__(
        self,
        order: Order,
        input: Input,
        step: Step,
        workers: int,
        limit: Callable[[], int],
        stage: str,
        *,
        split: bool = False,
    ) -> None:
        self.order = order
        self.input = Ledger(input)
        self.step = step
        self.workers = workers
        self.limit = limit
        self.split = split
        self.in_order = split or order.kind == "partial"
        self._key = key_reader(order.key, stage) if order.kind == "keyed" else None
        self._units: deque[_Unit] = deque()  # taken, in input order
        self._waiting: deque[_Unit] = deque()  # taken, not started (partial)
        # For `keyed` inside a split: per key, the last unit started that holds it.
        self._last: dict[Any, asyncio.Future[Outcome | None]] = {}
        self._end: _Unit | None = None
        # For `keyed` outside a split: per lane, the pieces waiting for it and
        # whether a unit of it is out; and the events taken and not released.
        self.lanes = order.kind == "keyed" and not split
        self._pieces: list[deque[_Piece]] = [deque() for _ in range(workers)]
        self._busy = [False] * workers
        self._gathered = [0] * workers  # events of the pieces waiting, per lane
        self._inside = 0

    def held(self) -> int:
        """Outputs finished and held back until their turn to leave."""
        held = 0
        for unit in self._units:
            future = unit.future
            if future is None or not future.done() or future.cancelled():
                continue
            if future.exception() is None:
                outcome = future.result()
                if outcome is not None and outcome.outputs is not None:
                    held += len(outcome.outputs)
        return held

    def cancel(self) -> None:
        """Cancels every unit still running."""
        for unit in self._units:
            if unit.future is not None:
                unit.future.cancel()

    async def next(self) -> Done:
        """The next unit to leave: `(input index, item, outcome)`; `None` outcome
        for end-of-source, which comes after every unit taken before it."""
        while True:
            unit = self._releasable()
            if unit is not None:
                return self._release(unit)
            if not self._units and self._end is not None and not self._pending():
                end, self._end = self._end, None
                return self._release_end(end)
            await self._fill()
            if self._releasable() is None and self._units:
                await self._wait_one()

    # Releasing.

    def _releasable(self) -> _Unit | None:
        # `partial` (and any stage inside a rejoined split) leaves in input order;
        # `keyed` and `none` as units finish (a unit finishes after the units it
        # waits for, which come before it here).
        for unit in self._units:
            future = unit.future
            if future is not None and future.done():
                return unit
            if self.in_order:
                return None
        return None

    def _release(self, unit: _Unit) -> Done:
        self._units.remove(unit)
        assert unit.future is not None
        if unit.keys is not None:
            self._forget(unit)
        if self.lanes:
            self._inside -= sum(stop - start for start, stop in unit.ranges)
            if unit.lane >= 0:
                self._busy[unit.lane] = False
        outcome = unit.future.result()
        assert outcome is not None
        self.input.released(unit.index, unit.ranges)
        return unit.index, unit.item, outcome

    def _release_end(self, end: _Unit) -> Done:
        self.input.released(end.index, end.ranges)
        return end.index, end.item, None

    async def _wait_one(self) -> None:
        running = [u.future for u in self._units if u.future is not None]
        if running:
            await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)

    # Taking and starting.

    async def _fill(self) -> None:
        if self.lanes:
            await self._fill_lanes()
            return
        self._start_waiting()
        while (
            self._end is None and not self._waiting and len(self._units) < self.workers
        ):
            if self._units:
                taken = await self.input.poll(self.limit())
                if taken is None:
                    return
            else:
                taken = await self.input.take(self.limit())
            self._admit(*taken)
            self._start_waiting()

    async def _fill_lanes(self) -> None:
        # Takes while the events inside stay under `2 x workers` batches, so that a
        # busy lane gathers about a batch of pieces for its next unit. A lane
        # starts on less only when nothing more can be taken now.
        self._start_lanes(self.limit())
        while self._end is None and self._inside < 2 * self.workers * self.limit():
            if self._units or self._pending():
                taken = await self.input.poll(self.limit())
                if taken is None:
                    break
            else:
                taken = await self.input.take(self.limit())
            self._admit(*taken)
            self._start_lanes(self.limit())
        self._start_lanes(1)

    def _pending(self) -> bool:
        return any(self._pieces)

    def _start_lanes(self, least: int) -> None:
        # An idle lane with `least` events gathered runs its pieces (of one input
        # and origin) as one unit; one unit per lane at a time keeps its keys in
        # stamp order.
        for lane, pieces in enumerate(self._pieces):
            if pieces and not self._busy[lane] and self._gathered[lane] >= least:
                unit = _gather(pieces, lane, self.limit())
                self._busy[lane] = True
                self._gathered[lane] -= size(unit.item)
                self._start(unit)

    def _start(self, unit: _Unit) -> None:
        self._units.append(unit)
        unit.future = asyncio.ensure_future(self._run(unit))

    def _admit(self, index: int, item: Item) -> None:
        start = self.input.assign(index, size(item))
        ranges = [(start, start + size(item))]
        if isinstance(item, Instruction):
            self._end = _Unit(index, item, ranges)
            return
        if self.lanes:
            self._inside += size(item)
            if is_trace(item):
                self._start(_Unit(index, item, ranges, trace=True))
                return
            for lane, piece in self._by_lanes(index, item, start):
                self._pieces[lane].append(piece)
                self._gathered[lane] += piece.size
            return
        if is_trace(item):
            self._waiting.append(_Unit(index, item, ranges, trace=True))
            return
        if self.order.kind == "partial":
            self._waiting.extend(self._by_parent(index, item, start))
        elif self.order.kind == "keyed":
            self._waiting.extend(self._by_keys(index, item, start))
        else:
            self._waiting.append(_Unit(index, item, ranges))

    def _start_waiting(self) -> None:
        while self._waiting:
            unit = self._waiting[0]
            if self.order.kind == "partial" and not self._may_start(unit):
                return
            self._waiting.popleft()
            self._units.append(unit)
            if unit.keys is not None:
                unit.previous = self._holders(unit.keys)
            unit.future = asyncio.ensure_future(self._run(unit))
            if unit.keys is not None:
                self._last.update(dict.fromkeys(unit.keys, unit.future))

    def _holders(self, keys: set[Any]) -> list[asyncio.Future[Outcome | None]]:
        last = self._last
        found = {id(f): f for k in keys if (f := last.get(k)) is not None}
        return [future for future in found.values() if not future.done()]

    def _forget(self, unit: _Unit) -> None:
        # Keys whose last unit is this one need no waiting any more.
        last, future = self._last, unit.future
        assert unit.keys is not None
        for key in unit.keys:
            if last.get(key) is future:
                del last[key]

    def _may_start(self, unit: _Unit) -> bool:
        # A part of the next parent waits until every part of this one is done.
        if unit.trace:
            return True
        for other in self._units:
            if other.trace or other.future is None or other.future.done():
                continue
            if other.parent is MIXED or unit.parent is MIXED:
                return False
            if other.parent != unit.parent:
                return False
        return True

    async def _run(self, unit: _Unit) -> Outcome | None:
        # A trace runs too (without waiting): a flat-map wraps it in its split.
        previous, unit.previous = unit.previous, None
        if previous:
            await asyncio.wait(previous)
        assert isinstance(unit.item, Batch)
        return await self.step.process(unit.item)

    # Cutting items into units.

    def _by_parent(self, index: int, batch: Batch, start: int) -> list[_Unit]:
        parents = [stamp[:-1] for stamp in batch.stamps.materialise()]
        units: list[_Unit] = []
        small = 0  # where the pending run of small parents begins
        begin = 0
        for stop in _run_ends(parents):
            if stop - begin >= 2 * MIN_CHUNK:
                units.extend(self._unit(index, batch, start, small, begin, parents))
                units.extend(self._chunks(index, batch, start, begin, stop, parents))
                small = stop
            begin = stop
        units.extend(self._unit(index, batch, start, small, len(batch), parents))
        return units

    def _unit(
        self,
        index: int,
        batch: Batch,
        start: int,
        low: int,
        high: int,
        parents: list[Stamp],
    ) -> list[_Unit]:
        # Parents with few parts, processed one after another in one unit.
        if high <= low:
            return []
        parent = parents[low] if parents[low] == parents[high - 1] else MIXED
        return [
            _Unit(
                index,
                _slice(batch, low, high),
                [(start + low, start + high)],
                parent=parent,
            )
        ]

    def _chunks(
        self,
        index: int,
        batch: Batch,
        start: int,
        begin: int,
        stop: int,
        parents: list[Stamp],
    ) -> list[_Unit]:
        # One parent's many parts, spread over the workers.
        count = stop - begin
        pieces = max(1, min(self.workers, count // MIN_CHUNK))
        bounds = [begin + count * piece // pieces for piece in range(pieces + 1)]
        return [
            _Unit(
                index,
                _slice(batch, low, high),
                [(start + low, start + high)],
                parent=parents[begin],
            )
            for low, high in itertools.pairwise(bounds)
        ]

    def _by_keys(self, index: int, batch: Batch, start: int) -> list[_Unit]:
        # Inside a split: the whole batch, waiting for the holders of its keys.
        keys = {_hashable(key) for key in self._keys(batch)}
        return [_Unit(index, batch, [(start, start + len(batch))], keys=keys)]

    def _by_lanes(
        self, index: int, batch: Batch, start: int
    ) -> list[tuple[int, _Piece]]:
        # A run of equal keys picks its lane by its first key, so that keys are
        # hashed per run, not per event: the parts of a parent often share one.
        keys = self._keys(batch)
        bounds = _run_bounds(keys)
        lanes = self._lanes_of([keys[low] for low in bounds[:-1]])
        count = len(keys)
        if lanes.count(lanes[0]) == len(lanes):
            return [(lanes[0], _Piece(index, batch, None, [(0, count)], start, count))]

        runs: list[Ranges] = [[] for _ in range(self.workers)]
        for lane, (low, high) in zip(lanes, itertools.pairwise(bounds), strict=True):
            spans = runs[lane]
            if spans and spans[-1][1] == low:
                spans[-1] = (spans[-1][0], high)
            else:
                spans.append((low, high))
        stamps = batch.stamps.materialise()
        return [
            (lane, _Piece(index, batch, stamps, spans, start, _width(spans)))
            for lane, spans in enumerate(runs)
            if spans
        ]

    def _lanes_of(self, keys: list[Any]) -> list[int]:
        workers = self.workers
        try:
            return list(map(workers.__rmod__, map(hash, keys)))
        except TypeError:  # an unhashable key: its repr picks the lane
            return [hash(_hashable(key)) % workers for key in keys]

    def _keys(self, batch: Batch) -> list[Any]:
        if self._key is None:
            return batch.values
        try:
            return list(map(self._key, batch.values))
        except Exception:  # the user's key: read them one by one, see `_safe`
            return [_safe(self._key, value) for value in batch.values]


def _run_bounds(keys: list[Any]) -> list[int]:
    # Where runs of equal keys begin, and the end: `[0, ..., len(keys)]`. The
    # comparison runs in C; a key that cannot be compared makes every event a run.
    count = len(keys)
    try:
        changes = list(
            itertools.compress(
                range(1, count),
                map(operator.ne, keys, itertools.islice(keys, 1, None)),
            )
        )
    except Exception:  # the user's keys: comparing them is their code
        return list(range(count + 1))
    return [0, *changes, count]


def _run_ends(parents: list[Stamp]) -> list[int]:
    ends = [i for i in range(1, len(parents)) if parents[i] != parents[i - 1]]
    return [*ends, len(parents)]


def _hashable(key: Any) -> Any:
    try:
        hash(key)
    except TypeError:
        return repr(key)
    return key


def _slice(batch: Batch, low: int, high: int) -> Batch:
    return batch if (low, high) == (0, len(batch)) else batch.slice(low, high)


def _safe(function: Callable[[Any], Any], value: Any) -> Any:
    # A key that cannot be read picks a lane by the event itself; the stage's own
    # function still sees the event and its policy decides.
    try:
        return function(value)
    except Exception:  # the user's key: the event still goes to some lane
        logger.debug("keyed order: a key could not be read; lane chosen by the event")
        return repr(value)


def _width(spans: Ranges) -> int:
    return sum(high - low for low, high in spans)


def _gather(pieces: deque[_Piece], lane: int, most: int) -> _Unit:
    # The first pieces of the same input and origin, `most` events of them (a
    # batch: a longer unit's outputs would reach the next stage as a batch and a
    # sliver), copied into one unit in one pass; a piece is cut to fit.
    first = _head(pieces, most)
    group, events = [first], first.size
    while pieces and events < most and _joins(first, pieces[0]):
        piece = _head(pieces, most - events)
        events += piece.size
        group.append(piece)
    if len(group) == 1 and first.spans == [(0, len(first.batch))]:
        ranges = [(first.start, first.start + first.size)]
        return _Unit(first.index, first.batch, ranges, lane=lane)

    values = _picked([(piece.batch.values, piece.spans) for piece in group])
    keys = None
    if first.batch.keys is not None:
        keys = _picked([(piece.batch.keys or [], piece.spans) for piece in group])
    stamps = tuple(_picked([(_stamps_of(piece), piece.spans) for piece in group]))
    listed = Listed(first.batch.stamps.origin, stamps)
    ranges = _merged(
        [
            [(piece.start + low, piece.start + high) for low, high in piece.spans]
            for piece in group
        ]
    )
    return _Unit(first.index, Batch(values, listed, keys), ranges, lane=lane)


def _head(pieces: deque[_Piece], most: int) -> _Piece:
    # The first piece, or its first `most` events (the rest stays first).
    piece = pieces.popleft()
    if piece.size <= most:
        return piece

    taken: Ranges = []
    left = most
    for low, high in piece.spans:
        if left <= 0:
            break
        taken.append((low, min(high, low + left)))
        left -= taken[-1][1] - low
    rest = piece.spans[len(taken) - 1 :]
    rest[0] = (taken[-1][1], rest[0][1])
    if rest[0][0] == rest[0][1]:
        rest.pop(0)
    pieces.appendleft(replace(piece, spans=rest, size=piece.size - most))
    return replace(piece, spans=taken, size=most)


def _picked(sources: list[tuple[Sequence[Any], Ranges]]) -> list[Any]:
    # The items at the spans of each sequence, in order.
    return list(
        itertools.chain.from_iterable(
            values[low:high] for values, spans in sources for low, high in spans
        )
    )


def _joins(first: _Piece, piece: _Piece) -> bool:
    # Pieces run as one batch: one input, one origin, keys on all or none.
    one, other = first.batch, piece.batch
    return (
        piece.index == first.index
        and one.stamps.origin == other.stamps.origin
        and (one.keys is None) == (other.keys is None)
    )


def _stamps_of(piece: _Piece) -> Sequence[Stamp]:
    if piece.stamps is not None:
        return piece.stamps
    stamps = piece.batch.stamps
    return stamps.stamps if isinstance(stamps, Listed) else stamps.materialise()


def _merged(pieces: list[Ranges]) -> Ranges:
    # The pieces' input positions in order, adjacent ranges joined.
    ranges: Ranges = []
    for start, stop in itertools.chain.from_iterable(pieces):
        if ranges and ranges[-1][1] == start:
            ranges[-1] = (ranges[-1][0], stop)
        else:
            ranges.append((start, stop))
    return ranges


def scheduled(order: Order, workers: int) -> bool:
    """Whether a stage needs a `Scheduler` (else the worker resequences in order)."""
    return workers > 1 and order.kind in ("partial", "keyed", "none")

"""Events in flight: batches of values with compact stamps, and instructions.

A queue item is either a `Batch` (many events) or an `Instruction` (end-of-source).
A batch pays for its events' identity per batch, not per event: its stamps are a
lazy description (a range of source offsets, or the parent stamps and per-parent
part counts of a split, or a filter's survivors) that is materialised into tuples
only when something needs a stamp or an id (an error message, a dead letter).

An event's stamp is its source offset, then its part index at each split on the way;
its id is the origin (the task that created it: a source, or a `count`/`reduce`
emitting its results) followed by the stamp. Both are deterministic.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import accumulate, repeat
from typing import Any, Literal

Stamp = tuple[int, ...]
EventId = tuple[Any, ...]


class Stamps:
    """The stamps of a batch's events, described compactly; see the subclasses."""

    __slots__ = ()

    @property
    def origin(self) -> str:
        """The task whose events these are (a source, `count` or `reduce`)."""
        raise NotImplementedError

    def __len__(self) -> int:
        raise NotImplementedError

    def slice(self, start: int, stop: int) -> Stamps:
        """The stamps of events `start` to `stop` (exclusive)."""
        raise NotImplementedError

    def materialise(self) -> list[Stamp]:
        """Every stamp, as a tuple per event."""
        raise NotImplementedError


@dataclass(frozen=True, slots=True)
class Offsets(Stamps):
    """Events `start` to `stop` (exclusive) of one origin: stamps `(offset,)`."""

    source: str
    start: int
    stop: int

    @property
    def origin(self) -> str:
        return self.source

    def __len__(self) -> int:
        return self.stop - self.start

    def slice(self, start: int, stop: int) -> Stamps:
        return Offsets(self.source, self.start + start, self.start + stop)

    def materialise(self) -> list[Stamp]:
        return [(offset,) for offset in range(self.start, self.stop)]


@dataclass(frozen=True, slots=True)
class Derived(Stamps):
    """Stamps derived from a parent batch: each parent event gave `counts[i]` events.

    With `split`, the children of a parent are its parts: the parent's stamp plus the
    part index. Without, they keep the parent's stamp (a filter keeps 0 or 1 of each).
    `start` and `stop` select a slice of the derived sequence, so that a queue that
    accepts a prefix costs nothing here.
    """

    parent: Stamps
    counts: Sequence[int]
    split: bool
    start: int
    stop: int
    ends: Sequence[int] = ()
    """The cumulative counts (`ends[i]`: children of parents 0..i), when known."""

    @property
    def origin(self) -> str:
        return self.parent.origin

    def __len__(self) -> int:
        return self.stop - self.start

    def slice(self, start: int, stop: int) -> Stamps:
        return Derived(
            self.parent,
            self.counts,
            self.split,
            self.start + start,
            self.start + stop,
            self.ends,
        )

    def materialise(self) -> list[Stamp]:
        parent, counts, start, stop = self.parent, self.counts, self.start, self.stop
        if start >= stop:
            return []
        ends = self.ends
        if ends and (start or stop < ends[-1]):
            # A slice: only the parents whose children it holds, not all of them.
            low = bisect_right(ends, start)
            high = min(bisect_left(ends, stop) + 1, len(counts))
            offset = ends[low - 1] if low else 0
            parent, counts = parent.slice(low, high), counts[low:high]
            start, stop = start - offset, stop - offset
        stamps: list[Stamp] = []
        for stamp, count in zip(parent.materialise(), counts, strict=True):
            if self.split:
                stamps.extend(stamp + (part,) for part in range(count))
            else:
                stamps.extend(repeat(stamp, count))
        return stamps[start:stop]


@dataclass(frozen=True, slots=True)
class Listed(Stamps):
    """Stamps given one by one (a dead letter keeps the stamp of its failed event)."""

    source: str
    stamps: tuple[Stamp, ...]

    @property
    def origin(self) -> str:
        return self.source

    def __len__(self) -> int:
        return len(self.stamps)

    def slice(self, start: int, stop: int) -> Stamps:
        return Listed(self.source, self.stamps[start:stop])

    def materialise(self) -> list[Stamp]:
        return list(self.stamps)


def derive(parent: Stamps, counts: Sequence[int], *, split: bool) -> Stamps:
    """The stamps of the events that parent events gave, `counts[i]` each."""
    ends = list(accumulate(counts))
    return Derived(parent, counts, split, 0, ends[-1] if ends else 0, ends)


@dataclass(frozen=True, slots=True)
class Batch:
    """Events that travel together: values, their stamps and, once keyed, keys."""

    values: list[Any]
    stamps: Stamps
    keys: list[Any] | None = None

    def __len__(self) -> int:
        return len(self.values)

    def slice(self, start: int, stop: int) -> Batch:
        """Events `start` to `stop` (exclusive)."""
        keys = None if self.keys is None else self.keys[start:stop]
        return Batch(self.values[start:stop], self.stamps.slice(start, stop), keys)

    def ids(self) -> list[EventId]:
        """Every event's id: `(origin, offset, part, ...)`."""
        origin = self.stamps.origin
        return [(origin, *stamp) for stamp in self.stamps.materialise()]

    def event_id(self, index: int) -> EventId:
        """The id of one event (materialises the stamps: for messages, not loops)."""
        return (
            self.stamps.origin,
            *self.stamps.slice(index, index + 1).materialise()[0],
        )


@dataclass(frozen=True, slots=True)
class Instruction:
    """A processing instruction, travelling behind the data in the same queues."""

    kind: Literal["end_of_source"]


END_OF_SOURCE = Instruction("end_of_source")

Item = Batch | Instruction


def size(item: Item) -> int:
    """The queue slots an item takes: its events, or one for an instruction.

    A batch with no events (a trace: every event of it was dropped inside a split,
    see `rejoin`) takes one slot, so that it travels like any other item.
    """
    return max(len(item), 1) if isinstance(item, Batch) else 1


def slice_item(item: Item, start: int, stop: int) -> Item:
    """Part of an item; an instruction is indivisible."""
    return item.slice(start, stop) if isinstance(item, Batch) else item

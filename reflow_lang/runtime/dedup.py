"""Dropping replayed events: each stage remembers the ids it recently accepted.

After a failure, a worker's replacement processes again the inputs it had not
acknowledged, so some events arrive downstream twice (RUNTIME.md). `DedupInput`
sits between a stage and its input queues and drops an event whose id it has seen:

- on an input in `total` order, ids only grow, so a *high-water stamp* per origin
  is enough: an event at or below it is a replay. A batch costs one comparison of
  its last stamp in the common case, and a scan only when it straddles the mark.
- on weaker orders, a bounded set of recent ids (oldest forgotten first), sized
  from the queue capacities: a replay can only repeat what was not yet
  acknowledged upstream, which the queues' bounds limit.

An id is recorded only once downstream has accepted the event's outputs (when the
worker acknowledges it), never when it is merely taken: a stage that fails before
delivering must see the event again. Dropped events still take their place in the
input queue's offsets, so acknowledgements are translated back to offsets here.

A `merge` can receive one event twice by two paths (a diamond): the copies are
distinct events with the same stamp, so the merge's input tags each batch with the
input it came through (`Via`), and the ids downstream tell the copies apart.
"""

from __future__ import annotations

import logging
from bisect import bisect_right
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import accumulate, compress

from reflow_lang.plan import Plan, Task
from reflow_lang.runtime.events import (
    Batch,
    Derived,
    EventId,
    Item,
    Listed,
    Offsets,
    Stamp,
    Stamps,
)
from reflow_lang.runtime.ports import Input

logger = logging.getLogger(__name__)

# How many recent ids a weakly ordered input remembers, per unit of queue capacity.
REMEMBER_PER_SLOT = 4


@dataclass(frozen=True, slots=True)
class Via(Stamps):
    """The stamps of events a merge forwards from one input: their origin names it."""

    inner: Stamps
    tag: str

    @property
    def origin(self) -> str:
        return f"{self.inner.origin}@{self.tag}"

    def __len__(self) -> int:
        return len(self.inner)

    def slice(self, start: int, stop: int) -> Stamps:
        return Via(self.inner.slice(start, stop), self.tag)

    def materialise(self) -> list[Stamp]:
        return self.inner.materialise()


def stamp_at(stamps: Stamps, index: int) -> Stamp:
    """The stamp of one event, materialising nothing else."""
    if isinstance(stamps, Offsets):
        return (stamps.start + index,)
    if isinstance(stamps, Derived):
        position = stamps.start + index
        ends = stamps.ends or list(accumulate(stamps.counts))
        parent = bisect_right(ends, position)
        stamp = stamp_at(stamps.parent, parent)
        if stamps.split:
            return (*stamp, position - (ends[parent] - stamps.counts[parent]))
        return stamp
    if isinstance(stamps, Listed):
        return stamps.stamps[index]
    if isinstance(stamps, Via):
        return stamp_at(stamps.inner, index)
    return stamps.slice(index, index + 1).materialise()[0]


class RecentIds:
    """A bounded set of ids, forgetting the oldest batch of them first.

    Ids are added and forgotten a batch at a time, and looked up with set
    operations, so that the per-event work stays in C.
    """

    def __init__(self, size: int) -> None:
        self.size = max(1, size)
        self._ids: set[EventId] = set()
        self._batches: deque[list[EventId]] = deque()

    def __contains__(self, event_id: object) -> bool:
        return event_id in self._ids

    def __len__(self) -> int:
        return len(self._ids)

    def any_of(self, ids: list[EventId]) -> bool:
        """Whether any of `ids` is remembered."""
        return not self._ids.isdisjoint(ids)

    def add(self, ids: list[EventId]) -> None:
        """Remembers `ids`, forgetting the oldest batches beyond the bound."""
        self._ids.update(ids)
        self._batches.append(ids)
        while len(self._ids) > self.size and len(self._batches) > 1:
            self._ids.difference_update(self._batches.popleft())


class _Memory:
    """What one input queue has accepted: high-water stamps, or recent ids."""

    def __init__(self, total: bool, size: int) -> None:
        self.total = total
        self.high: dict[str, Stamp] = {}
        self.recent = RecentIds(size)

    def keep(self, batch: Batch) -> tuple[list[bool] | None, list[EventId] | None]:
        """Which events are new (`None` when all are, the common case), and the
        batch's ids when they had to be made (kept for `accepted`)."""
        if self.total:
            return self._keep_total(batch), None
        ids = batch.ids()
        if not self.recent.any_of(ids):
            return None, ids
        return [event_id not in self.recent for event_id in ids], None

    def _keep_total(self, batch: Batch) -> list[bool] | None:
        high = self.high.get(batch.stamps.origin)
        if high is None or stamp_at(batch.stamps, 0) > high:
            return None
        if stamp_at(batch.stamps, len(batch) - 1) <= high:
            return [False] * len(batch)
        return [stamp > high for stamp in batch.stamps.materialise()]

    def accepted(self, taken: _Taken, stop: int) -> None:
        """Records that downstream accepted the events of `taken` before `stop`."""
        start, stamps = taken.done, taken.batch.stamps
        if self.total:
            last = stamp_at(stamps, stop - 1)
            origin = stamps.origin
            if origin not in self.high or last > self.high[origin]:
                self.high[origin] = last
            return
        if taken.ids is not None:
            self.recent.add(taken.ids[start:stop])
            return
        origin = stamps.origin
        self.recent.add(
            [(origin, *stamp) for stamp in stamps.slice(start, stop).materialise()]
        )


class _Taken:
    """A batch handed to the stage, and how much of it is delivered so far."""

    __slots__ = ("batch", "done", "ids")

    def __init__(self, batch: Batch, ids: list[EventId] | None = None) -> None:
        self.batch = batch
        self.done = 0
        self.ids = ids


class DedupInput:
    """A stage's input that drops replays; see the module docstring.

    Args:
        input: the queues the stage reads.
        total: per input queue, whether it arrives in `total` order.
        capacity: per input queue, its bound (sizes the recent-id sets).
        tags: for a merge, per input queue, the tag its events' ids get.
    """

    def __init__(
        self,
        input: Input,
        total: Sequence[bool],
        capacity: Sequence[int],
        tags: Sequence[str] | None = None,
    ) -> None:
        self.source = input
        self.tags = tags
        self.inputs = input.inputs
        self.dropped = 0
        self._memory = [
            _Memory(is_total, REMEMBER_PER_SLOT * size)
            for is_total, size in zip(total, capacity, strict=True)
        ]
        # Per input: what was taken, in order: a kept batch, or a count dropped.
        self._taken: list[deque[_Taken | int]] = [deque() for _ in range(input.inputs)]

    async def take(self, limit: int) -> tuple[int, Item]:
        while True:
            index, item = await self.source.take(limit)
            kept = self._admit(index, item)
            if kept is not None:
                return index, self._tag(index, kept)

    async def poll(self, limit: int) -> tuple[int, Item] | None:
        while True:
            taken = await self.source.poll(limit)
            if taken is None:
                return None
            kept = self._admit(*taken)
            if kept is not None:
                return taken[0], self._tag(taken[0], kept)

    def end_of(self, index: int) -> bool:
        return self.source.end_of(index)

    async def ack(self, delivered: Sequence[int]) -> None:
        offsets = [self._consume(index, count) for index, count in enumerate(delivered)]
        offsets = [
            count + self._skip_dropped(index) for index, count in enumerate(offsets)
        ]
        if any(offsets):
            await self.source.ack(offsets)

    def _tag(self, index: int, item: Item) -> Item:
        if self.tags is None or not isinstance(item, Batch):
            return item
        return Batch(item.values, Via(item.stamps, self.tags[index]), item.keys)

    def _admit(self, index: int, item: Item) -> Item | None:
        # The item without its replays; `None` when nothing of it is new.
        taken = self._taken[index]
        if not isinstance(item, Batch) or not item.values:
            taken.append(_Taken(item if isinstance(item, Batch) else _ONE_OFFSET))
            return item
        keep, ids = self._memory[index].keep(item)
        if keep is None:
            taken.append(_Taken(item, ids))
            return item

        runs = _runs(keep)
        self.dropped += keep.count(False)
        logger.debug("dropped %d replayed events", keep.count(False))
        kept = [item.slice(start, stop) for start, stop, new in runs if new]
        for start, stop, new in runs:
            taken.append(_Taken(item.slice(start, stop)) if new else stop - start)
        if not kept:
            return None
        return _concat(item, keep) if len(kept) > 1 else kept[0]

    def _consume(self, index: int, count: int) -> int:
        # Turns `count` delivered inputs of the stage into offsets of the queue,
        # recording the delivered events' ids.
        taken, memory = self._taken[index], self._memory[index]
        offsets = 0
        while count:
            offsets += self._skip_dropped(index)
            head = taken[0]
            assert isinstance(head, _Taken)
            width = max(len(head.batch), 1)
            step = min(count, width - head.done)
            if len(head.batch):
                memory.accepted(head, head.done + step)
            head.done += step
            if head.done == width:
                taken.popleft()
            count -= step
            offsets += step
        return offsets

    def _skip_dropped(self, index: int) -> int:
        taken = self._taken[index]
        skipped = 0
        while taken and isinstance(taken[0], int):
            skipped += taken.popleft()  # type: ignore[operator]
        return skipped


# An instruction takes one offset: recorded as an empty batch, of width one.
_ONE_OFFSET = Batch([], Listed("", ()))


def _runs(keep: list[bool]) -> list[tuple[int, int, bool]]:
    runs: list[tuple[int, int, bool]] = []
    start = 0
    for position in range(1, len(keep) + 1):
        if position == len(keep) or keep[position] != keep[start]:
            runs.append((start, position, keep[start]))
            start = position
    return runs


def _concat(batch: Batch, keep: list[bool]) -> Batch:
    stamps = batch.stamps.materialise()
    keys = None if batch.keys is None else list(compress(batch.keys, keep))
    listed = Listed(batch.stamps.origin, tuple(compress(stamps, keep)))
    return Batch(list(compress(batch.values, keep)), listed, keys)


def guarded(plan: Plan, task: Task, input: Input, capacity: Sequence[int]) -> Input:
    """The input of a stage, dropping replays unless the flow is `at_most_once`
    (which replays nothing)."""
    if plan.delivery == "at_most_once":
        return input
    total = [_is_total(plan, name) for name in task.inputs]
    tags = None
    if task.kind == "merge":
        tags = [f"{task.name}[{index}]" for index in range(len(task.inputs))]
    return DedupInput(input, total, capacity, tags)


def _is_total(plan: Plan, queue: str) -> bool:
    # Dead letters are in the order their events failed: remembered by id.
    producer = plan.task(plan.queue(queue).producer)
    if producer.dead_letter == queue:
        return False
    return producer.order.kind == "total"

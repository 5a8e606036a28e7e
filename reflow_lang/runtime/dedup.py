"""What a queue remembers of the events it accepted, so that replays are dropped.

After a failure, a worker's replacement processes again the inputs it had not
acknowledged, so some events are offered downstream twice (RUNTIME.md). The queue
that receives them drops them on `put` (see `queue.MemoryQueue`), with a `Memory`
from this module:

- on a queue in `total` order, ids only grow, so a *high-water stamp* per origin is
  enough: an event at or below it is a replay. A batch costs one comparison of its
  first stamp in the common case, and a scan only when it straddles the mark.
- on weaker orders (and dead letters, in the order their events failed), a bounded
  set of recent ids (oldest forgotten first), `REMEMBER_PER_SLOT` times the queue's
  capacity: a replay can only repeat what its producer had not yet acknowledged
  upstream, which the queues' bounds limit.

Which of the two a queue uses is chosen from the plan by `remembering`. A `merge` can
receive one event twice by two paths (a diamond): the copies are distinct events with
the same stamp, so the merge's input tags each batch with the input it came through
(`Via`, by `guarded`), and the ids downstream tell the copies apart.

A trace (an empty batch inside a split, see `rejoin`) has no event, so no id: the
queue cannot tell a replayed trace from a new one and stores every trace it is
offered. Its cover depends on where its producer cut batches, which a replay may cut
differently, so no id can be made for it either. For the same reason a replay must
not lose its cover when its events are dropped: the new events of a partly replayed
batch are kept with stamps that filter the whole batch's (`kept`), and a wholly
replayed batch inside a split is kept as a trace. The rejoin counts each covered
split position once, however many of these cover it.
"""

from __future__ import annotations

from bisect import bisect_right
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import accumulate, compress
from typing import TYPE_CHECKING, Any, Literal

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
    derive,
)

if TYPE_CHECKING:
    from reflow_lang.runtime.ports import Input

Remember = Literal["total", "recent", "none"]

# How many recent ids a weakly ordered queue remembers, per unit of its capacity.
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


class Memory:
    """What one queue has accepted: the high-water stamp of every origin (kept
    whatever the mode: it answers `resume_point`) and, by mode, which offered events
    are replays.

    Args:
        mode: `total` (replays are at or below the high-water stamp), `recent` (by
            recent ids) or `none` (nothing is dropped).
        capacity: the queue's bound (sizes the recent-id set).
    """

    def __init__(self, mode: Remember, capacity: int) -> None:
        self.mode = mode
        self.high: dict[str, Stamp] = {}
        self.recent = RecentIds(REMEMBER_PER_SLOT * capacity)

    def keep(self, batch: Batch) -> tuple[list[bool] | None, list[EventId] | None]:
        """Which events of a non-empty batch are new (`None` when all are, the
        common case), and the batch's ids when they had to be made (for `record`)."""
        if self.mode == "total":
            return self._keep_total(batch), None
        if self.mode == "none":
            return None, None
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

    def record(self, batch: Batch, ids: list[EventId] | None = None) -> None:
        """Records the events of a non-empty batch the queue stored; `ids` are
        theirs when `keep` made them."""
        stamps = batch.stamps
        origin = stamps.origin
        last = stamp_at(stamps, len(batch) - 1)
        high = self.high.get(origin)
        if high is None or last > high:
            self.high[origin] = last
        if self.mode == "recent":
            self.recent.add(ids if ids is not None else batch.ids())


def kept(batch: Batch, keep: list[bool]) -> Batch:
    """The events of `batch` that `keep` marks, as one batch (empty: a trace).

    Its stamps filter `batch`'s (a `Derived` keep) rather than list the survivors,
    so that inside a split its cover is still the whole of `batch`'s: the dropped
    replays' split positions, and the parts dropped before and between them, may
    be covered by this batch alone (the replay may be cut unlike the original).
    """
    if all(keep):
        return batch
    keys = None if batch.keys is None else list(compress(batch.keys, keep))
    stamps = derive(batch.stamps, [int(flag) for flag in keep], split=False)
    return Batch(list(compress(batch.values, keep)), stamps, keys)


def crosses_split(stamps: Stamps) -> bool:
    """Whether these stamps lie inside a split (a rejoin may count their cover)."""
    if isinstance(stamps, Derived):
        return stamps.split or crosses_split(stamps.parent)
    if isinstance(stamps, Via):
        return crosses_split(stamps.inner)
    pieces = getattr(stamps, "pieces", None)  # a rejoin's outputs (`Concat`)
    return pieces is not None and any(map(crosses_split, pieces))


def remembering(plan: Plan, queue: str) -> Remember:
    """What the queue `queue` of `plan` remembers of the events it accepted.

    Nothing in an `at_most_once` flow (which replays nothing); high-water stamps on
    a queue whose producer keeps `total` order; recent ids otherwise, and on dead
    letters, which are in the order their events failed.
    """
    if plan.delivery == "at_most_once":
        return "none"
    producer = plan.task(plan.queue(queue).producer)
    if producer.dead_letter == queue:
        return "recent"
    return "total" if producer.order.kind == "total" else "recent"


class ViaInput:
    """A merge's input: tags each batch with the input it came through (`Via`)."""

    def __init__(self, input: Input, tags: Sequence[str]) -> None:
        self.source = input
        self.tags = list(tags)
        self.inputs = input.inputs

    async def take(self, limit: int) -> tuple[int, Item]:
        index, item = await self.source.take(limit)
        return index, self._tag(index, item)

    async def poll(self, limit: int) -> tuple[int, Item] | None:
        taken = await self.source.poll(limit)
        if taken is None:
            return None
        return taken[0], self._tag(*taken)

    async def ack(
        self, delivered: Sequence[int], changes: Mapping[Any, Any] | None = None
    ) -> None:
        await self.source.ack(delivered, changes)

    def end_of(self, index: int) -> bool:
        return self.source.end_of(index)

    def _tag(self, index: int, item: Item) -> Item:
        if not isinstance(item, Batch):
            return item
        return Batch(item.values, Via(item.stamps, self.tags[index]), item.keys)


def guarded(plan: Plan, task: Task, input: Input) -> Input:
    """The input of a stage: a merge's tags its batches with their input, so that
    the two copies of an event that reached it by two paths have distinct ids
    (replays themselves are dropped by the queues, see `remembering`)."""
    if task.kind != "merge" or plan.delivery == "at_most_once":
        return input
    tags = [f"{task.name}[{index}]" for index in range(len(task.inputs))]
    return ViaInput(input, tags)

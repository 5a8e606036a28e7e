"""Bounded queues between workers: the interface, and the in-memory implementation.

Everything a worker does with a queue is one of the requests of `EventQueue`, each
of which a remote queue server could answer: put (answering how many events were
accepted and the room left, the credit), get, poll, acknowledge by offset, wait for
room, wait for data. Workers use only these, so the same worker code can later run
over another transport.

A queue has one producer and one or more consumers (fan-out: every consumer sees
every event). Each consumer has its own read cursor and committed offset; an entry
is discarded once every consumer has acknowledged past it, and the room is the
capacity minus the events not yet acknowledged by the slowest consumer.

A queue outlives the workers around it, so it is where recovery is anchored:

- a put is idempotent: events the queue already accepted (by id, see `dedup`) and a
  second end-of-source count as accepted and are not stored again, so a restarted
  producer, or a put retried after its answer was lost, stores nothing twice;
- a read may name its offset (`read_nowait`), so a read asked again reads the same
  events, and `attach` puts a restarted consumer back at its committed offset;
- an acknowledgement may carry changes to the consumer's small saved state (a sink's
  checkpoint, an aggregate's entries), stored atomically with the commit, which
  `attach` answers;
- `resume_point` tells a restarted source where its events stop.
"""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from bisect import bisect_left, bisect_right
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from reflow_lang.errors import WouldBlock
from reflow_lang.runtime.dedup import Memory, Remember, crosses_split, kept
from reflow_lang.runtime.events import Batch, Instruction, Item, Stamp, size, slice_item


class _Deleted:
    """The type of `DELETED`."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "DELETED"


DELETED: Final = _Deleted()
"""In the changes of an acknowledgement: the key is removed from the saved state."""


@dataclass(frozen=True, slots=True)
class Credit:
    """The answer to a put."""

    accepted: int
    """How many events of the offered item the queue took (a prefix; events it had
    already accepted count as taken, without being stored again)."""
    room: int
    """The room left after them, in events: when to offer more."""


@dataclass(frozen=True, slots=True)
class Saved:
    """What `attach` answers: where the consumer resumes, and its saved state."""

    committed: int
    """The consumer's committed offset: its cursor is back there."""
    state: dict[Any, Any]
    """What the consumer's acknowledgements saved (a copy)."""
    ended: bool = False
    """The consumer acknowledged end-of-source: it has nothing left to read (a worker
    killed after that acknowledgement, before it exited, is done)."""


@dataclass(frozen=True, slots=True)
class Resume:
    """What `resume_point` answers about one origin's events in a queue."""

    high: Stamp | None
    """The highest stamp of that origin's events the queue ever accepted."""
    ended: bool
    """Whether end-of-source was put."""


@dataclass(frozen=True, slots=True)
class QueueStatistics:
    """A snapshot of a queue."""

    name: str
    """The queue's name in the plan."""
    capacity: int
    """The bound, in events."""
    depth: int
    """Events held: put but not yet acknowledged by every consumer."""
    entries: int
    """Queue items held (batches and instructions)."""
    committed: tuple[tuple[str, int], ...]
    """Each consumer's committed offset."""
    tail: int
    """The offset the next event put will get."""
    ended: bool = False
    """Whether end-of-source was put (it takes the last offset before `tail`)."""
    traces: int = 0
    """Traces put so far: batches inside a split whose events were all dropped,
    which take an offset each and hold no event (see `rejoin`)."""
    traced: tuple[tuple[str, int], ...] = ()
    """Each consumer's traces below its committed offset."""

    @property
    def events(self) -> int:
        """Events put so far, end-of-source and traces not counted."""
        return self.tail - self.traces - (1 if self.ended else 0)

    def acknowledged(self, consumer: str) -> int:
        """Events the consumer acknowledged, end-of-source and traces not counted."""
        offset = dict(self.committed).get(consumer, 0)
        return min(offset - dict(self.traced).get(consumer, 0), self.events)

    def to_row(self) -> list[Any]:
        """The snapshot as plain data (for JSON or msgpack); see `from_row`."""
        committed = [list(pair) for pair in self.committed]
        return [
            self.name,
            self.capacity,
            self.depth,
            self.entries,
            committed,
            self.tail,
            self.ended,
            self.traces,
            [list(pair) for pair in self.traced],
        ]

    @classmethod
    def from_row(cls, row: Sequence[Any]) -> QueueStatistics:
        """The snapshot `to_row` made plain data of."""
        name, capacity, depth, entries, committed, tail, ended, traces, traced = row
        pairs = tuple((consumer, offset) for consumer, offset in committed)
        below = tuple((consumer, count) for consumer, count in traced)
        return cls(name, capacity, depth, entries, pairs, tail, ended, traces, below)


class EventQueue(ABC):
    """The requests a worker makes of a queue; see the module docstring."""

    name: str
    capacity: int

    async def flush(self) -> None:  # noqa: B027 - a no-op where nothing is pending
        """Waits until every request made has been applied. A queue in this process
        applies each at once; a remote one does not wait for acknowledgements."""

    @abstractmethod
    async def put(self, item: Item) -> Credit:
        """Offers an item; takes the prefix that fits, never waits for room.

        Replays (events the queue accepted before, by id; a second end-of-source)
        are taken without being stored and cost no room.
        """

    @abstractmethod
    async def wait_room(self, at_least: int = 1) -> int:
        """Waits until the queue has room for `at_least` events.

        Answers the room (the credit). Asking for more than one event saves a
        producer from waking for every small acknowledgement. It answers sooner,
        with any room, once every consumer has read everything: a consumer that
        waits for more input before it acknowledges (a rejoin completing a parent)
        must never wait on a producer that waits for it.
        """

    @abstractmethod
    async def get(self, consumer: str, limit: int) -> Item:
        """The consumer's next item (at most `limit` events), waiting for one."""

    @abstractmethod
    async def poll(self, consumer: str, limit: int) -> Item | None:
        """The consumer's next item if one is there now, else `None`."""

    @abstractmethod
    async def wait_data(self, consumer: str) -> None:
        """Waits until the consumer has something to get."""

    @abstractmethod
    async def ack(
        self, consumer: str, offset: int, changes: Mapping[Any, Any] | None = None
    ) -> None:
        """Commits the consumer's offset: everything before `offset` is done with.

        Idempotent, and never moves backwards: an older offset is ignored, and so
        are its changes. `changes` are merged into the consumer's saved state with
        the commit, atomically (a key mapped to `DELETED` is removed).
        """

    @abstractmethod
    async def attach(self, consumer: str) -> Saved:
        """Puts the consumer's cursor back at its committed offset (a restarted
        consumer reads again what it had not acknowledged); answers what was saved."""

    @abstractmethod
    async def resume_point(self, origin: str) -> Resume:
        """Where the events of `origin` (a source) stop in this queue."""

    @abstractmethod
    async def committed(self, consumer: str) -> int:
        """The consumer's committed offset."""

    @abstractmethod
    def statistics(self) -> QueueStatistics:
        """A snapshot of the queue (for monitoring, never for flow control)."""


class _Consumer:
    """One consumer's position: the entry and offset it reads, and its commit."""

    __slots__ = ("committed", "entry", "offset", "state", "waiter")

    def __init__(self) -> None:
        self.committed = 0
        self.entry = 0  # absolute index of the entry holding `offset`
        self.offset = 0  # the next offset to read
        self.state: dict[Any, Any] = {}
        self.waiter: asyncio.Future[None] | None = None


class MemoryQueue(EventQueue):
    """An in-process bounded queue with fan-out.

    Entries are kept in a deque of `(first offset, item)`. Waiters are futures woken by
    the put or acknowledgement that changes their condition: no one polls a size.
    `remember` says how replays are recognised (see `dedup.Memory`): `none` drops
    none (a second end-of-source excepted).
    """

    def __init__(
        self,
        name: str,
        capacity: int,
        consumers: Iterable[str],
        *,
        remember: Remember = "none",
    ) -> None:
        if capacity < 1:
            msg = f"queue `{name}` has capacity {capacity}; a queue needs at least 1"
            raise ValueError(msg)
        self.name = name
        self.capacity = capacity
        self._consumers = {name: _Consumer() for name in consumers}
        if not self._consumers:
            msg = f"queue `{name}` has no consumer"
            raise ValueError(msg)
        self._entries: deque[tuple[int, Item]] = deque()
        self._dropped = 0  # entries discarded so far: absolute index of the first
        self._tail = 0
        self._low = 0  # the lowest committed offset over every consumer
        self._room_waiters: list[asyncio.Future[None]] = []
        self._memory = Memory(remember, capacity)
        self._ended: int | None = None  # the offset of end-of-source, once put
        # The offsets of the traces stored at or above `_low`, and how many are
        # below it: statistics count events, and a trace is none.
        self._traces: list[int] = []
        self._traces_below = 0

    # The synchronous core: what a queue server would do for each request.

    def room(self) -> int:
        """The room left, in events."""
        return self.capacity - (self._tail - self._low)

    def put_nowait(self, item: Item) -> Credit:
        """Takes the prefix of `item` that fits, replays dropped; see `put`."""
        room = self.capacity - (self._tail - self._low)
        ids: list[Any] | None = None
        if isinstance(item, Batch) and item.values:
            keep, ids = self._memory.keep(item)
            if keep is not None:
                return self._put_some(item, keep, room)
        elif isinstance(item, Instruction):
            if self._ended is not None:
                return Credit(1, max(room, 0))  # the producer's replay
            if room > 0:
                self._ended = self._tail
        total = size(item)
        accepted = min(room, total)
        if accepted <= 0:
            return Credit(0, max(room, 0))

        if accepted < total:
            item = slice_item(item, 0, accepted)
            ids = None if ids is None else ids[:accepted]
        self._store(item, accepted, ids)
        return Credit(accepted, room - accepted)

    def _put_some(self, batch: Batch, keep: list[bool], room: int) -> Credit:
        # Replays cost no room: the offered prefix taken is the longest whose new
        # events fit, replays after the last of them included.
        fits = len(keep)
        new = 0
        for position, is_new in enumerate(keep):
            if is_new:
                if new == room:
                    fits = position
                    break
                new += 1
        if new:
            stored = kept(batch.slice(0, fits), keep[:fits])
            self._store(stored, new, None)
        elif crosses_split(batch.stamps):
            # Only replays, but inside a split their cover may count parts no
            # stored batch covers (a replay is cut anew): kept as a trace.
            if room <= 0:
                return Credit(0, 0)
            self._store(kept(batch, keep), 1, None)
            return Credit(fits, room - 1)
        return Credit(fits, max(room - new, 0))

    def _store(self, item: Item, count: int, ids: list[Any] | None) -> None:
        if isinstance(item, Batch):
            if item.values:
                self._memory.record(item, ids)
            else:
                self._traces.append(self._tail)
        self._entries.append((self._tail, item))
        self._tail += count
        self._wake_readers()

    def get_nowait(self, consumer: str, limit: int) -> Item:
        """The consumer's next item; raises `WouldBlock` when there is none."""
        state = self._consumers[consumer]
        if state.offset >= self._tail:
            msg = f"queue `{self.name}` has nothing for `{consumer}` now"
            raise WouldBlock(msg)

        start, item = self._entries[state.entry - self._dropped]
        total = size(item)
        within = state.offset - start
        count = min(limit, total - within)
        if isinstance(item, Instruction):
            count = 1
        state.offset += count
        if self._room_waiters and state.offset >= self._tail:
            self._wake_writers()  # they may stop waiting for more room: see wait_room
        if within + count == total:
            state.entry += 1
            if within == 0:
                return item
        return slice_item(item, within, within + count)

    def read_nowait(self, consumer: str, offset: int, limit: int) -> Item:
        """The consumer's item at `offset` (at most `limit` events), its cursor moved
        there first; raises `WouldBlock` when there is none yet, and `ValueError` for
        an offset before its commit or past the tail."""
        state = self._consumers[consumer]
        if offset != state.offset:
            self._seek(state, consumer, offset)
        return self.get_nowait(consumer, limit)

    def _seek(self, state: _Consumer, consumer: str, offset: int) -> None:
        if not state.committed <= offset <= self._tail:
            msg = (
                f"`{consumer}` asked queue `{self.name}` for offset {offset}; it can "
                f"read from its committed offset {state.committed} to {self._tail}"
            )
            raise ValueError(msg)

        # The entry holding `offset` (held: everything past the lowest commit is).
        entries = self._entries
        index = bisect_right(entries, offset, key=_first) - 1
        if index < 0 or offset >= entries[index][0] + size(entries[index][1]):
            index += 1  # at the tail: the entry the next put makes
        state.entry = self._dropped + index
        state.offset = offset

    def attach_nowait(self, consumer: str) -> Saved:
        """Moves the consumer's cursor back to its commit; see `attach`."""
        state = self._consumers[consumer]
        self._seek(state, consumer, state.committed)
        ended = self._ended is not None and state.committed > self._ended
        return Saved(state.committed, dict(state.state), ended)

    def resume_point_nowait(self, origin: str) -> Resume:
        """Where the events of `origin` stop; see `resume_point`."""
        return Resume(self._memory.high.get(origin), self._ended is not None)

    def ack_nowait(
        self, consumer: str, offset: int, changes: Mapping[Any, Any] | None = None
    ) -> None:
        """Commits the consumer's offset, with changes to its state; see `ack`."""
        state = self._consumers[consumer]
        if offset <= state.committed:
            if changes and offset == state.committed:
                _merge(state.state, changes)
            return
        if offset > state.offset:
            msg = (
                f"`{consumer}` acknowledged offset {offset} of queue `{self.name}`; "
                f"it has read only up to {state.offset}"
            )
            raise ValueError(msg)

        if changes:
            _merge(state.state, changes)
        low_was_mine = state.committed == self._low
        state.committed = offset
        if low_was_mine:
            self._raise_low()

    def _raise_low(self) -> None:
        low = min(state.committed for state in self._consumers.values())
        if low == self._low:
            return

        self._low = low
        below = bisect_left(self._traces, low)
        if below:
            self._traces_below += below
            del self._traces[:below]
        entries = self._entries
        while entries and entries[0][0] + size(entries[0][1]) <= low:
            entries.popleft()
            self._dropped += 1
        self._wake_writers()

    def _drained(self) -> bool:
        return all(state.offset >= self._tail for state in self._consumers.values())

    def _wake_readers(self) -> None:
        for state in self._consumers.values():
            waiter = state.waiter
            if waiter is not None:
                state.waiter = None
                if not waiter.done():
                    waiter.set_result(None)

    def _wake_writers(self) -> None:
        waiters, self._room_waiters = self._room_waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    # The requests, as a worker makes them.

    async def put(self, item: Item) -> Credit:
        return self.put_nowait(item)

    async def wait_room(self, at_least: int = 1) -> int:
        at_least = max(1, min(at_least, self.capacity))
        while (room := self.room()) < at_least and not (room > 0 and self._drained()):
            waiter = asyncio.get_running_loop().create_future()
            self._room_waiters.append(waiter)
            await waiter
        return room

    async def get(self, consumer: str, limit: int) -> Item:
        while True:
            try:
                return self.get_nowait(consumer, limit)
            except WouldBlock:
                await self.wait_data(consumer)

    async def poll(self, consumer: str, limit: int) -> Item | None:
        if self._consumers[consumer].offset >= self._tail:
            return None
        return self.get_nowait(consumer, limit)

    async def wait_data(self, consumer: str) -> None:
        state = self._consumers[consumer]
        while state.offset >= self._tail:
            if state.waiter is None or state.waiter.done():
                state.waiter = asyncio.get_running_loop().create_future()
            await state.waiter

    async def ack(
        self, consumer: str, offset: int, changes: Mapping[Any, Any] | None = None
    ) -> None:
        self.ack_nowait(consumer, offset, changes)

    async def attach(self, consumer: str) -> Saved:
        return self.attach_nowait(consumer)

    async def resume_point(self, origin: str) -> Resume:
        return self.resume_point_nowait(origin)

    async def committed(self, consumer: str) -> int:
        return self._consumers[consumer].committed

    def depth(self) -> int:
        """Events put and not yet acknowledged by every consumer."""
        return self._tail - self._low

    def statistics(self) -> QueueStatistics:
        return QueueStatistics(
            name=self.name,
            capacity=self.capacity,
            depth=self._tail - self._low,
            entries=len(self._entries),
            committed=tuple((n, s.committed) for n, s in self._consumers.items()),
            tail=self._tail,
            ended=self._ended is not None,
            traces=self._traces_below + len(self._traces),
            traced=tuple(
                (n, self._traces_below + bisect_left(self._traces, s.committed))
                for n, s in self._consumers.items()
            ),
        )


def _first(entry: tuple[int, Item]) -> int:
    return entry[0]


def _merge(state: dict[Any, Any], changes: Mapping[Any, Any]) -> None:
    for key, value in changes.items():
        if value is DELETED:
            state.pop(key, None)
        else:
            state[key] = value

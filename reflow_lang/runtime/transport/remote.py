"""`RemoteQueue`: an `EventQueue` served by a queue server over a `Connection`.

Workers use it like a `MemoryQueue` and do not know whether their queues are local.
Reads name their offset, which the client keeps per consumer, so that a read whose
reply was lost is simply asked again; waiting reads are long-polls bounded by the
connection's `max_wait`. How requests travel (one socket per process, timeouts,
resends) is the `Connection`'s business, in `client`.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from reflow_lang.errors import TransportError
from reflow_lang.runtime.events import Instruction, Item, size, slice_item
from reflow_lang.runtime.queue import (
    Credit,
    EventQueue,
    QueueStatistics,
    Resume,
    Saved,
)
from reflow_lang.runtime.transport import wire

if TYPE_CHECKING:
    from reflow_lang.runtime.transport.client import Connection

# Events a read asks for: all the consumer's items there are, to this. Twice the
# default queue bound, so that a consumer behind catches up in one round trip (its
# items are there anyway: this bounds no memory the queue does not).
READ_LIMIT = 4096


class _Chain:
    """A consumer's acknowledgements that carry state: the request in flight, and
    what came since (see `RemoteQueue.ack`)."""

    __slots__ = ("encoded", "offset", "sending", "sent")

    def __init__(self, offset: int) -> None:
        self.encoded: list[bytes] = []  # changes not sent yet, in order
        self.offset = offset  # the highest offset acknowledged
        self.sent = offset  # the offset of the request in flight
        self.sending: asyncio.Future[list[Any]] | None = None


def encode_changes(changes: Mapping[Any, Any]) -> bytes:
    """The changes of an acknowledgement, for `decode_changes` on the server.

    Keys that are pairs named by a string (an aggregate's `("acc", key)`) travel
    grouped by that name, as one map per name: a tuple key on its own is an ext
    type packed apart, which costs about thirty times as much.
    """
    groups: dict[str, dict[Any, Any]] = {}
    rest: dict[Any, Any] = {}
    for key, value in changes.items():
        if type(key) is tuple and len(key) == 2 and type(key[0]) is str:
            group = groups.get(key[0])
            if group is None:
                group = groups[key[0]] = {}
            group[key[1]] = value
        else:
            rest[key] = value
    return wire.pack([[[name, group] for name, group in groups.items()], rest])


def decode_changes(encoded: Sequence[bytes]) -> dict[Any, Any]:
    """The changes `encode_changes` encoded, merged in order (a later value for a
    key replaces an earlier one, as successive acknowledgements would)."""
    merged: dict[Any, Any] = {}
    for data in encoded:
        groups, rest = wire.unpack(data)
        for name, group in groups:
            for key, value in group.items():
                merged[(name, key)] = value
        merged.update(rest)
    return merged


class _Signal:
    """A reply that is no answer yet: "not yet" (a long-poll), or "out of order"."""

    __slots__ = ()


NOT_YET = _Signal()
OUT_OF_ORDER = _Signal()


class RemoteQueue(EventQueue):
    """A queue served by a queue server; see the module docstring.

    Puts are pipelined while the room known here allows: a queue has one producer,
    so the room the last reply reported, less what was put since, is room the
    queue certainly has, and a put that fits is answered at once (all accepted)
    while its request travels. Puts are numbered, so that the server applies them in
    order even when one is lost and sent again. A put that may not fit waits for its
    reply; an instruction (end-of-source) also waits for every put before it, so
    that no failure goes unseen before the end. A failure of a pipelined put is
    raised by the next put or wait, and by `Connection.close`.

    A read answers every item there is, up to `READ_LIMIT` events; they are handed
    out one by one (sliced to the consumer's limit), and when the last is handed
    out the next read leaves (a prefetch, travelling while the item is processed).
    No acknowledgement is waited for; a failure is raised by the next request of
    the queue. One that carries no state, when nothing read is left and no read is
    under way, starts the read of what comes next and rides on it; otherwise it
    leaves at the end of the current turn of the event loop.
    One that carries state is encoded at once (the state is the one its offset
    speaks of, whatever the step changes next) and joins its consumer's chain: one
    request in flight at a time, numbered, the next leaving when the previous is
    answered with everything that came meanwhile, in order (see `ack`).

    `statistics()` answers the snapshot fetched last (by the handshake, or by
    `fetch_statistics()` here or on the connection): it is synchronous and must not
    wait for the server.
    """

    def __init__(
        self, connection: Connection, stats: QueueStatistics, stage: str
    ) -> None:
        self.connection = connection
        self.name = stats.name
        self.capacity = stats.capacity
        self.stage = stage
        self.last_statistics = stats
        self._room = 0  # certainly free: learnt from replies, less what was put since
        self._seq = 0
        self._in_flight: dict[int, int] = {}  # put number -> events offered
        self._pipelined: dict[int, asyncio.Future[list[Any]]] = {}
        self._reordered: set[int] = set()  # puts sent again after an earlier one
        self._failure: BaseException | None = None
        self._offsets: dict[str, int] = {}
        # Per consumer: an item read ahead and where it starts, or the read under way.
        self._ahead: dict[str, deque[tuple[int, Item]]] = {}
        self._reads: dict[str, asyncio.Future[list[Any]]] = {}
        self._acks: set[asyncio.Future[list[Any]]] = set()
        # Per consumer: an acknowledgement to send with its next read.
        self._acks_due: dict[str, int] = {}
        # Per consumer: acknowledgements carrying state, sent one request at a time.
        self._chains: dict[str, _Chain] = {}
        self._chain_numbers: dict[str, int] = {}
        self._finished: set[str] = set()  # consumers that were handed end-of-source

    # Puts.

    async def put(self, item: Item) -> Credit:
        self._raise_failure()
        data = wire.encode_item(item, self.stage)
        total = size(item)
        self._seq += 1
        seq = self._seq
        self._in_flight[seq] = total
        if isinstance(item, Instruction):
            await self.flush()  # the end goes last, and only if all before it went
        if total > self._room or isinstance(item, Instruction):
            return await self._put(seq, data)

        self._room -= total
        self._pipeline(seq, data)
        return Credit(total, self._room)

    async def flush(self) -> None:
        """Waits for the replies to every pipelined put and acknowledgement; raises
        what one failed with."""
        for consumer in list(self._acks_due):
            self._send_ack(consumer)
        while self._pipelined or self._acks or self._chains:
            chains = [c.sending for c in self._chains.values() if c.sending is not None]
            await asyncio.wait([*self._pipelined.values(), *self._acks, *chains])
        self._raise_failure()

    async def _put(self, seq: int, data: bytes) -> Credit:
        try:
            while True:
                result, _ = await self.connection.request("put", self.name, [seq], data)
                if result is not OUT_OF_ORDER:
                    break
                earlier = self._pipelined.get(seq - 1)
                if earlier is not None:
                    await asyncio.wait([earlier])
        finally:
            del self._in_flight[seq]
        accepted, room = result
        self._learn_room(room, seq)
        return Credit(accepted, room)

    def _pipeline(self, seq: int, data: bytes) -> None:
        # Sent without a task: the reply is handled by a callback.
        future = self.connection.submit("put", self.name, [seq], data)
        self._pipelined[seq] = future
        future.add_done_callback(lambda done: self._pipelined_done(seq, data, done))

    def _pipelined_done(
        self, seq: int, data: bytes, future: asyncio.Future[list[Any]]
    ) -> None:
        del self._pipelined[seq]
        try:
            result, _ = self.connection.answer(future.result(), "put", self.name)
        except (asyncio.CancelledError, Exception) as error:
            del self._in_flight[seq]
            self._failure = self._failure or error
            return
        if result is OUT_OF_ORDER:
            self._after_earlier(seq, data)
            return
        del self._in_flight[seq]
        self._reordered.discard(seq)
        self._learn_room(result[1], seq)

    def _after_earlier(self, seq: int, data: bytes) -> None:
        # The put overtook a lost one: sent again once that one is answered.
        earlier = self._pipelined.get(seq - 1)
        if earlier is None or earlier.done():
            if seq in self._reordered:  # the earlier one failed: it will never come
                del self._in_flight[seq]
                msg = (
                    f"put {seq} to queue `{self.name}` at `{self.connection.address}` "
                    f"cannot be applied: a put before it was lost"
                )
                self._failure = self._failure or TransportError(msg)
                return
            self._reordered.add(seq)
            self._pipeline(seq, data)
            return
        again: asyncio.Future[list[Any]] = asyncio.get_running_loop().create_future()
        self._pipelined[seq] = again
        earlier.add_done_callback(lambda _: self._resume_put(seq, data, again))

    def _resume_put(
        self, seq: int, data: bytes, placeholder: asyncio.Future[Any]
    ) -> None:
        if self._pipelined.get(seq) is placeholder:
            del self._pipelined[seq]
        placeholder.cancel()
        self._pipeline(seq, data)

    def _learn_room(self, room: int, seq: int) -> None:
        # The room after put `seq`, less every put sent after it: a lower bound.
        later = sum(total for number, total in self._in_flight.items() if number > seq)
        self._room = room - later

    def _raise_failure(self) -> None:
        failure, self._failure = self._failure, None
        if failure is not None:
            raise failure

    async def wait_room(self, at_least: int = 1) -> int:
        self._raise_failure()
        if self._room >= min(max(at_least, 1), self.capacity):
            return self._room
        while True:
            args = [at_least, self.connection.max_wait]
            room, _ = await self.connection.request("wait_room", self.name, args)
            if room is not NOT_YET:
                # Every put sent before this wait is counted in its answer.
                self._learn_room(int(room), self._seq)
                return self._room

    # Reads: at the consumer's offset, kept here, so that a lost reply is asked again.

    async def get(self, consumer: str, limit: int) -> Item:
        while True:
            item = await self._take(consumer, limit, wait=True)
            if item is not None:
                return item

    async def poll(self, consumer: str, limit: int) -> Item | None:
        return await self._take(consumer, limit, wait=False)

    async def wait_data(self, consumer: str) -> None:
        while consumer not in self._ahead:
            await self._read(consumer, self.connection.max_wait)

    async def _take(self, consumer: str, limit: int, *, wait: bool) -> Item | None:
        if consumer not in self._ahead:
            reading = self._reads.get(consumer)
            if reading is not None and not reading.done() and not wait:
                return None  # a prefetch is under way: not there now
            await self._read(consumer, self.connection.max_wait if wait else 0.0)
        ahead = self._ahead.get(consumer)
        if ahead is None:
            return None

        start, item = ahead.popleft()
        total = size(item)
        if total > limit and not isinstance(item, Instruction):
            ahead.appendleft((start + limit, slice_item(item, limit, total)))
            item = slice_item(item, 0, limit)
        self._offsets[consumer] = start + size(item)
        if isinstance(item, Instruction):
            self._finished.add(consumer)
        if not ahead:
            # The next read leaves now, to travel while this item is processed.
            del self._ahead[consumer]
            self._prefetch(consumer)
        return item

    async def _read(self, consumer: str, max_wait: float) -> None:
        # Waits for the read under way, or one started now; a cancelled caller leaves
        # it running for the next.
        if consumer not in self._offsets:
            await self.attach(consumer)  # a new reader starts at the commit
        reading = self._reads.get(consumer)
        if reading is None:
            reading = self._start_read(consumer, max_wait)
        await asyncio.wait([reading])  # its failure is raised below, once
        self._raise_failure()

    def _start_read(self, consumer: str, max_wait: float) -> asyncio.Future[list[Any]]:
        # Sent without a task: the reply is taken by a callback, and whoever waits
        # for it waits on the request's own future. An acknowledgement due for the
        # consumer goes with the read.
        ack = self._acks_due.pop(consumer, None)
        offset = self._offsets[consumer]
        args = [consumer, offset, READ_LIMIT, max_wait, ack]
        try:
            future = self.connection.submit("read", self.name, args)
        except TransportError as error:  # closed: raised to whoever waits next
            self._due_again(consumer, ack)
            future = asyncio.get_running_loop().create_future()
            future.set_exception(error)
        self._reads[consumer] = future
        future.add_done_callback(
            lambda done: self._fetched(consumer, offset, ack, done)
        )
        return future

    def _due_again(self, consumer: str, ack: int | None) -> None:
        # A read that perhaps never left: its acknowledgement is due again (sending
        # it twice is harmless).
        if ack is not None:
            self._acks_due[consumer] = max(ack, self._acks_due.get(consumer, ack))

    def _fetched(
        self,
        consumer: str,
        offset: int,
        ack: int | None,
        future: asyncio.Future[list[Any]],
    ) -> None:
        if self._reads.get(consumer) is future:
            del self._reads[consumer]
        if future.cancelled():
            self._due_again(consumer, ack)
            return
        try:
            start, items = self.connection.answer(future.result(), "read", self.name)
        except Exception as error:  # raised to whoever waits next, or by `close`
            self._failure = self._failure or error
            return
        if start is NOT_YET or not items:
            return
        if self._offsets.get(consumer) != offset or consumer in self._ahead:
            return  # the consumer moved (attached) while this was under way
        ahead: deque[tuple[int, Item]] = deque()
        for data in items:
            item = wire.decode_item(data)
            ahead.append((start, item))
            start += size(item)
        self._ahead[consumer] = ahead

    # Acknowledgements and the rest.

    async def ack(
        self, consumer: str, offset: int, changes: Mapping[Any, Any] | None = None
    ) -> None:
        self._raise_failure()
        if changes or consumer in self._chains:
            self._chain(consumer, offset, changes)
            self._prefetch(consumer)
            return

        # Nothing rides on it, so it is not waited for. When nothing read is left,
        # it starts the read of what comes next (the consumer asks for it next) and
        # rides on it; otherwise it leaves at the end of this turn of the event loop
        # (later ones of the same turn replacing it): never later, since the room it
        # frees may be what another process waits for.
        due = self._acks_due
        if consumer not in due:
            asyncio.get_running_loop().call_soon(self._send_ack, consumer)
        due[consumer] = max(offset, due.get(consumer, offset))
        self._prefetch(consumer)

    def _prefetch(self, consumer: str) -> None:
        # The read of what comes next, unless one is under way or nothing will come.
        reading = consumer in self._ahead or consumer in self._reads
        if reading or consumer not in self._offsets or consumer in self._finished:
            return
        self._start_read(consumer, self.connection.max_wait)

    def _chain(
        self, consumer: str, offset: int, changes: Mapping[Any, Any] | None
    ) -> None:
        # The order on the wire: a consumer's acknowledgements carrying state go one
        # request at a time, the next only once the previous is answered, so no
        # two of them are ever in flight together, and no resend on a new socket
        # can put an older one after a newer one. Each request is numbered, and the
        # server applies a number once, so a stale copy of an answered request is
        # ignored. While a chain runs, acknowledgements without state join it too:
        # sent apart, one could commit an offset before the state that goes with it.
        encoded = encode_changes(changes) if changes else None  # or a `WireError`
        chain = self._chains.get(consumer)
        if chain is None:
            chain = self._chains[consumer] = _Chain(offset)
        if encoded is not None:
            chain.encoded.append(encoded)
        chain.offset = max(chain.offset, offset)
        self._acks_due.pop(consumer, None)  # a lower offset: the chain covers it
        if chain.sending is None:
            self._send_chain(consumer, chain)

    def _send_chain(self, consumer: str, chain: _Chain) -> None:
        encoded, chain.encoded = chain.encoded, []
        number = self._chain_numbers.get(consumer, 0) + 1
        self._chain_numbers[consumer] = number
        chain.sent = chain.offset
        args = [consumer, chain.offset, None, encoded, number]
        try:
            future = self.connection.submit("ack", self.name, args)
        except TransportError as error:  # closed: raised to whoever asks next
            del self._chains[consumer]
            self._failure = self._failure or error
            return
        chain.sending = future
        future.add_done_callback(lambda done: self._chain_done(consumer, chain, done))

    def _chain_done(
        self, consumer: str, chain: _Chain, future: asyncio.Future[list[Any]]
    ) -> None:
        chain.sending = None
        try:
            self.connection.answer(future.result(), "ack", self.name)
        except (asyncio.CancelledError, Exception) as error:
            if self._chains.get(consumer) is chain:
                del self._chains[consumer]
            self._failure = self._failure or error
            return
        if chain.encoded or chain.offset > chain.sent:
            self._send_chain(consumer, chain)  # what came meanwhile, as one request
        elif self._chains.get(consumer) is chain:
            del self._chains[consumer]

    def _send_ack(self, consumer: str) -> None:
        offset = self._acks_due.pop(consumer, None)
        if offset is None:
            return  # a read took it along
        future = self.connection.submit("ack", self.name, [consumer, offset, None])
        self._acks.add(future)
        future.add_done_callback(self._ack_done)

    def _ack_done(self, future: asyncio.Future[list[Any]]) -> None:
        self._acks.discard(future)
        try:
            self.connection.answer(future.result(), "ack", self.name)
        except (asyncio.CancelledError, Exception) as error:
            self._failure = self._failure or error

    async def attach(self, consumer: str) -> Saved:
        self._cancel_read(consumer)
        self._send_ack(consumer)  # what was acknowledged is committed before
        while (chain := self._chains.get(consumer)) is not None:
            assert chain.sending is not None
            await asyncio.wait([chain.sending])
        self._finished.discard(consumer)
        (committed, state, ended), _ = await self.connection.request(
            "attach", self.name, [consumer]
        )
        self._offsets[consumer] = committed
        self._ahead.pop(consumer, None)
        return Saved(committed, state, ended)

    def _cancel_read(self, consumer: str) -> None:
        reading = self._reads.pop(consumer, None)
        if reading is not None:
            reading.cancel()

    async def stop_reading(self) -> None:
        """Drops every read under way (their replies are not needed any more), and
        sends the acknowledgements that were to go with them."""
        reads = list(self._reads.values())
        for reading in reads:
            reading.cancel()
        await asyncio.gather(*reads, return_exceptions=True)
        for consumer in list(self._acks_due):
            self._send_ack(consumer)

    async def resume_point(self, origin: str) -> Resume:
        (high, ended), _ = await self.connection.request(
            "resume_point", self.name, [origin]
        )
        return Resume(None if high is None else tuple(high), ended)

    async def committed(self, consumer: str) -> int:
        result, _ = await self.connection.request("committed", self.name, [consumer])
        return int(result)

    def statistics(self) -> QueueStatistics:
        return self.last_statistics

    async def fetch_statistics(self) -> QueueStatistics:
        """Fetches a snapshot of this queue now (and keeps it for `statistics()`)."""
        await self.connection.fetch_statistics()
        return self.last_statistics

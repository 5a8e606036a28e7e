"""The client side: a connection to a queue server, and the queues it serves.

A `Connection` is one DEALER socket carrying every request of a process, each with
a request id; the callback on the socket's descriptor matches replies to the
requests' futures. Every request has a timeout: a request not answered within it
is sent again, on a fresh socket (the server hands the client's identity over to
it), after a growing pause; after `unreachable_after` seconds without an answer
the request fails with a `TransportError` naming the queue, the address and the
time waited. The handshake (`hello`) learns the server's epoch, and every request
names it: a server that restarted since answers with its new epoch, and the
request fails, since what the queues held is gone.

`RemoteQueue` is an `EventQueue` over a connection, so workers do not know whether
their queues are local. Reads name their offset, which the client keeps per
consumer, so that a read whose reply was lost is simply asked again; waiting reads
are long-polls bounded by `max_wait` (half the timeout).

What costs is the message, not the request (each wakes ZeroMQ's I/O thread on both
sides): requests made in one turn of the event loop leave together, puts and
acknowledgements need not be waited for (see `RemoteQueue`), and a timed-out
request is found by one watchdog task rather than a timer per request. Sockets are
used without waiting while they can be, and waited on only when they would block:
an awaited `zmq.asyncio` call costs about 10 us per message.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import secrets
import time
from collections import deque
from collections.abc import Mapping
from typing import Any

import zmq

from reflow_lang.errors import TransportError, WireError
from reflow_lang.runtime.events import Instruction, Item, size, slice_item
from reflow_lang.runtime.queue import (
    Credit,
    EventQueue,
    QueueStatistics,
    Resume,
    Saved,
)
from reflow_lang.runtime.transport import wire
from reflow_lang.runtime.transport.endpoints import is_ipv6
from reflow_lang.runtime.transport.keys import ClientKeys
from reflow_lang.runtime.transport.sockets import Readiness

logger = logging.getLogger(__name__)

LINGER_MS = 1000  # closing waits for replies first; this bounds what is left
FIRST_PAUSE = 0.05  # seconds before the first resend; doubled up to `LAST_PAUSE`
LAST_PAUSE = 1.0
READ_LIMIT = 1024  # events a read asks for: all the consumer's items there are, to this
BURST = 64  # reply messages taken before the loop gets a turn

# Errors the server may answer that the caller expects by their own type.
_KINDS: dict[str, type[Exception]] = {
    "ValueError": ValueError,
    "KeyError": KeyError,
    "WireError": WireError,
    "TransportError": TransportError,
}

_Reply = tuple[Any, list[bytes]]


class _Request:
    """A request sent and not yet answered."""

    __slots__ = ("first", "frame", "future", "pause", "queue", "sent", "verb")

    def __init__(
        self,
        frame: bytes,
        future: asyncio.Future[list[Any]],
        now: float,
        verb: str,
        queue: str | None,
    ) -> None:
        self.frame = frame
        self.future = future
        self.first = self.sent = now
        self.pause = FIRST_PAUSE / 2
        self.verb = verb
        self.queue = queue

    def due(self, timeout: float) -> float:
        """When it is late: a timeout after it was sent, plus a growing pause."""
        return self.sent + timeout + self.pause - FIRST_PAUSE / 2


class Connection:
    """One process's connection to a queue server; see the module docstring.

    Args:
        address: the server's endpoint, e.g. `tcp://127.0.0.1:5555`.
        timeout: seconds a request waits for its reply before it is sent again.
        unreachable_after: seconds without a reply before a request fails.
        keys: CURVE keys, for a server that has them.
        fingerprint: the worker's plan (`Plan.fingerprint`); a server that says it
            serves another one is refused at the handshake.
    """

    def __init__(
        self,
        address: str,
        *,
        timeout: float = 10.0,
        unreachable_after: float = 30.0,
        keys: ClientKeys | None = None,
        fingerprint: str | None = None,
    ) -> None:
        self.address = address
        self.fingerprint = fingerprint
        self.timeout = timeout
        self.unreachable_after = max(unreachable_after, timeout)
        self.max_wait = timeout / 2
        self.keys = keys
        self.epoch: str | None = None
        self._statistics: dict[str, QueueStatistics] = {}
        self._queues: dict[str, RemoteQueue] = {}
        self._identity = secrets.token_bytes(12)
        self._ids = itertools.count(1)
        self._pending: dict[int, _Request] = {}
        self._context: zmq.Context[zmq.Socket[bytes]] | None = None
        self._socket: zmq.Socket[bytes] | None = None
        self._readiness: Readiness | None = None
        self._watchdog: asyncio.Task[None] | None = None
        self._backlog: deque[list[bytes]] = deque()
        self._outbox: list[bytes] = []
        self._flusher: asyncio.Task[None] | None = None
        self._closing = False
        self._gave_up = False  # a request failed unanswered

    async def connect(self) -> None:
        """Opens the socket and shakes hands: learns the epoch and the queues."""
        self._context = zmq.Context()
        self._open()
        self._watchdog = asyncio.create_task(self._watch())
        result, _ = await self.request("hello", None, [])
        served = result.get("plan")
        if self.fingerprint and served and served != self.fingerprint:
            msg = (
                f"the queue server at `{self.address}` serves another plan (its "
                f"fingerprint is {served}, this worker's {self.fingerprint}): compile "
                f"the same flow file with the same -p values on every host"
            )
            raise TransportError(msg)
        self.epoch = result["epoch"]
        self._statistics = {
            stats.name: stats
            for stats in map(QueueStatistics.from_row, result["queues"])
        }
        logger.debug("connected to %s (epoch %s)", self.address, self.epoch)

    def queue(self, name: str, *, stage: str | None = None) -> RemoteQueue:
        """The server's queue `name`; `stage`, its producer, is named in wire errors."""
        stats = self._statistics.get(name)
        if stats is None:
            known = ", ".join(f"`{n}`" for n in sorted(self._statistics)) or "none"
            msg = f"the queue server at `{self.address}` has no queue `{name}`; it has {known}"
            raise TransportError(msg)
        queue = self._queues.get(name)
        if queue is None or (stage is not None and queue.stage != stage):
            queue = RemoteQueue(self, stats, stage or name)
            self._queues[name] = queue
        return queue

    async def fetch_statistics(self) -> dict[str, QueueStatistics]:
        """A snapshot of every queue, fetched now (each `RemoteQueue` keeps its own)."""
        result, _ = await self.request("statistics", None, [])
        self._statistics = {
            stats.name: stats for stats in map(QueueStatistics.from_row, result)
        }
        for name, queue in self._queues.items():
            queue.last_statistics = self._statistics[name]
        return dict(self._statistics)

    async def stop_server(self) -> None:
        """Asks the server to stop (once it has answered this)."""
        await self.request("stop", None, [])

    async def close(self) -> None:
        """Waits for the replies still due, then closes the socket (bounded linger)."""
        for queue in self._queues.values():
            await queue.stop_reading()
        failures = [queue.flush() for queue in self._queues.values()]
        results = await asyncio.gather(*failures, return_exceptions=True)
        self._closing = True
        due = [request.future for request in self._pending.values()]
        if due:
            await asyncio.wait(due)  # the watchdog ends each within `unreachable_after`
        tasks = [t for t in (self._watchdog, self._flusher) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._watchdog = self._flusher = None
        if self._readiness is not None:
            self._readiness.close()
            self._readiness = None
        if self._socket is not None:
            # Every reply is in, so all that was sent arrived; what the socket still
            # holds was given up on, and lingering would only delay the close.
            self._socket.close(0 if self._gave_up else LINGER_MS)
            self._socket = None
        if self._context is not None:
            self._context.term()
            self._context = None
        for result in results:
            if isinstance(result, BaseException):
                raise result

    async def __aenter__(self) -> Connection:
        await self.connect()
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.close()

    # Requests: sent at once; a watchdog sends late ones again, on a fresh socket.

    async def request(
        self, verb: str, queue: str | None, args: list[Any], item: bytes | None = None
    ) -> _Reply:
        """Sends one request and answers `(result, items)` of its reply.

        Raises the server's error (as `TransportError`, or as its own kind when the
        caller expects it, e.g. `ValueError`), or `TransportError` when no reply came
        within `unreachable_after` or the server restarted.
        """
        reply = await self.submit(verb, queue, args, item)
        return self.answer(reply, verb, queue)

    def submit(
        self, verb: str, queue: str | None, args: list[Any], item: bytes | None = None
    ) -> asyncio.Future[list[Any]]:
        """Sends one request; the future is its reply (see `answer`).

        For callers that must not wait (pipelined puts, acknowledgements): no task
        and no timer per request, the watchdog looks after them all. Requests made
        in one turn of the event loop leave in one message.
        """
        if self._closing or self._context is None:
            msg = f"the connection to `{self.address}` is closed; `{verb}` not sent"
            raise TransportError(msg)
        rid = next(self._ids)
        frame: bytes = wire.pack([rid, verb, self.epoch, queue, args, item])
        loop = asyncio.get_running_loop()
        future: asyncio.Future[list[Any]] = loop.create_future()
        self._pending[rid] = _Request(frame, future, time.monotonic(), verb, queue)
        if not self._outbox:
            loop.call_soon(self._flush_outbox)
        self._outbox.append(frame)
        return future

    def _flush_outbox(self) -> None:
        frames, self._outbox = self._outbox, []
        if frames and self._socket is not None:
            self._send(frames)

    def _send(self, frames: list[bytes]) -> None:
        assert self._socket is not None and self._readiness is not None
        if self._backlog:
            self._backlog.append(frames)  # behind those that wait: order is kept
            return
        try:
            self._socket.send(wire.pack(frames), zmq.NOBLOCK)
        except zmq.Again:
            self._backlog.append(frames)
            self._flusher = asyncio.create_task(self._flush_backlog())
        self._readiness.notify()  # the send may have consumed the reader's edge

    async def _flush_backlog(self) -> None:
        assert self._socket is not None and self._readiness is not None
        socket, readiness = self._socket, self._readiness
        while self._backlog:
            try:
                socket.send(wire.pack(self._backlog[0]), zmq.NOBLOCK)
            except zmq.Again:
                await readiness.wait(zmq.POLLOUT)
                continue
            self._backlog.popleft()
        readiness.notify()

    async def _watch(self) -> None:
        # Every quarter of the timeout: fail what waited too long, resend what is late.
        tick = max(self.timeout / 4, 0.005)
        while True:
            await asyncio.sleep(tick)
            now = time.monotonic()
            late = []
            for rid, request in list(self._pending.items()):
                if request.future.done():
                    del self._pending[rid]
                elif now - request.first >= self.unreachable_after:
                    del self._pending[rid]
                    self._gave_up = True
                    waited = now - request.first
                    request.future.set_exception(
                        self._unreachable(request.verb, request.queue, waited)
                    )
                elif now >= request.due(self.timeout):
                    late.append(request)
            if late:
                self._resend(late, now)

    def _resend(self, late: list[_Request], now: float) -> None:
        logger.warning(
            "no reply from %s within %.1f s to `%s`%s; sending again on a new socket",
            self.address,
            self.timeout,
            late[0].verb,
            f" and {len(late) - 1} more requests" if len(late) > 1 else "",
        )
        self._renew()
        for request in late:
            request.sent = now
            request.pause = min(request.pause * 2, LAST_PAUSE)
        self._send([request.frame for request in late])

    def answer(self, reply: list[Any], verb: str, queue: str | None) -> _Reply:
        """The result and items of a reply; raises what it reports."""
        _, status, result, items = reply
        if status == wire.OK:
            return result, items
        if status in (wire.NOT_YET, wire.OUT_OF_ORDER):
            return (_NOT_YET if status == wire.NOT_YET else _OUT_OF_ORDER), []
        if status == wire.OTHER_EPOCH:
            msg = (
                f"the queue server at `{self.address}` restarted (epoch {self.epoch}, "
                f"now {result}); what its queues held is lost"
            )
            raise TransportError(msg)

        kind, message = result
        error = _KINDS.get(kind)
        if error is None:
            subject = f"`{verb}`" + (f" on queue `{queue}`" if queue else "")
            msg = f"the queue server at `{self.address}` failed {subject}: {kind}: {message}"
            raise TransportError(msg)
        raise error(message)

    def _unreachable(
        self, verb: str, queue: str | None, waited: float
    ) -> TransportError:
        subject = f"`{verb}` on queue `{queue}`" if queue else f"`{verb}`"
        msg = (
            f"no answer from the queue server at `{self.address}` to {subject} for "
            f"{waited:.1f} s; it is down or unreachable, or it refused this client's "
            f"key"
        )
        return TransportError(msg)

    # The socket, and the task reading replies from it.

    def _open(self) -> None:
        assert self._context is not None
        socket = self._context.socket(zmq.DEALER)
        socket.setsockopt(zmq.ROUTING_ID, self._identity)
        socket.setsockopt(zmq.LINGER, LINGER_MS)
        socket.setsockopt(zmq.IPV6, is_ipv6(self.address))
        if self.keys is not None:
            socket.curve_secretkey = self.keys.secret
            socket.curve_publickey = self.keys.public
            socket.curve_serverkey = self.keys.server
        socket.connect(self.address)
        self._socket = socket
        self._readiness = Readiness(socket, on_input=self._take_replies)

    def _renew(self) -> None:
        if self._flusher is not None:
            self._flusher.cancel()
            self._flusher = None
        self._backlog.clear()  # resent by the watchdog, with everything late
        if self._readiness is not None:
            self._readiness.close()
        if self._socket is not None:
            self._socket.close(0)  # what it still held is sent again on the new one
        self._open()

    def _take_replies(self) -> None:
        # Called by the descriptor's callback (or after a send): receives the
        # replies there are, `BURST` messages at a time, and hands each to its
        # request's future; no task, and no future per wake-up.
        socket = self._socket
        if socket is None:
            return
        pending = self._pending
        for _ in range(BURST):
            try:
                frames = wire.unpack(socket.recv(zmq.NOBLOCK))
            except zmq.Again:
                return
            for frame in frames:
                reply = wire.unpack(frame)
                request = pending.pop(reply[0], None)
                if request is not None and not request.future.done():
                    request.future.set_result(reply)
        # More may be there: after the loop's other work.
        asyncio.get_running_loop().call_soon(self._take_replies)


class _Signal:
    """A reply that is no answer yet: "not yet" (a long-poll), or "out of order"."""

    __slots__ = ()


_NOT_YET = _Signal()
_OUT_OF_ORDER = _Signal()


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
    out one by one (sliced to the consumer's limit). An acknowledgement that carries
    no state is not waited for: when nothing read is left it starts the read of
    what comes next and rides on it; otherwise it leaves at the end of the current
    turn of the event loop. A failure is raised by the next request of the queue.
    One that carries state is waited for.

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
        while self._pipelined or self._acks:
            await asyncio.wait([*self._pipelined.values(), *self._acks])
        self._raise_failure()

    async def _put(self, seq: int, data: bytes) -> Credit:
        try:
            while True:
                result, _ = await self.connection.request("put", self.name, [seq], data)
                if result is not _OUT_OF_ORDER:
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
        if result is _OUT_OF_ORDER:
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
            if room is not _NOT_YET:
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
        if not ahead:
            del self._ahead[consumer]
        if isinstance(item, Instruction):
            self._finished.add(consumer)
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
        if start is _NOT_YET or not items:
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
        if changes:
            args = [consumer, offset, dict(changes)]
            await self.connection.request("ack", self.name, args)
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
        reading = consumer in self._ahead or consumer in self._reads
        if reading or consumer not in self._offsets or consumer in self._finished:
            return
        self._start_read(consumer, self.connection.max_wait)

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

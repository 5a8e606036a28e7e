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

The connection hands out `RemoteQueue`s (in `remote`), the `EventQueue`s workers
use; waiting reads are long-polls bounded by `max_wait` (half the timeout).

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
from typing import Any

import zmq

from reflow_lang.errors import TransportError, WireError
from reflow_lang.runtime.queue import (
    QueueStatistics,
)
from reflow_lang.runtime.transport import wire
from reflow_lang.runtime.transport.endpoints import check_endpoint, is_ipv6
from reflow_lang.runtime.transport.keys import ClientKeys
from reflow_lang.runtime.transport.remote import (
    NOT_YET,
    OUT_OF_ORDER,
    RemoteQueue,
)
from reflow_lang.runtime.transport.sockets import Readiness

logger = logging.getLogger(__name__)

LINGER_MS = 1000  # closing waits for replies first; this bounds what is left
FIRST_PAUSE = 0.05  # seconds before the first resend; doubled up to `LAST_PAUSE`
LAST_PAUSE = 1.0
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
        check_endpoint(address, "connect to")
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
            return (NOT_YET if status == wire.NOT_YET else OUT_OF_ORDER), []
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

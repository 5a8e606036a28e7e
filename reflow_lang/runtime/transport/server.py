"""The queue server: a job's `MemoryQueue`s, served over one ZeroMQ ROUTER socket.

Every queue promise is kept by `MemoryQueue` itself; the server is a request loop
around it. Each request gets exactly one reply, failures included. A request that
can be answered now is answered inline, without a task: that is nearly every put,
acknowledgement and read of a busy job. A read that finds nothing, or a wait for room
that finds none, is parked on the queue's own waiters (`wait_data`, `wait_room`) and
answered when they wake, or with "not yet" after the client's `max_wait`, so that no
reply comes later than the client's request timeout.

A message may hold several requests (what a client asked in one turn of its event
loop); their replies leave together, in one message, since every message costs a
wake-up of ZeroMQ's I/O thread on both sides.

A put's reply is remembered per client (a few dozen of them), and a put sent again
under the same request id gets the same reply without being applied twice: the
client resends when a reply is late, and must not double a batch. Puts are numbered
per producer and queue, and one that arrives before an earlier one (lost on the way,
to be sent again) is answered "out of order" and not applied: a client pipelines
its puts, and the queue must see them in order. Reads name their offset and
acknowledgements never move backwards, so those are harmless to repeat; an
acknowledgement carrying state in the chained form is numbered per consumer, and a
number is applied once (a stale copy could otherwise put back older state at the
same offset).

The socket is read without waiting while messages are there, from the event loop's
callback on its descriptor: no task, future or `zmq.asyncio` await per message
(an awaited `zmq.asyncio` call costs about 10 us).
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Callable, Coroutine, Mapping
from typing import Any, cast

import zmq
from zmq.auth.asyncio import AsyncioAuthenticator

from reflow_lang.errors import TransportError, WireError, WouldBlock
from reflow_lang.runtime.events import Instruction, size
from reflow_lang.runtime.queue import MemoryQueue
from reflow_lang.runtime.transport import wire
from reflow_lang.runtime.transport.endpoints import (
    check_endpoint,
    is_ipv6,
    is_loopback,
)
from reflow_lang.runtime.transport.keys import ServerKeys
from reflow_lang.runtime.transport.remote import decode_changes

logger = logging.getLogger(__name__)

DEFAULT_BIND = "tcp://127.0.0.1:0"
LINGER_MS = 1000  # how long closing may wait for replies still in the socket
PUT_REPLIES_KEPT = 64  # per client: more than it ever has in flight
ZAP_DOMAIN = "reflow"  # the authentication domain of our sockets
BURST = 64  # messages served before the loop lets parked waits run

_Frames = list[bytes]
_Handler = Callable[[bytes, int, MemoryQueue, list[Any], "bytes | None"], None]


class QueueServer:
    """Serves `queues` at `bind` until stopped; see the module docstring.

    Args:
        queues: the queues, by name.
        bind: a ZeroMQ endpoint; a TCP port 0 picks a free port. Anything but a
            loopback address needs `keys`.
        keys: CURVE keys: the server's pair and the client keys it answers.
        fingerprint: the plan's (`Plan.fingerprint`), told to every client in the
            handshake, so that a worker of another plan can refuse to go on.
    """

    def __init__(
        self,
        queues: Mapping[str, MemoryQueue],
        bind: str = DEFAULT_BIND,
        *,
        keys: ServerKeys | None = None,
        fingerprint: str | None = None,
    ) -> None:
        check_endpoint(bind)
        if keys is None and not is_loopback(bind):
            msg = (
                f"refusing to serve queues at `{bind}` without CURVE keys; bind a "
                f"loopback address (tcp://127.0.0.1:PORT) or generate keys with "
                f"`reflowc keys DIR` and pass them"
            )
            raise TransportError(msg)
        self.queues = dict(queues)
        self.bind = bind
        self.keys = keys
        self.epoch = secrets.token_hex(8)
        self.fingerprint = fingerprint
        self.endpoint = ""
        self.interrupted: list[str] = []  # workers that stopped their sources early
        self._context: zmq.Context[zmq.Socket[bytes]] | None = None
        self._socket: zmq.Socket[bytes] | None = None
        self._authenticator: AsyncioAuthenticator | None = None
        self._loop: asyncio.AbstractEventLoop | None = None  # while it watches
        self._drain_soon: asyncio.Handle | None = None
        self._draining = False
        self._parked: set[asyncio.Future[Any]] = set()
        self._puts: dict[bytes, dict[int, bytes]] = {}
        self._replies: list[bytes] | None = None  # while serving a message
        self._next_put: dict[tuple[bytes, str], int] = {}
        self._owners: dict[tuple[str, str], bytes] = {}  # by (queue, consumer)
        self._chained: dict[tuple[str, str], int] = {}  # the last chained ack applied
        self._stopped = asyncio.Event()
        self._verbs: dict[str, _Handler] = {
            "put": self._put,
            "read": self._read,
            "ack": self._ack,
            "wait_room": self._wait_room,
            "attach": self._attach,
            "resume_point": self._resume_point,
            "committed": self._committed,
        }

    async def start(self) -> str:
        """Binds and starts serving; answers the bound endpoint."""
        self._context = zmq.Context()
        socket = self._context.socket(zmq.ROUTER)
        socket.setsockopt(zmq.ROUTER_HANDOVER, 1)  # a client's new socket takes over
        socket.setsockopt(zmq.LINGER, LINGER_MS)
        socket.setsockopt(zmq.IPV6, is_ipv6(self.bind))
        if self.keys is not None:
            self._secure(socket, self.keys)
        try:
            socket.bind(self.bind)
        except zmq.ZMQError as error:
            socket.close(0)
            msg = f"the queue server cannot bind `{self.bind}`: {error}"
            raise TransportError(msg) from None

        self._socket = socket
        self.endpoint = socket.getsockopt_string(zmq.LAST_ENDPOINT)
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(cast(int, socket.getsockopt(zmq.FD)), self._drain)
        self._schedule_drain()  # the descriptor signals changes only
        logger.debug("queue server %s serving at %s", self.epoch, self.endpoint)
        return self.endpoint

    async def serve_until_stopped(self) -> None:
        """Waits until a client's `stop` request or `stop()`; then closes."""
        await self._stopped.wait()
        await self.stop()

    async def stop(self) -> None:
        """Stops serving and closes the socket (replies already sent still go out)."""
        self._stopped.set()
        self._unwatch()
        tasks = list(self._parked)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._parked.clear()

        if self._authenticator is not None:
            self._authenticator.stop()
            self._authenticator = None
        if self._socket is not None:
            self._socket.close(LINGER_MS)
            self._socket = None
        if self._context is not None:
            self._context.term()
            self._context = None

    def _secure(self, socket: zmq.Socket[bytes], keys: ServerKeys) -> None:
        assert self._context is not None
        authenticator = AsyncioAuthenticator(self._context, log=logger)
        authenticator.start()
        authenticator.configure_curve_callback(ZAP_DOMAIN, _AllowListed(keys.clients))
        self._authenticator = authenticator
        socket.curve_secretkey = keys.secret
        socket.curve_publickey = keys.public
        socket.curve_server = True
        socket.zap_domain = ZAP_DOMAIN.encode()

    # The loop: messages are served from the descriptor's callback, without a task
    # or a future per wake-up, as long as there are some, `BURST` at a time.

    def _drain(self) -> None:
        self._drain_soon = None
        socket = self._socket
        if socket is None:
            return
        self._draining = True
        try:
            for _ in range(BURST):
                # ZeroMQ's descriptor signals edges: read until `EVENTS` says no more.
                if not cast(int, socket.getsockopt(zmq.EVENTS)) & zmq.POLLIN:
                    return
                try:
                    frames = socket.recv_multipart(zmq.NOBLOCK)
                except zmq.Again:
                    return
                self._serve_one(frames)
        finally:
            self._draining = False
        self._schedule_drain()  # more there: after the loop's other work (parked waits)

    def _schedule_drain(self) -> None:
        if self._drain_soon is None and self._loop is not None:
            self._drain_soon = self._loop.call_soon(self._drain)

    def _unwatch(self) -> None:
        if self._drain_soon is not None:
            self._drain_soon.cancel()
            self._drain_soon = None
        if self._loop is not None and self._socket is not None:
            self._loop.remove_reader(cast(int, self._socket.getsockopt(zmq.FD)))
        self._loop = None

    def _serve_one(self, frames: _Frames) -> None:
        # A message holds one or more requests; their replies go back as one message.
        try:
            identity, requests = frames[0], wire.unpack(frames[1])
        except (IndexError, ValueError, TypeError, WireError):
            logger.warning("ignored a malformed message (%d frames)", len(frames))
            return
        self._replies = []
        for frame in requests:
            self._serve_request(identity, frame)
        replies, self._replies = self._replies, None
        if replies:
            self._send([identity, wire.pack(replies)])

    def _serve_request(self, identity: bytes, frame: bytes) -> None:
        try:
            rid, verb, epoch, name, args, item = wire.unpack(frame)
        except (ValueError, TypeError) as error:
            logger.warning("ignored a malformed request: %s", error)
            return
        if epoch is not None and epoch != self.epoch:
            self._reply(identity, rid, wire.OTHER_EPOCH, self.epoch)
            return

        try:
            self._dispatch(identity, rid, verb, name, args, item)
        except Exception as error:  # every request gets a reply, a failure too
            self._reply_failure(identity, rid, error)

    def _dispatch(
        self,
        identity: bytes,
        rid: int,
        verb: str,
        name: str | None,
        args: list[Any],
        item: bytes | None,
    ) -> None:
        if verb == "hello":
            self._reply(identity, rid, wire.OK, self._hello())
            return
        if verb == "statistics":
            stats = [queue.statistics().to_row() for queue in self.queues.values()]
            self._reply(identity, rid, wire.OK, stats)
            return
        if verb == "stop":
            self._reply(identity, rid, wire.OK, None)
            self._stopped.set()
            return
        if verb == "interrupted":  # a worker stopped its sources early (`roles`)
            if args[0] not in self.interrupted:  # a request sent again
                self.interrupted.append(str(args[0]))
            self._reply(identity, rid, wire.OK, None)
            return

        handler = self._verbs.get(verb)
        if handler is None:
            msg = f"the queue server knows no request `{verb}`"
            raise TransportError(msg)
        handler(identity, rid, self._queue(name), args, item)

    def _queue(self, name: str | None) -> MemoryQueue:
        queue = self.queues.get(name) if name is not None else None
        if queue is None:
            msg = f"the queue server has no queue `{name}`"
            raise TransportError(msg)
        return queue

    def _hello(self) -> dict[str, Any]:
        queues = [queue.statistics().to_row() for queue in self.queues.values()]
        return {"epoch": self.epoch, "queues": queues, "plan": self.fingerprint}

    # The verbs.

    def _put(
        self,
        identity: bytes,
        rid: int,
        queue: MemoryQueue,
        args: list[Any],
        item: bytes | None,
    ) -> None:
        replies = self._puts.setdefault(identity, {})
        again = replies.get(rid)
        if again is not None:
            self._deliver(identity, again)
            return

        # Puts are numbered per producer and queue: one that overtook a lost one waits.
        seq, key = args[0], (identity, queue.name)
        expected = self._next_put.get(key, 1)
        if seq != expected or item is None:
            self._misplaced_put(identity, rid, queue, seq, expected, item)
            return
        self._next_put[key] = seq + 1  # even if it fails: it was answered
        credit = queue.put_nowait(wire.decode_item(item, stored=True))
        replies[rid] = self._reply(
            identity, rid, wire.OK, [credit.accepted, credit.room]
        )
        if len(replies) > PUT_REPLIES_KEPT:
            del replies[next(iter(replies))]

    def _misplaced_put(
        self,
        identity: bytes,
        rid: int,
        queue: MemoryQueue,
        seq: int,
        expected: int,
        item: bytes | None,
    ) -> None:
        if seq > expected:
            self._reply(identity, rid, wire.OUT_OF_ORDER, expected)
            return
        if item is None:
            msg = f"put {seq} to queue `{queue.name}` carried no item"
            raise TransportError(msg)
        # Applied already, its reply forgotten: only a pipelined put, whose items all
        # fitted, is that far behind (a waited-for put is always the last one).
        total = size(wire.decode_item(item, stored=True))
        self._reply(identity, rid, wire.OK, [total, queue.room()])

    def _read(
        self,
        identity: bytes,
        rid: int,
        queue: MemoryQueue,
        args: list[Any],
        _: bytes | None,
    ) -> None:
        # A read may carry the consumer's acknowledgement: one round trip for both.
        consumer, offset, limit, max_wait, ack = args
        self._owned(identity, queue, consumer)
        items = self._read_items(queue, consumer, offset, limit)
        if ack is not None:
            queue.ack_nowait(consumer, ack)  # before parking: it frees room
        if items or max_wait <= 0:
            self._answer_read(identity, rid, offset, items)
            return

        def then(_: bool) -> None:
            # Woken or not: what is there now is the answer ("not yet" if nothing).
            items = self._read_items(queue, consumer, offset, limit)
            self._answer_read(identity, rid, offset, items)

        self._park(identity, rid, queue.wait_data(consumer), max_wait, then)

    def _read_items(
        self, queue: MemoryQueue, consumer: str, offset: int, limit: int
    ) -> list[bytes]:
        # Every item there is, up to `limit` events: a consumer that fell behind
        # catches up in fewer round trips.
        items: list[bytes] = []
        read = 0
        while read < limit:
            try:
                item = queue.read_nowait(consumer, offset + read, limit - read)
            except WouldBlock:
                break
            items.append(wire.encode_item(item, queue.name))
            read += size(item)
            if isinstance(item, Instruction):
                break
        return items

    def _answer_read(
        self, identity: bytes, rid: int, offset: int, items: list[bytes]
    ) -> None:
        if items:
            self._reply(identity, rid, wire.OK, offset, items)
        else:
            self._reply(identity, rid, wire.NOT_YET, None)

    def _ack(
        self,
        identity: bytes,
        rid: int,
        queue: MemoryQueue,
        args: list[Any],
        _: bytes | None,
    ) -> None:
        # `[consumer, offset, changes]`, or with the chained form of `RemoteQueue`:
        # `[consumer, offset, None, encoded changes, number]`, applied once a number.
        consumer, offset, changes, *chained = args
        self._owned(identity, queue, consumer)
        if chained:
            encoded, number = chained
            key = (queue.name, consumer)
            if number <= self._chained.get(key, 0):
                self._reply(identity, rid, wire.OK, None)  # a copy of an applied one
                return
            queue.ack_nowait(consumer, offset, decode_changes(encoded))
            self._chained[key] = number
        else:
            queue.ack_nowait(consumer, offset, changes)
        self._reply(identity, rid, wire.OK, None)

    def _wait_room(
        self,
        identity: bytes,
        rid: int,
        queue: MemoryQueue,
        args: list[Any],
        _: bytes | None,
    ) -> None:
        at_least, max_wait = args
        if queue.room() >= max(1, min(at_least, queue.capacity)):
            self._reply(identity, rid, wire.OK, queue.room())  # no need to park
            return

        def then(woken: bool) -> None:
            if woken or queue.room() >= max(1, min(at_least, queue.capacity)):
                self._reply(identity, rid, wire.OK, queue.room())
            else:
                self._reply(identity, rid, wire.NOT_YET, None)

        self._park(identity, rid, queue.wait_room(at_least), max_wait, then)

    def _owned(self, identity: bytes, queue: MemoryQueue, consumer: str) -> None:
        owner = self._owners.get((queue.name, consumer))
        if owner is not None and owner != identity:
            msg = (
                f"stage `{consumer}` is run by another worker, which attached to "
                f"queue `{queue.name}` after this one; this worker stops"
            )
            raise TransportError(msg)

    def _attach(
        self,
        identity: bytes,
        rid: int,
        queue: MemoryQueue,
        args: list[Any],
        _: bytes | None,
    ) -> None:
        consumer = args[0]
        saved = queue.attach_nowait(consumer)
        # The latest worker to attach runs the stage: one started by mistake beside
        # it, or one presumed dead, is refused from now on (see `_owned`).
        self._owners[(queue.name, consumer)] = identity
        self._chained.pop((queue.name, consumer), None)  # its numbers start again
        self._reply(identity, rid, wire.OK, [saved.committed, saved.state, saved.ended])

    def _resume_point(
        self,
        identity: bytes,
        rid: int,
        queue: MemoryQueue,
        args: list[Any],
        _: bytes | None,
    ) -> None:
        resume = queue.resume_point_nowait(args[0])
        self._reply(identity, rid, wire.OK, [resume.high, resume.ended])

    def _committed(
        self,
        identity: bytes,
        rid: int,
        queue: MemoryQueue,
        args: list[Any],
        _: bytes | None,
    ) -> None:
        self._reply(identity, rid, wire.OK, dict(queue.statistics().committed)[args[0]])

    # Parked requests and replies.

    def _park(
        self,
        identity: bytes,
        rid: int,
        wait: Coroutine[Any, Any, Any],
        max_wait: float,
        then: Callable[[bool], None],
    ) -> None:
        # The queue's own waiter runs as a task, bounded by a timer that cancels it;
        # `then(woken)` answers, from the task's done callback: no wrapping
        # coroutine and no timeout context per parked request.
        task = asyncio.ensure_future(wait)
        timer = asyncio.get_running_loop().call_later(max_wait, task.cancel)
        self._parked.add(task)
        task.add_done_callback(
            lambda done: self._unpark(identity, rid, done, timer, then)
        )

    def _unpark(
        self,
        identity: bytes,
        rid: int,
        task: asyncio.Future[Any],
        timer: asyncio.TimerHandle,
        then: Callable[[bool], None],
    ) -> None:
        self._parked.discard(task)
        timer.cancel()
        if self._stopped.is_set():
            return  # stopping: the client asks again, and learns the server is gone
        # Cancelled: timed out, or another request of the same consumer timed out
        # and cancelled the waiter they share; `then` looks at the queue again.
        woken = not task.cancelled()
        try:
            if woken and task.exception() is not None:
                raise cast(BaseException, task.exception())
            then(woken)
        except Exception as error:  # a parked request is answered like any other
            self._reply_failure(identity, rid, error)

    def _reply_failure(self, identity: bytes, rid: int, error: Exception) -> None:
        # The client raises it again, as the kind it names where it knows it.
        self._reply(identity, rid, wire.FAILED, [type(error).__name__, str(error)])

    def _reply(
        self,
        identity: bytes,
        rid: int,
        status: int,
        result: Any,
        items: list[bytes] | None = None,
    ) -> bytes:
        reply: bytes = wire.pack([rid, status, result, items or []])
        self._deliver(identity, reply)
        return reply

    def _deliver(self, identity: bytes, reply: bytes) -> None:
        if self._replies is not None:
            self._replies.append(reply)  # with the other replies to the same message
        else:
            self._send([identity, wire.pack([reply])])

    def _send(self, frames: _Frames) -> None:
        if self._socket is None:
            return  # stopped while a parked request waited: the client asks again
        try:
            self._socket.send_multipart(frames, zmq.NOBLOCK)
        except zmq.Again:
            # A ROUTER drops rather than blocks; a client that lost this asks again.
            logger.warning("dropped a reply to a client that reads too slowly")
        if not self._draining and self._drain_soon is None:
            # A reply sent outside `_drain` may have consumed the descriptor's edge
            # (every send reads the socket's events): look again.
            events = cast(int, self._socket.getsockopt(zmq.EVENTS))
            if events & zmq.POLLIN:
                self._schedule_drain()


class _AllowListed:
    """The CURVE credentials check: only the listed client keys are let in."""

    def __init__(self, clients: frozenset[bytes]) -> None:
        self.clients = clients

    def callback(self, domain: str, key: bytes) -> bool:
        allowed = key in self.clients
        if not allowed:
            logger.warning(
                "refused a client with an unknown CURVE key %s", key.decode()
            )
        return allowed

"""The queue server and its clients: the queue's requests over ZeroMQ, retries,
timeouts, restarts and keys. Everything binds 127.0.0.1 port 0 or ipc in tmp_path."""

from __future__ import annotations

import asyncio
import os
import re
import stat
import time
from collections.abc import AsyncIterator, Mapping
from pathlib import Path

import pytest
import zmq

from reflow_lang.errors import TransportError, WireError
from reflow_lang.runtime.events import END_OF_SOURCE, Batch, Offsets
from reflow_lang.runtime.queue import DELETED, MemoryQueue, Resume, Saved
from reflow_lang.runtime.transport import (
    Connection,
    QueueServer,
    generate,
    load_client,
    load_server,
)
from reflow_lang.runtime.transport.endpoints import check_endpoint, is_loopback
from reflow_lang.runtime.transport.keys import ClientKeys
from reflow_lang.runtime.transport.wire import encode_item

LOOPBACK = "tcp://127.0.0.1:0"


class WatchedQueue(MemoryQueue):
    """A queue that says when someone starts waiting on it (no sleeps in tests)."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.waiting_data = asyncio.Event()
        self.waiting_room = asyncio.Event()

    async def wait_data(self, consumer: str) -> None:
        self.waiting_data.set()
        await super().wait_data(consumer)

    async def wait_room(self, at_least: int = 1) -> int:
        self.waiting_room.set()
        return await super().wait_room(at_least)


def batch(start: int, stop: int) -> Batch:
    return Batch([f"w{i}" for i in range(start, stop)], Offsets("lines", start, stop))


@pytest.fixture
async def words() -> WatchedQueue:
    return WatchedQueue("words", 4, ["sink"], remember="none")


@pytest.fixture
async def server(words: WatchedQueue) -> AsyncIterator[QueueServer]:
    server = QueueServer({"words": words}, LOOPBACK)
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
async def connection(server: QueueServer) -> AsyncIterator[Connection]:
    connection = Connection(server.endpoint, timeout=5.0)
    await connection.connect()
    yield connection
    await connection.close()


async def test_remote_queue_put_answers_credit(connection: Connection) -> None:
    queue = connection.queue("words", stage="split")

    first = await queue.put(batch(0, 3))
    second = await queue.put(batch(3, 6))
    third = await queue.put(batch(4, 6))

    assert (first.accepted, first.room) == (3, 1)
    assert (second.accepted, second.room) == (1, 0)
    assert (third.accepted, third.room) == (0, 0)


async def test_remote_queue_get_ack_and_attach(
    connection: Connection, words: MemoryQueue
) -> None:
    queue = connection.queue("words")
    await queue.put(batch(0, 4))

    first = await queue.get("sink", 3)
    second = await queue.get("sink", 3)
    await queue.ack("sink", 3, {"sink": 120, ("acc", "w"): 2})
    await queue.ack("sink", 3, {("acc", "w"): DELETED})
    saved = await queue.attach("sink")
    again = await queue.get("sink", 3)

    assert first == batch(0, 3)
    assert second == batch(3, 4)
    assert saved == Saved(3, {"sink": 120})
    assert again == batch(3, 4)
    assert await queue.committed("sink") == 3
    assert words.statistics().committed == (("sink", 3),)


async def test_remote_queue_attach_says_a_consumer_had_ended(
    connection: Connection,
) -> None:
    queue = connection.queue("words")
    await queue.put(batch(0, 2))
    await queue.put(END_OF_SOURCE)
    await queue.get("sink", 4)
    await queue.get("sink", 4)
    await queue.ack("sink", 3)

    saved = await queue.attach("sink")

    assert saved == Saved(3, {}, ended=True)


async def test_a_second_worker_attaching_takes_the_stage_over(
    server: QueueServer, connection: Connection
) -> None:
    first = connection.queue("words")
    await first.put(batch(0, 4))
    await first.attach("sink")
    async with Connection(server.endpoint, timeout=5.0) as other:
        second = other.queue("words")
        await second.attach("sink")
        taken = await second.get("sink", 2)

        with pytest.raises(TransportError) as refused:
            await first.get("sink", 2)

    assert taken == batch(0, 2)
    assert str(refused.value) == (
        "stage `sink` is run by another worker, which attached to queue `words` after "
        "this one; this worker stops"
    )


async def test_remote_queue_poll_answers_none_when_empty(
    connection: Connection,
) -> None:
    queue = connection.queue("words")

    assert await queue.poll("sink", 8) is None
    await queue.put(batch(0, 2))
    assert await queue.poll("sink", 8) == batch(0, 2)


async def test_remote_queue_get_wakes_on_put(
    connection: Connection, words: WatchedQueue
) -> None:
    queue = connection.queue("words")
    producer = Connection(connection.address, timeout=5.0)
    await producer.connect()

    getting = asyncio.create_task(queue.get("sink", 8))
    await words.waiting_data.wait()
    await producer.queue("words").put(batch(0, 2))

    assert await getting == batch(0, 2)
    await producer.close()


async def test_remote_queue_wait_data_then_get_hands_out_the_read_item(
    connection: Connection, words: WatchedQueue
) -> None:
    queue = connection.queue("words")

    waiting = asyncio.create_task(queue.wait_data("sink"))
    await words.waiting_data.wait()
    await words.put(batch(0, 4))
    await waiting

    assert await queue.poll("sink", 3) == batch(0, 3)
    assert await queue.poll("sink", 3) == batch(3, 4)
    assert await queue.poll("sink", 3) is None


async def test_remote_queue_wait_room_wakes_on_ack(
    connection: Connection, words: WatchedQueue
) -> None:
    queue = connection.queue("words")
    await queue.put(batch(0, 4))
    await queue.put(END_OF_SOURCE)  # not taken: no room
    await queue.get("sink", 4)

    waiting = asyncio.create_task(queue.wait_room(2))
    await words.waiting_room.wait()
    await words.ack("sink", 4)

    assert await waiting == 4


async def test_remote_queue_wait_room_with_room_is_answered_without_parking(
    connection: Connection, words: WatchedQueue
) -> None:
    queue = connection.queue("words")

    room = await queue.wait_room(2)  # nothing known here yet: the server is asked

    assert room == 4
    assert not words.waiting_room.is_set()


async def test_remote_queue_cancelled_get_leaves_its_read_for_the_next(
    connection: Connection, words: WatchedQueue
) -> None:
    queue = connection.queue("words")
    getting = asyncio.create_task(queue.get("sink", 8))
    await words.waiting_data.wait()
    getting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await getting

    await words.put(batch(0, 2))

    assert await queue.get("sink", 8) == batch(0, 2)
    assert words.statistics().committed == (("sink", 0),)


async def test_remote_queue_ack_riding_on_a_dropped_read_is_committed(
    connection: Connection, words: WatchedQueue
) -> None:
    await words.put(batch(0, 2))
    queue = connection.queue("words")
    assert await queue.get("sink", 8) == batch(0, 2)

    await queue.ack("sink", 2)  # starts the next read, and rides on it
    saved = await queue.attach("sink")  # drops that read

    assert saved.committed == 2
    assert words.statistics().committed == (("sink", 2),)


async def test_remote_queue_long_poll_answers_not_yet_and_asks_again(
    server: QueueServer, words: WatchedQueue
) -> None:
    # max_wait is 0.05 s: the get is answered "not yet" and asks again until data comes.
    async with Connection(server.endpoint, timeout=0.1) as connection:
        queue = connection.queue("words")
        getting = asyncio.create_task(queue.get("sink", 8))
        for _ in range(3):
            words.waiting_data.clear()
            await words.waiting_data.wait()
        await words.put(END_OF_SOURCE)

        assert await getting == END_OF_SOURCE


async def test_remote_queue_resume_point_and_statistics(connection: Connection) -> None:
    queue = connection.queue("words")
    await queue.put(batch(0, 3))

    resume = await queue.resume_point("lines")
    before = queue.statistics()
    after = await queue.fetch_statistics()

    assert resume in (Resume((2,), False), Resume(None, False))
    assert (before.tail, after.tail) == (0, 3)
    assert after.depth == 3 and after.capacity == 4


async def test_remote_queue_raises_the_queue_error_of_a_bad_ack(
    connection: Connection,
) -> None:
    queue = connection.queue("words")
    await queue.put(batch(0, 2))

    await queue.ack("sink", 2)  # sent without waiting: the next call raises
    with pytest.raises(ValueError) as plain:
        await queue.flush()
    await queue.ack("sink", 1, {"sink": 10})  # state rides on it: not waited either
    with pytest.raises(ValueError) as chained:
        await queue.flush()

    assert str(plain.value) == (
        "`sink` acknowledged offset 2 of queue `words`; it has read only up to 0"
    )
    assert str(chained.value) == (
        "`sink` acknowledged offset 1 of queue `words`; it has read only up to 0"
    )


async def test_remote_queue_put_refuses_foreign_values_naming_the_stage(
    connection: Connection,
) -> None:
    queue = connection.queue("words", stage="parse")

    with pytest.raises(
        WireError, match=r"^stage `parse` produced a value of type `set`"
    ):
        await queue.put(Batch([{1}], Offsets("lines", 0, 1)))


async def test_connection_queue_refuses_unknown_name(connection: Connection) -> None:
    with pytest.raises(TransportError) as raised:
        connection.queue("nowhere")

    assert str(raised.value) == (
        f"the queue server at `{connection.address}` has no queue `nowhere`; "
        f"it has `words`"
    )


async def test_server_answers_unknown_queue_with_an_error(
    connection: Connection,
) -> None:
    with pytest.raises(TransportError) as raised:
        await connection.request("put", "nowhere", [], b"")

    assert str(raised.value) == "the queue server has no queue `nowhere`"


class LossyServer(QueueServer):
    """Drops the first reply to each verb in `lose`, as a network would."""

    def __init__(self, queues: Mapping[str, MemoryQueue], lose: set[str]) -> None:
        super().__init__(queues, LOOPBACK)
        self.lose = set(lose)
        self.lost: list[str] = []
        self.requests: list[str] = []

    def _dispatch(self, identity: bytes, rid: int, verb: str, *rest: object) -> None:
        self.requests.append(verb)
        self._verb = verb
        super()._dispatch(identity, rid, verb, *rest)  # type: ignore[arg-type]

    def _send(self, frames: list[bytes]) -> None:
        if self._verb in self.lose:
            self.lose.discard(self._verb)
            self.lost.append(self._verb)
            return
        super()._send(frames)


async def test_lost_replies_are_asked_again_without_doubling_anything() -> None:
    words = MemoryQueue("words", 8, ["sink"], remember="none")
    server = LossyServer({"words": words}, {"put", "read"})
    await server.start()

    async with Connection(server.endpoint, timeout=0.2) as connection:
        queue = connection.queue("words")
        credit = await queue.put(batch(0, 3))
        item = await queue.get("sink", 8)
        await queue.ack("sink", 3)  # rides on the next read
        await queue.put(END_OF_SOURCE)
        end = await queue.get("sink", 8)

    await server.stop()
    assert server.lost == ["put", "read"]
    assert server.requests.count("put") == 3  # the first put was sent twice
    assert (credit.accepted, credit.room) == (3, 5)
    assert item == batch(0, 3)
    assert end == END_OF_SOURCE
    assert words.statistics().tail == 4  # three events and the end, once each
    assert words.statistics().committed == (("sink", 3),)


def _free_endpoint() -> str:
    # A port that was free a moment ago, with nothing listening on it now.
    context = zmq.Context()
    socket = context.socket(zmq.ROUTER)
    socket.bind(LOOPBACK)
    endpoint: str = socket.getsockopt_string(zmq.LAST_ENDPOINT)
    socket.close(0)
    context.term()
    return endpoint


async def test_unreachable_server_fails_within_the_configured_time() -> None:
    endpoint = _free_endpoint()
    connection = Connection(endpoint, timeout=0.2, unreachable_after=0.6)

    started = time.monotonic()
    with pytest.raises(TransportError) as raised:
        await connection.connect()
    waited = time.monotonic() - started
    await connection.close()

    assert re.fullmatch(
        rf"no answer from the queue server at `{re.escape(endpoint)}` to `hello` for "
        r"\d+\.\d s; it is down or unreachable, or it refused this client's key",
        str(raised.value),
    )
    assert 0.6 <= waited < 5.0


async def test_request_to_a_stopped_server_fails_naming_the_queue(
    tmp_path: Path,
) -> None:
    endpoint = f"ipc://{tmp_path}/queues"
    server = QueueServer({"words": MemoryQueue("words", 4, ["sink"])}, endpoint)
    await server.start()
    connection = Connection(endpoint, timeout=0.2, unreachable_after=0.4)
    await connection.connect()
    await server.stop()

    with pytest.raises(TransportError, match=r"to `put` on queue `words` for"):
        await connection.queue("words").put(batch(0, 1))
    await connection.close()


async def test_restarted_server_fails_requests_with_an_epoch_error(
    tmp_path: Path,
) -> None:
    endpoint = f"ipc://{tmp_path}/queues"
    first = QueueServer({"words": MemoryQueue("words", 4, ["sink"])}, endpoint)
    await first.start()
    connection = Connection(endpoint, timeout=0.5, unreachable_after=5.0)
    await connection.connect()
    await first.stop()
    second = QueueServer({"words": MemoryQueue("words", 4, ["sink"])}, endpoint)
    await second.start()

    with pytest.raises(TransportError) as raised:
        await connection.queue("words").put(batch(0, 1))
    await connection.close()
    await second.stop()

    assert str(raised.value) == (
        f"the queue server at `{endpoint}` restarted (epoch {first.epoch}, now "
        f"{second.epoch}); what its queues held is lost"
    )
    assert second.queues["words"].statistics().tail == 0


async def test_stop_request_ends_serve_until_stopped() -> None:
    server = QueueServer({"words": MemoryQueue("words", 4, ["sink"])}, LOOPBACK)
    await server.start()
    serving = asyncio.create_task(server.serve_until_stopped())

    async with Connection(server.endpoint, timeout=5.0) as connection:
        await connection.stop_server()
    await serving

    assert server.endpoint.startswith("tcp://127.0.0.1:")


def test_keys_generate_writes_two_pairs_with_private_secrets(tmp_path: Path) -> None:
    generate(tmp_path)

    names = sorted(path.name for path in tmp_path.iterdir())
    server, client = load_server(tmp_path), load_client(tmp_path)

    assert names == [
        "client.key",
        "client.key_secret",
        "server.key",
        "server.key_secret",
    ]
    for name in ("client.key_secret", "server.key_secret"):
        assert stat.S_IMODE(os.stat(tmp_path / name).st_mode) == 0o600
    assert server.clients == frozenset({client.public})
    assert client.server == server.public
    with pytest.raises(TransportError, match="keys are never overwritten"):
        generate(tmp_path)


async def test_curve_server_answers_listed_client_and_not_another(
    tmp_path: Path,
) -> None:
    generate(tmp_path / "job")
    generate(tmp_path / "stranger")
    good = load_client(tmp_path / "job")
    other = load_client(tmp_path / "stranger")
    wrong = ClientKeys(other.public, other.secret, good.server)
    server = QueueServer(
        {"words": MemoryQueue("words", 4, ["sink"])},
        "tcp://127.0.0.1:0",
        keys=load_server(tmp_path / "job"),
    )
    endpoint = await server.start()

    async with Connection(endpoint, timeout=5.0, keys=good) as connection:
        credit = await connection.queue("words").put(batch(0, 2))
    refused = Connection(endpoint, timeout=0.2, unreachable_after=0.4, keys=wrong)
    with pytest.raises(TransportError, match=r"refused this client's key$"):
        await refused.connect()
    await refused.close()
    await server.stop()

    assert credit.accepted == 2


def test_server_refuses_non_loopback_bind_without_keys() -> None:
    with pytest.raises(TransportError) as raised:
        QueueServer({"words": MemoryQueue("words", 4, ["sink"])}, "tcp://0.0.0.0:5555")

    assert str(raised.value) == (
        "refusing to serve queues at `tcp://0.0.0.0:5555` without CURVE keys; bind a "
        "loopback address (tcp://127.0.0.1:PORT) or generate keys with `reflowc keys "
        "DIR` and pass them"
    )


@pytest.mark.parametrize(
    ("endpoint", "loopback"),
    [
        ("tcp://127.0.0.1:5555", True),
        ("tcp://127.0.0.2:0", True),
        ("tcp://[::1]:5555", True),
        ("tcp://localhost:5555", True),
        ("ipc:///tmp/queues", True),
        ("tcp://*:5555", False),
        ("tcp://0.0.0.0:5555", False),
        ("tcp://10.0.0.2:5555", False),
        ("tcp://eth0:5555", False),
    ],
)
def test_is_loopback(endpoint: str, loopback: bool) -> None:
    assert is_loopback(endpoint) is loopback


async def test_close_waits_for_an_outstanding_reply(connection: Connection) -> None:
    queue = connection.queue("words")
    putting = asyncio.create_task(queue.put(batch(0, 2)))
    await asyncio.sleep(0)  # the put is sent, not answered

    await connection.close()

    assert putting.done() and (await putting).accepted == 2


class ForgetfulServer(QueueServer):
    """Loses the first request of put number 2, as a dropped connection would."""

    def __init__(self, queues: Mapping[str, MemoryQueue]) -> None:
        super().__init__(queues, LOOPBACK)
        self.dropped = 0
        self.out_of_order = 0

    def _put(
        self,
        identity: bytes,
        rid: int,
        queue: MemoryQueue,
        args: list[object],
        item: bytes | None,
    ) -> None:
        if args[0] == 2 and not self.dropped:
            self.dropped += 1
            return
        if args[0] == 3 and self.dropped == 1 and not self.out_of_order:
            self.out_of_order += 1
        super()._put(identity, rid, queue, args, item)


async def test_pipelined_puts_are_applied_in_order_when_one_is_lost() -> None:
    words = MemoryQueue("words", 64, ["sink"], remember="none")
    server = ForgetfulServer({"words": words})
    await server.start()

    async with Connection(server.endpoint, timeout=0.2) as connection:
        queue = connection.queue("words")
        credits = [await queue.put(batch(start, start + 2)) for start in (0, 2, 4, 6)]
        await queue.put(END_OF_SOURCE)
        items = [await queue.get("sink", 2) for _ in range(5)]
    await server.stop()

    assert server.dropped == 1 and server.out_of_order == 1
    assert [credit.accepted for credit in credits] == [2, 2, 2, 2]
    assert items == [batch(0, 2), batch(2, 4), batch(4, 6), batch(6, 8), END_OF_SOURCE]
    assert words.statistics().tail == 9


async def test_put_seen_before_is_answered_without_being_applied_again(
    connection: Connection, words: MemoryQueue
) -> None:
    data = encode_item(batch(0, 2), "split")

    first, _ = await connection.request("put", "words", [1], data)
    again, _ = await connection.request("put", "words", [1], data)  # a new request id

    assert first == [2, 2]
    assert again == [2, 2]
    assert words.statistics().tail == 2


async def test_ack_while_items_are_read_ahead_frees_room_without_another_call(
    connection: Connection, words: WatchedQueue
) -> None:
    # The consumer read both batches at once; acknowledging the first must reach the
    # server although the consumer asks for nothing more: a producer may wait on it.
    await words.put(batch(0, 2))
    await words.put(batch(2, 4))
    queue = connection.queue("words")
    first = await queue.get("sink", 2)

    waiting = asyncio.create_task(words.wait_room(2))
    await words.waiting_room.wait()
    await queue.ack("sink", 2)
    async with asyncio.timeout(10):  # a guard: the ack is due within one loop turn
        room = await waiting

    assert first == batch(0, 2)
    assert room == 2
    assert words.statistics().committed == (("sink", 2),)


@pytest.mark.parametrize(
    ("endpoint", "message"),
    [
        (
            "127.0.0.1:0",
            "`127.0.0.1:0` is not an address to serve at; write `tcp://HOST:PORT` "
            "(e.g. `tcp://127.0.0.1:5555`) or `ipc://PATH`",
        ),
        (
            "tcp://127.0.0.1:99999",
            "`tcp://127.0.0.1:99999` has no valid port; a TCP port is 0 (any free) to "
            "65535",
        ),
    ],
)
def test_server_refuses_what_is_not_an_endpoint(endpoint: str, message: str) -> None:
    with pytest.raises(TransportError) as refused:
        check_endpoint(endpoint)

    assert str(refused.value) == message


async def test_server_and_client_speak_over_ipv6_loopback(words: MemoryQueue) -> None:
    server = QueueServer({"words": words}, "tcp://[::1]:0")
    try:
        endpoint = await server.start()
    except TransportError as error:  # a host without IPv6
        pytest.skip(str(error))
    try:
        async with Connection(endpoint, timeout=5.0) as connection:
            credit = await connection.queue("words").put(batch(0, 2))
    finally:
        await server.stop()

    assert endpoint.startswith("tcp://[::1]:")
    assert credit.accepted == 2


def test_connection_refuses_what_is_not_an_endpoint() -> None:
    with pytest.raises(TransportError) as refused:
        Connection("127.0.0.1:5555")

    assert str(refused.value) == (
        "`127.0.0.1:5555` is not an address to connect to; write `tcp://HOST:PORT` "
        "(e.g. `tcp://127.0.0.1:5555`) or `ipc://PATH`"
    )

"""Acknowledgements that carry state, over the transport: not waited for, one
request in flight per consumer, applied once each and in order, resends included.
Everything binds 127.0.0.1 port 0."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping

import pytest

from reflow_lang.errors import WireError
from reflow_lang.runtime.events import Batch, Offsets
from reflow_lang.runtime.queue import DELETED, MemoryQueue, Saved
from reflow_lang.runtime.transport import Connection, QueueServer
from reflow_lang.runtime.transport.remote import decode_changes, encode_changes
from reflow_lang.runtime.transport.wire import PLAIN

LOOPBACK = "tcp://127.0.0.1:0"


def batch(start: int, stop: int) -> Batch:
    return Batch([f"w{i}" for i in range(start, stop)], Offsets("lines", start, stop))


class CountingServer(QueueServer):
    """Counts the acknowledgements it is asked for; drops the first `lose` replies
    to them, as a network would."""

    def __init__(self, queues: Mapping[str, MemoryQueue], lose: int = 0) -> None:
        super().__init__(queues, LOOPBACK)
        self.acks = 0
        self.lose = lose
        self._verb = ""

    def _dispatch(self, identity: bytes, rid: int, verb: str, *rest: object) -> None:
        self._verb = verb
        if verb == "ack":
            self.acks += 1
        super()._dispatch(identity, rid, verb, *rest)  # type: ignore[arg-type]

    def _send(self, frames: list[bytes]) -> None:
        if self._verb == "ack" and self.lose:
            self.lose -= 1
            return
        super()._send(frames)


@pytest.fixture
def words() -> MemoryQueue:
    return MemoryQueue("words", 8, ["count"])


@pytest.fixture
async def server(words: MemoryQueue) -> AsyncIterator[CountingServer]:
    server = CountingServer({"words": words})
    await server.start()
    yield server
    await server.stop()


def test_changes_travel_grouped_and_merge_in_order() -> None:
    first = {
        ("acc", "w"): 1,
        ("acc", ("x", 2)): [1, 2],
        ("acc", 3): {"a": (1, 2)},
        ("rejoin", "lines", (4, 5)): ["part"],
        "sink": 120,
    }
    second = {("acc", "w"): 2, ("acc", 3): DELETED, "sink": 130}

    merged = decode_changes([encode_changes(first), encode_changes(second)])

    assert merged == {
        ("acc", "w"): 2,
        ("acc", ("x", 2)): [1, 2],
        ("acc", 3): DELETED,
        ("rejoin", "lines", (4, 5)): ["part"],
        "sink": 130,
    }
    assert merged[("acc", 3)] is DELETED


async def test_acks_with_state_are_not_waited_for_and_coalesce_in_flight(
    server: CountingServer, words: MemoryQueue
) -> None:
    async with Connection(server.endpoint, timeout=5.0) as connection:
        queue = connection.queue("words")
        await queue.put(batch(0, 4))
        await queue.get("count", 4)
        # In one turn: the first leaves at once, the others wait for its reply and
        # then leave together, in one request.
        await queue.ack("count", 1, {("acc", "a"): 1, ("acc", "b"): 1})
        await queue.ack("count", 2, {("acc", "a"): 2})
        await queue.ack("count", 3, {("acc", "b"): DELETED, ("acc", "c"): 1})
        await queue.ack("count", 4)  # no state: it must not overtake those
        saved = await queue.attach("count")

    assert saved == Saved(4, {("acc", "a"): 2, ("acc", "c"): 1})
    assert server.acks == 2


async def test_a_stale_copy_of_a_chained_ack_is_not_applied_again(
    server: CountingServer, words: MemoryQueue
) -> None:
    async with Connection(server.endpoint, timeout=5.0) as connection:
        queue = connection.queue("words")
        await queue.put(batch(0, 4))
        await queue.attach("count")
        await queue.get("count", 4)
        one = [encode_changes({"sink": 1})]
        two = [encode_changes({"sink": 2})]
        await connection.request("ack", "words", ["count", 4, None, one, 1])
        await connection.request("ack", "words", ["count", 4, None, two, 2])
        await connection.request("ack", "words", ["count", 4, None, one, 1])

    assert words.attach_nowait("count") == Saved(4, {"sink": 2})


async def test_a_lost_reply_to_a_chained_ack_is_resent_and_applied_once(
    words: MemoryQueue,
) -> None:
    server = CountingServer({"words": words}, lose=1)
    await server.start()

    async with Connection(server.endpoint, timeout=0.2) as connection:
        queue = connection.queue("words")
        await queue.put(batch(0, 4))
        await queue.get("count", 4)
        await queue.ack("count", 2, {"n": 1})  # its reply is lost: sent again
        await queue.ack("count", 4, {"n": 2})  # waits for it, then leaves
        await queue.flush()
    await server.stop()

    assert server.acks == 3
    assert words.attach_nowait("count") == Saved(4, {"n": 2})


async def test_an_ack_whose_state_cannot_cross_is_refused_at_once(
    server: CountingServer,
) -> None:
    async with Connection(server.endpoint, timeout=5.0) as connection:
        queue = connection.queue("words")
        await queue.put(batch(0, 2))
        await queue.get("count", 2)
        with pytest.raises(WireError) as raised:
            await queue.ack("count", 2, {("acc", "a"): {1, 2}})

    assert str(raised.value) == (
        f"a value of type `set` cannot cross a process boundary; send plain data "
        f"({PLAIN})"
    )
    assert server.acks == 0


async def test_close_waits_for_every_chained_ack(
    server: CountingServer, words: MemoryQueue
) -> None:
    connection = Connection(server.endpoint, timeout=5.0)
    await connection.connect()
    queue = connection.queue("words")
    await queue.put(batch(0, 4))
    await queue.get("count", 4)
    for offset in range(1, 5):
        await queue.ack("count", offset, {"n": offset})

    await connection.close()

    assert words.attach_nowait("count") == Saved(4, {"n": 4})

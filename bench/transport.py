"""Benchmark: batches through the queue server, against raw pyzmq.

Both contenders move the same batches of 256 small strings, encoded as the
transport encodes them (msgpack), from a producer process through a middle process
to a consumer process, with the same bound (2,048 events held in the middle), the
same pipelining (at most 8 puts unanswered) and the same reads (up to 1,024 events,
the acknowledgement riding on the next read); the consumer decodes every batch:

- `raw`: nothing but blocking pyzmq sockets and msgpack: a DEALER producer, a
  ROUTER broker storing and forwarding the bytes, a DEALER consumer;
- `transport`: a `RemoteQueue` producer, a `QueueServer` serving a `MemoryQueue`
  (remembering ids as a `total` stream does) and a `RemoteQueue` consumer that
  `get`s and acknowledges: the three processes of `reflowc run --processes`, with
  the queue's semantics in between.

Each round runs both, in turn, each in a fresh set of processes (started before
the clock starts); the medians are compared (target: transport / raw >= 0.5). Run
from the repository root: `python bench/transport.py [--quick]`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import struct
import subprocess
import sys
import time
from collections import deque
from pathlib import Path

import msgpack  # type: ignore[import-untyped]
import zmq

from reflow_lang.runtime.events import END_OF_SOURCE, Batch, Offsets, size, slice_item
from reflow_lang.runtime.queue import MemoryQueue
from reflow_lang.runtime.transport import Connection, QueueServer

SCRIPT = Path(__file__).resolve()
ROOT = SCRIPT.parent.parent
BATCH = 256
CAPACITY = 8 * BATCH  # as the local pipeline of wordcount.py: 8 items of 256


def words(index: int) -> list[str]:
    """One batch's values: 256 short distinct strings."""
    base = index * BATCH
    return [f"word{base + i}" for i in range(BATCH)]


# Roles, each run as `python bench/transport.py ROLE ...` in a process of its own.
#
# The raw contender is the same three processes and the same flow control with
# nothing but blocking pyzmq sockets and msgpack: a producer DEALER puts each batch
# (the document `wire.encode_item` makes, values packed apart, so the broker can
# forward it undecoded as the queue server does) into a broker ROUTER holding at
# most `CAPACITY` events; the broker answers a put once the batch is stored (at once
# when there is room, later when a read's acknowledgement makes some), and the
# producer keeps at most `CAPACITY / BATCH` puts unanswered; a consumer DEALER reads
# from its offset, up to `READ_LIMIT` events a read, its acknowledgement riding on
# the next read, and decodes every batch. What it lacks is what the transport adds:
# ids and replays, stamps, saved state, request ids, timeouts and resends, asyncio.

READ_LIMIT = 1024  # as the transport's reads
_PUT, _READ, _STOP, _END = b"p", b"r", b"s", b"e"


def raw_document(index: int, values: list[str]) -> bytes:
    """Batch `index` as the transport encodes it: `[0, values, stamps, None]`, the
    values packed apart."""
    stamps = [0, "lines", index * BATCH, (index + 1) * BATCH]
    data: bytes = msgpack.packb([0, msgpack.packb(values), stamps, None])
    return data


class _Broker:
    """The raw contender's queue: stored batches, parked puts and a parked read."""

    def __init__(self, socket: zmq.Socket[bytes]) -> None:
        self.socket = socket
        self.entries: deque[tuple[int, int, bytes]] = deque()  # offset, events, data
        self.tail = 0
        self.committed = 0
        self.puts: deque[tuple[bytes, int, bytes]] = deque()  # waiting for room
        self.reader: tuple[bytes, int] | None = None  # a read waiting for data

    def put(self, identity: bytes, count: int, data: bytes) -> None:
        if self.puts or self.tail + count - self.committed > CAPACITY:
            self.puts.append((identity, count, data))
            return
        self.entries.append((self.tail, count, data))
        self.tail += count
        self.socket.send_multipart([identity, struct.pack("!q", self.tail)])
        if self.reader is not None:
            self.read(*self.reader, ack=self.committed)

    def read(self, identity: bytes, offset: int, ack: int) -> None:
        self.reader = None
        self.acknowledge(ack)
        frames = [identity]
        read = 0
        for start, count, data in self.entries:
            if start >= offset and read < READ_LIMIT:
                frames.append(data)
                read += count
        if read:
            self.socket.send_multipart(frames)
        else:
            self.reader = (identity, offset)

    def acknowledge(self, ack: int) -> None:
        self.committed = max(self.committed, ack)
        while self.entries and self.entries[0][0] + self.entries[0][1] <= ack:
            self.entries.popleft()
        while self.puts and self.tail + self.puts[0][1] - self.committed <= CAPACITY:
            identity, count, data = self.puts.popleft()
            self.entries.append((self.tail, count, data))
            self.tail += count
            self.socket.send_multipart([identity, struct.pack("!q", self.tail)])


def raw_broker() -> None:
    """Serves puts and reads until a stop message; prints its CPU time."""
    context = zmq.Context()
    socket = context.socket(zmq.ROUTER)
    socket.bind("tcp://127.0.0.1:0")
    print(socket.getsockopt_string(zmq.LAST_ENDPOINT), flush=True)
    broker = _Broker(socket)
    cpu = time.process_time()
    while True:
        identity, kind, *rest = socket.recv_multipart()
        if kind == _PUT:
            broker.put(identity, struct.unpack("!q", rest[0])[0], rest[1])
        elif kind == _READ:
            offset, ack = struct.unpack("!qq", rest[0])
            broker.read(identity, offset, ack)
        else:
            socket.send_multipart([identity, b""])
            break
    print(json.dumps({"cpu": time.process_time() - cpu}), flush=True)
    socket.close(1000)
    context.term()


def raw_consumer(endpoint: str) -> None:
    """Reads and decodes every batch up to the end; prints when it got there."""
    context = zmq.Context()
    socket = context.socket(zmq.DEALER)
    socket.connect(endpoint)
    print("ready", flush=True)  # the producer starts now: start-up is not timed
    offset, events = 0, 0
    cpu = time.process_time()
    ended = False
    while not ended:
        socket.send_multipart([_READ, struct.pack("!qq", offset, offset)])
        for data in socket.recv_multipart():
            if data == _END:
                ended = True
                break
            _, values, _, _ = msgpack.unpackb(data)
            count = len(msgpack.unpackb(values))
            offset += count
            events += count
    finished = time.perf_counter()
    socket.close(1000)
    context.term()
    report = {"finished": finished, "events": events, "cpu": time.process_time() - cpu}
    print(json.dumps(report), flush=True)


def raw_producer(endpoint: str, batches: int) -> tuple[float, float]:
    """Puts every batch and the end, at most `CAPACITY / BATCH` unanswered; answers
    when it started and the CPU time it took."""
    context = zmq.Context()
    socket = context.socket(zmq.DEALER)
    socket.connect(endpoint)
    # The values exist before the clock starts, as the transport producer's batches
    # do; encoding them is timed in both, as a worker pays for it.
    values = [words(index) for index in range(batches)]
    window = CAPACITY // BATCH
    started, cpu = time.perf_counter(), time.process_time()
    unanswered = 0
    for index, batch_values in enumerate(values):
        if unanswered == window:
            socket.recv()
            unanswered -= 1
        data = raw_document(index, batch_values)
        socket.send_multipart([_PUT, struct.pack("!q", BATCH), data])
        unanswered += 1
    socket.send_multipart([_PUT, struct.pack("!q", 1), _END])
    for _ in range(unanswered + 1):
        socket.recv()
    seconds = time.process_time() - cpu
    socket.close(1000)
    context.term()
    return started, seconds


def raw_stop(endpoint: str) -> None:
    """Stops the broker (once the consumer has read everything)."""
    context = zmq.Context()
    socket = context.socket(zmq.DEALER)
    socket.connect(endpoint)
    socket.send_multipart([_STOP])
    socket.recv()
    socket.close(1000)
    context.term()


async def queue_server() -> None:
    """Serves one queue until a client asks it to stop."""
    queue = MemoryQueue("words", CAPACITY, ["sink"], remember="total")
    server = QueueServer({"words": queue}, "tcp://127.0.0.1:0")
    print(await server.start(), flush=True)
    cpu = time.process_time()
    await server.serve_until_stopped()
    print(json.dumps({"cpu": time.process_time() - cpu}), flush=True)


async def consumer(endpoint: str) -> None:
    """Gets and acknowledges until end-of-source; prints when it got there."""
    async with Connection(endpoint) as connection:
        queue = connection.queue("words")
        print("ready", flush=True)  # the producer starts now: start-up is not timed
        offset, events = 0, 0
        cpu = time.process_time()
        while True:
            item = await queue.get("sink", BATCH)
            offset += size(item)
            await queue.ack("sink", offset)
            if item == END_OF_SOURCE:
                break
            events += size(item)
    finished = time.perf_counter()
    report = {"finished": finished, "events": events, "cpu": time.process_time() - cpu}
    print(json.dumps(report), flush=True)


async def producer(endpoint: str, batches: int) -> tuple[float, float]:
    """Puts every batch and the end; answers when it started, and the CPU time it
    took (this process's, its ZeroMQ thread included)."""
    async with Connection(endpoint) as connection:
        queue = connection.queue("words", stage="lines")
        items = [
            Batch(words(i), Offsets("lines", i * BATCH, (i + 1) * BATCH))
            for i in range(batches)
        ]
        started, cpu = time.perf_counter(), time.process_time()
        room = 0
        for item in [*items, END_OF_SOURCE]:
            room = await _put_all(queue, item, room)
        return started, time.process_time() - cpu


async def _put_all(queue: object, item: Batch | object, room: int) -> int:
    # As a worker delivers its output (`Worker._deliver`): with less room known
    # than the item needs, it waits for room before offering it, rather than
    # offering it to have it refused. Answers the room known after it.
    total = size(item)  # type: ignore[arg-type]
    while True:
        if room < total:
            room = await queue.wait_room(total)  # type: ignore[attr-defined]
        credit = await queue.put(item)  # type: ignore[attr-defined]
        room = credit.room
        if credit.accepted >= total:
            return room
        if credit.accepted:
            item = slice_item(item, credit.accepted, total)  # type: ignore[arg-type]
            total -= credit.accepted


# Contenders: each starts its helper processes and reports events per second.


def _start(*args: str) -> subprocess.Popen[str]:
    env = dict(
        os.environ, PYTHONPATH=f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"
    )
    return subprocess.Popen(
        [sys.executable, str(SCRIPT), *args],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
        cwd=ROOT,
    )


def run_raw(batches: int) -> float:
    """Events per second of the raw contender."""
    return measure_raw(batches)[0]


def measure_raw(batches: int) -> tuple[float, dict[str, float]]:
    """Events per second of the raw contender, and CPU microseconds per batch of
    each of its processes."""
    with _start("raw-broker") as broker:
        assert broker.stdout is not None
        endpoint = broker.stdout.readline().strip()
        with _start("raw-consumer", endpoint) as reader:
            assert reader.stdout is not None
            try:
                reader.stdout.readline()  # ready
                started, producer_cpu = raw_producer(endpoint, batches)
                report = json.loads(reader.stdout.readline())
            finally:
                raw_stop(endpoint)
        served = json.loads(broker.stdout.readline())
    assert report["events"] == batches * BATCH, report
    cpu = {"producer": producer_cpu, "server": served["cpu"], "consumer": report["cpu"]}
    per_batch = {name: seconds / batches * 1e6 for name, seconds in cpu.items()}
    return batches * BATCH / (report["finished"] - started), per_batch


def run_transport(batches: int) -> tuple[float, dict[str, float]]:
    """Events per second, and CPU microseconds per batch of each process."""
    with _start("queue-server") as server:
        assert server.stdout is not None
        endpoint = server.stdout.readline().strip()
        try:
            with _start("consumer", endpoint) as reader:
                assert reader.stdout is not None
                reader.stdout.readline()  # ready
                started, producer_cpu = asyncio.run(producer(endpoint, batches))
                report = json.loads(reader.stdout.readline())
        finally:
            asyncio.run(_stop(endpoint))
        served = json.loads(server.stdout.readline())
    assert report["events"] == batches * BATCH, report
    cpu = {
        "producer": producer_cpu,
        "server": served["cpu"],
        "consumer": report["cpu"],
    }
    per_batch = {name: seconds / batches * 1e6 for name, seconds in cpu.items()}
    return batches * BATCH / (report["finished"] - started), per_batch


async def _stop(endpoint: str) -> None:
    async with Connection(endpoint, timeout=5.0) as connection:
        await connection.stop_server()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=4000, help="batches per run")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds")
    parser.add_argument("--quick", action="store_true", help="500 batches, 3 rounds")
    options = parser.parse_args(argv)
    batches, rounds = options.batches, options.rounds
    if options.quick:
        batches, rounds = 500, 3

    rates: dict[str, list[float]] = {"raw": [], "transport": []}
    cpu: dict[str, dict[str, list[float]]] = {"raw": {}, "transport": {}}
    for _ in range(rounds):
        for name, contender in (("raw", measure_raw), ("transport", run_transport)):
            rate, per_batch = contender(batches)
            rates[name].append(rate)
            for role, micros in per_batch.items():
                cpu[name].setdefault(role, []).append(micros)

    medians = {name: sorted(values)[len(values) // 2] for name, values in rates.items()}
    print(f"{batches} batches of {BATCH} events, median of {rounds} rounds")
    for name, rate in medians.items():
        print(f"{name:<10} {rate / 1e6:6.2f} M events/s")
    for name, spent in cpu.items():
        each = ", ".join(
            f"{role} {sorted(values)[len(values) // 2]:.0f}"
            for role, values in spent.items()
        )
        print(f"{name} CPU per batch, us (ZeroMQ threads included): {each}")
    ratio = medians["transport"] / medians["raw"]
    verdict = "met" if ratio >= 0.5 else "missed"
    print(f"transport / raw {ratio:.2f} (target 0.5: {verdict})")
    return 0


def _role(argv: list[str]) -> int:
    role, *args = argv
    if role == "raw-broker":
        raw_broker()
    elif role == "raw-consumer":
        raw_consumer(args[0])
    elif role == "queue-server":
        asyncio.run(queue_server())
    elif role == "consumer":
        asyncio.run(consumer(args[0]))
    else:
        return main(argv)
    return 0


if __name__ == "__main__":
    sys.exit(_role(sys.argv[1:]) if sys.argv[1:] else main([]))

"""Benchmark: batches through the queue server, against raw pyzmq round trips.

Both contenders move the same batches of 256 small strings from one process to
another, msgpack-encoded:

- `raw`: a DEALER sends each batch to a ROUTER in another process, which decodes it
  and answers a small credit; the next batch goes when the answer is in (blocking
  sockets, nothing else).
- `transport`: a producer process `put`s each batch into a `QueueServer` process
  through a `RemoteQueue` (waiting for room when the queue is full), and a consumer
  process `get`s and acknowledges them: three processes, the queue semantics in
  between.

Each round runs both, in turn, each in a fresh set of processes; the medians are
compared (target: transport / raw >= 0.5). Run from the repository root:
`python bench/transport.py [--quick]`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import msgpack
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


def raw_server() -> None:
    """Answers every batch with a credit until it gets an empty message."""
    context = zmq.Context()
    socket = context.socket(zmq.ROUTER)
    socket.bind("tcp://127.0.0.1:0")
    print(socket.getsockopt_string(zmq.LAST_ENDPOINT), flush=True)
    while True:
        identity, data = socket.recv_multipart()
        if not data:
            socket.send_multipart([identity, b""])
            break
        values = msgpack.unpackb(data)
        socket.send_multipart([identity, msgpack.packb([len(values), CAPACITY])])
    socket.close(1000)
    context.term()


def raw_client(endpoint: str, batches: int) -> float:
    """Sends `batches` batches, one round trip each; answers the seconds taken."""
    context = zmq.Context()
    socket = context.socket(zmq.DEALER)
    socket.connect(endpoint)
    payloads = [words(index) for index in range(batches)]
    started = time.perf_counter()
    for values in payloads:
        socket.send(msgpack.packb(values))
        msgpack.unpackb(socket.recv())
    seconds = time.perf_counter() - started
    socket.send(b"")
    socket.recv()
    socket.close(1000)
    context.term()
    return seconds


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
        offset, events = 0, 0
        cpu = time.process_time()
        while True:
            item = await queue.get("sink", BATCH)
            offset += size(item)
            await queue.ack("sink", offset)
            if item == END_OF_SOURCE:
                break
            events += len(item)
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
        for item in [*items, END_OF_SOURCE]:
            await _put_all(queue, item)
        return started, time.process_time() - cpu


async def _put_all(queue: object, item: Batch | object) -> None:
    while True:
        credit = await queue.put(item)  # type: ignore[attr-defined]
        total = size(item)  # type: ignore[arg-type]
        if credit.accepted >= total:
            return
        if credit.accepted:
            item = slice_item(item, credit.accepted, total)  # type: ignore[arg-type]
        await queue.wait_room(BATCH)  # type: ignore[attr-defined]


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
    """Events per second of raw round trips."""
    with _start("raw-server") as server:
        assert server.stdout is not None
        endpoint = server.stdout.readline().strip()
        seconds = raw_client(endpoint, batches)
    return batches * BATCH / seconds


def run_transport(batches: int) -> tuple[float, dict[str, float]]:
    """Events per second, and CPU microseconds per batch of each process."""
    with _start("queue-server") as server:
        assert server.stdout is not None
        endpoint = server.stdout.readline().strip()
        try:
            with _start("consumer", endpoint) as reader:
                assert reader.stdout is not None
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
    cpu: dict[str, list[float]] = {}
    for _ in range(rounds):
        rates["raw"].append(run_raw(batches))
        rate, per_batch = run_transport(batches)
        rates["transport"].append(rate)
        for name, micros in per_batch.items():
            cpu.setdefault(name, []).append(micros)

    medians = {name: sorted(values)[len(values) // 2] for name, values in rates.items()}
    print(f"{batches} batches of {BATCH} events, median of {rounds} rounds")
    for name, rate in medians.items():
        print(f"{name:<10} {rate / 1e6:6.2f} M events/s")
    spent = ", ".join(
        f"{name} {sorted(values)[len(values) // 2]:.0f}" for name, values in cpu.items()
    )
    print(f"transport CPU per batch, us (ZeroMQ threads included): {spent}")
    ratio = medians["transport"] / medians["raw"]
    verdict = "met" if ratio >= 0.5 else "missed"
    print(f"transport / raw {ratio:.2f} (target 0.5: {verdict})")
    return 0


def _role(argv: list[str]) -> int:
    role, *args = argv
    if role == "raw-server":
        raw_server()
    elif role == "queue-server":
        asyncio.run(queue_server())
    elif role == "consumer":
        asyncio.run(consumer(args[0]))
    else:
        return main(argv)
    return 0


if __name__ == "__main__":
    sys.exit(_role(sys.argv[1:]) if sys.argv[1:] else main([]))

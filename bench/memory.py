"""Memory under back-pressure: a slow sink behind a fast source, at 1x, 4x and 16x.

A source yields records of about 200 bytes as fast as it can; a `map` passes them
on; the sink sleeps a little on every batch, so the source is far faster than the
sink. With bounded queues the source is held back, and the peak memory stays the
same whatever the input's size. Each run is a child process; its peak resident
memory (`ru_maxrss`) is what it reports:

    python bench/memory.py            # 50,000 events at 1x: 50k, 200k, 800k
    python bench/memory.py --quick    # 10,000 events at 1x

For contrast, the same work through an asyncio pipeline whose queue is unbounded
(`unbounded`) shows what the measure reports when memory does grow with the input.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

from _common import median, report, run_child, table
from benchfns import records, slow_sink

SCRIPT = Path(__file__).resolve()
SIZES = (1, 4, 16)
BATCH = 256
DELAY = 0.001  # seconds per batch in the sink

FLOW = """\
# The slow sink of bench/memory.py.
flow bench_memory(events: int, delay: float)

use python benchfns as b

records = source b.records(events)
records | map str.upper | sink b.slow_sink(delay)
"""


def run_reflow(events: int, folder: str) -> None:
    from reflow_lang.frontend.api import compile_file
    from reflow_lang.runtime import run

    flow = Path(folder, "memory.flow")
    flow.write_text(FLOW, encoding="utf-8")
    params = {"events": str(events), "delay": str(DELAY)}
    compiled = compile_file(str(flow), params)
    if compiled.plan is None:
        msg = f"the benchmark flow does not compile: {compiled.diagnostics}"
        raise RuntimeError(msg)

    result = run(compiled.plan, handle_signals=False)
    if not result.ok:
        msg = f"the reflow job failed: {result.error}"
        raise RuntimeError(msg)


def run_unbounded(events: int, folder: str) -> None:
    asyncio.run(_unbounded(events))


async def _unbounded(events: int) -> None:
    queue: asyncio.Queue[list[str] | None] = asyncio.Queue()  # no bound: the contrast

    async def produce() -> None:
        batch = []
        for record in records(events):
            batch.append(record.upper())
            if len(batch) == BATCH:
                queue.put_nowait(batch)
                batch = []
        queue.put_nowait(batch)
        queue.put_nowait(None)

    async def consume() -> None:
        while (batch := await queue.get()) is not None:
            await asyncio.to_thread(slow_sink, batch, DELAY)

    await asyncio.gather(produce(), consume())


RUNNERS = {"reflow": run_reflow, "unbounded": run_unbounded}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="10,000 events at 1x")
    parser.add_argument("--events", type=int, help="events at 1x (default 50,000)")
    parser.add_argument("--rounds", type=int, default=1, help="rounds (default 1)")
    parser.add_argument("--child", choices=RUNNERS, help=argparse.SUPPRESS)
    parser.add_argument("--size", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.child:
        with tempfile.TemporaryDirectory() as folder:
            started = time.perf_counter()
            RUNNERS[args.child](args.size, folder)
            report(args.child, time.perf_counter() - started, args.size)
        return 0

    base = args.events or (10_000 if args.quick else 50_000)
    peaks: dict[tuple[str, int], list[float]] = {}
    for _ in range(args.rounds):
        for factor in SIZES:
            for name in RUNNERS:
                size = base * factor
                result = run_child(SCRIPT, ["--child", name, "--size", str(size)])
                peaks.setdefault((name, factor), []).append(result.peak_mb)
                print(
                    f"{name} {size:,} events: {result.peak_mb:.0f} MiB peak, "
                    f"{result.seconds:.1f} s",
                    flush=True,
                )

    rows = []
    for name in RUNNERS:
        cells = [f"{median(peaks[(name, f)]):.0f}" for f in SIZES]
        ratio = median(peaks[(name, 16)]) / median(peaks[(name, 1)])
        rows.append([name, *cells, f"{ratio:.2f}"])
    print()
    headers = ["program", *(f"{f}x MiB" for f in SIZES), "16x / 1x"]
    print(table(headers, rows))
    print("\nreflow's peak must not grow with the input: 16x / 1x should stay near 1.")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""What keeping order costs: a light map on 4 workers under each order, and memory
behind one slow event.

Throughput: numbers are split into parts (so that `partial` applies), and a
CPU-light `map` runs on the parts with `workers = 4` under `total`, `partial`,
`keyed(K)` and `none`, and with `workers = 1`; each is reported as a ratio to
`workers = 1`, and what each order costs against `none`, which must stay under
30 %. On 2 cores the runs are short and noisy: compare ratios of one run, with
`--rounds 5` or more. Memory: in a `total` stage on 4 workers, one event sleeps for
about the time 10,000 others take; the reorder buffer is bounded, so the peak memory
must stay near that of the same run without the slow event. Each run is a child
process:

    python bench/order.py             # 200,000 parts, 3 rounds
    python bench/order.py --quick     # 50,000 parts, 1 round
    python bench/order.py --delivery at_most_once   # without the replay filter

Every stage filters replays by id unless the flow is `at_most_once`: by one stamp
per batch on a `total` input, by a set of recent ids on weaker ones, so `none` pays
for the set at its sink; `--delivery at_most_once` shows the schedulers alone.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

from _common import median, report, run_child, table

SCRIPT = Path(__file__).resolve()
PARTS = 8  # parts per parent
ORDERS = ("total", "partial", "keyed(o.key)", "none")
SLOW_FOR = 10_000  # the slow event sleeps for the time of this many others

FLOW = """\
# The order benchmark of bench/order.py.
flow bench_order(parents: int, slow: float) [delivery = {delivery}]

use python order as o

numbers = source o.numbers(parents)
numbers | flat_map o.parts | map o.light(slow) [{options}] | sink o.drain
"""


# The user functions of the benchmark flow (`use python order as o`).


def numbers(count: int, start: int = 0) -> Iterator[int]:
    """`0 .. count - 1`, rewindable."""
    return iter(range(start, count))


def parts(number: int) -> list[str]:
    """A parent's parts: strings of about 200 bytes, so that holding them shows."""
    return [f"{number:>12}:{part:>4}:" + "x" * 180 for part in range(PARTS)]


def light(part: str, slow: float) -> str:
    """A CPU-light map; the very first part sleeps `slow` seconds."""
    if slow and part.startswith(f"{0:>12}:{0:>4}:"):
        time.sleep(slow)
    return part[:16]


def key(part: str) -> int:
    """A key with a few hundred values."""
    return hash(part[:12]) % 256


def drain(batch: Sequence[str]) -> None:
    """A sink that keeps nothing."""
    return None


def run_flow(
    parents: int, options: str, slow: float, folder: str, delivery: str
) -> float:
    """Runs the flow once; answers its seconds."""
    from reflow_lang.frontend.api import compile_file
    from reflow_lang.runtime import run

    flow = Path(folder, "order.flow")
    flow.write_text(FLOW.format(options=options, delivery=delivery), encoding="utf-8")
    compiled = compile_file(str(flow), {"parents": str(parents), "slow": str(slow)})
    if compiled.plan is None:
        msg = f"the benchmark flow does not compile: {compiled.diagnostics}"
        raise RuntimeError(msg)

    started = time.perf_counter()
    result = run(compiled.plan, handle_signals=False)
    seconds = time.perf_counter() - started
    if not result.ok:
        msg = f"the reflow job failed: {result.error}"
        raise RuntimeError(msg)
    return seconds


CONTENDERS = {
    "workers = 1": "workers = 1",
    **{f"{order}, workers = 4": f"workers = 4, order = {order}" for order in ORDERS},
}


def child(name: str, parents: int, slow: float, delivery: str) -> None:
    with tempfile.TemporaryDirectory() as folder:
        seconds = run_flow(parents, CONTENDERS[name], slow, folder, delivery)
    report(name, seconds, parents * PARTS, slow=slow)


def throughput(parents: int, rounds: int, delivery: str) -> dict[str, float]:
    """Parts per second of each contender (median over interleaved rounds)."""
    rates: dict[str, list[float]] = {name: [] for name in CONTENDERS}
    for _ in range(rounds):
        for name in CONTENDERS:
            measure = run_child(SCRIPT, _args(name, parents, 0.0, delivery))
            rates[name].append(measure.rate)
            print(f"{name}: {measure.rate:,.0f} parts/s", flush=True)
    return {name: median(values) for name, values in rates.items()}


def memory(
    parents: int, rate: float, rounds: int, delivery: str
) -> tuple[float, float, float]:
    """Peak MiB of `total` on 4 workers without and with the slow event; its sleep."""
    slow = SLOW_FOR / rate
    name = "total, workers = 4"
    plain, held = [], []
    for _ in range(rounds):
        plain.append(run_child(SCRIPT, _args(name, parents, 0.0, delivery)).peak_mb)
        held.append(run_child(SCRIPT, _args(name, parents, slow, delivery)).peak_mb)
    return median(plain), median(held), slow


def _args(name: str, parents: int, slow: float, delivery: str) -> list[str]:
    return [
        "--child",
        name,
        "--parents",
        str(parents),
        "--slow",
        str(slow),
        "--delivery",
        delivery,
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="50,000 parts, 1 round")
    parser.add_argument("--rounds", type=int, help="interleaved rounds (default 3)")
    parser.add_argument(
        "--delivery",
        choices=["at_most_once", "at_least_once", "exactly_once"],
        default="at_least_once",
        help="the flow's delivery (default at_least_once)",
    )
    parser.add_argument("--child", choices=CONTENDERS, help=argparse.SUPPRESS)
    parser.add_argument("--parents", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--slow", type=float, default=0.0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(args.child, args.parents, args.slow, args.delivery)
        return 0

    parents = (50_000 if args.quick else 200_000) // PARTS
    rounds = args.rounds or (1 if args.quick else 3)
    rates = throughput(parents, rounds, args.delivery)
    base, none = rates["workers = 1"], rates["none, workers = 4"]
    rows = [
        [name, f"{rate:,.0f}", f"{rate / base:.2f}", f"{rate / none:.2f}"]
        for name, rate in rates.items()
    ]
    print()
    print(table(["contender", "parts/s", "/ workers = 1", "/ none"], rows))
    print()
    for order in ORDERS[:-1]:
        cost = 1 - rates[f"{order}, workers = 4"] / none
        print(f"`{order}` costs {cost:.0%} against `none` (must stay under 30 %)")

    total = rates["total, workers = 4"]
    plain, held, slow = memory(parents, total, rounds, args.delivery)
    print(
        f"\npeak memory, total on 4 workers: {plain:.0f} MiB; with one event "
        f"sleeping {slow:.2f} s (the time of {SLOW_FOR:,} others): {held:.0f} MiB"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

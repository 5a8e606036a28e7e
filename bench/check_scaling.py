"""How checking time grows with a flow's size: 100, 1,000 and 10,000 stages.

Generates clean flows of about N stages (a chain of bindings, ten stages each, with
a `def` fragment, splits and rejoins, parallel workers and partial order), then
times `compile_file` on each (parse, every checker pass, and the plan) in a fresh
child process: the first run (cold: modules still to import and signatures to read),
the median of the runs after it, and one run with Python's cyclic garbage collector
off, to show its share. Prints the time per stage: it must stay flat as the flow
grows (linear growth), and 10,000 stages must check in under 3 seconds, cold:

    python bench/check_scaling.py
    python bench/check_scaling.py --quick    # 100 and 1,000 stages only
"""

from __future__ import annotations

import argparse
import gc
import itertools
import sys
import tempfile
import time
from pathlib import Path

from _common import median, report, run_child, table

SCRIPT = Path(__file__).resolve()
SIZES = (100, 1_000, 10_000)
LIMIT_SECONDS = 3.0

HEADER = """\
# A generated flow of about {stages} stages, for bench/check_scaling.py.
flow scaling(path: path = "examples/data/alice.txt", out: path = "-")

use text

def clean(s) = s | map str.strip | map str.lower

b0 = source text.lines(path)
"""

# Ten stages: a split whose parts run in parallel in partial order, then rejoin.
BLOCK = """\
b{i} = b{j}
    | map str.strip
    | clean
    | flat_map text.words [expansion = 4]
    | map str.upper [workers = 2, order = partial]
    | filter str.isalpha
    | rejoin len
    | map str
    | map str.title
    | filter str.isprintable
"""

FOOTER = "b{last} | sink text.write_lines(out)\n"


def make_flow(stages: int) -> tuple[str, int]:
    """The flow text and its exact number of stages (source and sink included)."""
    blocks = max(1, round((stages - 2) / 10))
    parts = [HEADER.format(stages=stages)]
    parts += [BLOCK.format(i=i, j=i - 1) for i in range(1, blocks + 1)]
    parts.append(FOOTER.format(last=blocks))
    return "".join(parts), 2 + 10 * blocks


def child(stages: int, repeats: int) -> None:
    """Times `compile_file` on a flow of `stages` stages (the child's entry point)."""
    from reflow_lang.frontend.api import compile_file

    text, exact = make_flow(stages)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder, f"scaling_{stages}.flow")
        path.write_text(text, encoding="utf-8")
        started = time.perf_counter()
        compiled = compile_file(str(path))
        cold = time.perf_counter() - started
        if not compiled.ok or compiled.plan is None:
            first = compiled.errors[0] if compiled.errors else "no plan"
            msg = f"the generated flow of {exact} stages does not check clean: {first}"
            raise SystemExit(msg)

        tasks = len(compiled.plan.tasks)
        del compiled
        warm = median([_timed(path, collect=True) for _ in range(repeats)])
        without_gc = _timed(path, collect=False)
    report("check", warm, exact, cold=cold, tasks=tasks, no_gc=without_gc)


def _timed(path: Path, *, collect: bool) -> float:
    # Each run starts with no garbage of the last one left; `collect=False` runs
    # with the cyclic garbage collector off, to show what its passes cost.
    from reflow_lang.frontend.api import compile_file

    gc.collect()
    if not collect:
        gc.disable()
    try:
        started = time.perf_counter()
        compile_file(str(path))
        return time.perf_counter() - started
    finally:
        gc.enable()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="100 and 1,000 only")
    parser.add_argument("--repeats", type=int, default=3, help="warm runs (default 3)")
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.child:
        child(args.child, args.repeats)
        return 0

    sizes = SIZES[:2] if args.quick else SIZES
    rows, per_stage = [], {}
    for size in sizes:
        result = run_child(
            SCRIPT, ["--child", str(size), "--repeats", str(args.repeats)]
        )
        per_stage[size] = result.seconds / result.events
        cold = result.extra["cold"]
        rows.append([
            f"{result.events:,}", f"{cold:.3f}", f"{result.seconds:.3f}",
            f"{result.extra['no_gc']:.3f}", f"{per_stage[size] * 1e6:.0f}",
            f"{result.extra['no_gc'] / result.events * 1e6:.0f}",
        ])  # fmt: skip
        print(f"{result.events:,} stages: {result.seconds:.3f} s", flush=True)

    print()
    headers = ["stages", "cold s", "warm s", "no GC s", "µs/stage", "no GC µs/stage"]
    print(table(headers, rows))
    for smaller, larger in itertools.pairwise(sizes):
        growth = per_stage[larger] / per_stage[smaller]
        print(f"per-stage time, {larger:,} vs {smaller:,} stages: x{growth:.2f}")
    print("(linear growth keeps these near 1; at 100 stages fixed costs weigh more)")
    if sizes[-1] == SIZES[-1]:
        cold = float(rows[-1][1])
        verdict = "ok" if cold < LIMIT_SECONDS else "TOO SLOW"
        print(
            f"10,000 stages, cold: {cold:.2f} s "
            f"(limit {LIMIT_SECONDS:.0f} s): {verdict}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The word-count benchmark of PERFORMANCE.md: reflow against its baselines.

Generates the corpus (200,000 lines of 5 to 15 words, Zipf-distributed over about
48,000 distinct lower-case words, a few capitalised; seeded) into a temporary
folder, then runs each contender in its own process, in interleaved rounds, and
prints words per second, peak memory and the ratios, all measured in this run:

    python bench/wordcount.py                   # the full corpus, 5 rounds
    python bench/wordcount.py --quick           # 20,000 lines, 3 rounds
    python bench/wordcount.py --job stateless   # or `--job all` for both jobs

The jobs, as in PERFORMANCE.md:
- `wordcount` (the default): the lines of the corpus (`text.lines`), split into
  words (`text.words`), lower-cased (`str.lower`), counted per word, and the counts
  written in word order as TSV (`text.write_tsv`);
- `stateless`: the words longer than 3 letters kept, upper-cased (`str.upper`), and
  each written as a line (`text.write_lines`).

Every contender does the same work with the same functions; the parent checks that
all of them wrote the same bytes. Contenders:
- `loop`: a plain Python loop (the floor of per-event Python work);
- `pipeline`: a hand-written asyncio pipeline of three stages (read; split and the
  rest; count or write) linked by bounded queues that carry batches of 256 events;
- `reflow`: the runtime API on the compiled plan of the job's flow (the compile is
  timed apart);
- `bytewax`: Bytewax 0.21 with one worker, if it is installed (`pip install
  bytewax==0.21.1`, the `bench` extra); skipped with a message otherwise.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import importlib.util
import itertools
import random
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Iterable
from pathlib import Path
from typing import Any

from _common import (
    ChildFailed,
    Measure,
    add_corpus_options,
    median,
    report,
    run_child,
    table,
)
from benchfns import longer_than
from reflow_lang.stdlib import text

SCRIPT = Path(__file__).resolve()
BATCH = 256
QUEUE_ITEMS = 8  # 8 batches of 256: the runtime's default capacity of 2048 events
MIN_LEN = 3
CONTENDERS = ("loop", "pipeline", "reflow", "bytewax")
JOBS = ("wordcount", "stateless")

FLOWS = {
    "wordcount": """\
# The word count of bench/wordcount.py.
flow bench_wordcount(path: path, out: path)

use text

lines = source text.lines(path)
lines
    | flat_map text.words
    | map str.lower
    | count [by = self]
    | sink text.write_tsv(out)
""",
    "stateless": """\
# The stateless job of bench/wordcount.py.
flow bench_stateless(path: path, out: path)

use text
use python benchfns as b

lines = source text.lines(path)
lines
    | flat_map text.words
    | filter b.longer_than(3)
    | map str.upper
    | sink text.write_lines(out)
""",
}


# -- the corpus -------------------------------------------------------------------


def make_corpus(path: Path, lines: int, seed: int) -> tuple[int, int]:
    """Writes the corpus; returns its number of words and of distinct words."""
    rng = random.Random(seed)
    vocabulary = _vocabulary(rng, 48_500)
    weights = list(itertools.accumulate(1.0 / rank for rank in range(1, 48_501)))
    lengths = [rng.randint(5, 15) for _ in range(lines)]
    tokens = rng.choices(vocabulary, cum_weights=weights, k=sum(lengths))

    # About one word in a hundred is capitalised, as at the start of a sentence.
    for index in rng.sample(range(len(tokens)), len(tokens) // 100):
        tokens[index] = tokens[index].capitalize()

    with path.open("w", encoding="utf-8") as file:
        position = 0
        for length in lengths:
            file.write(" ".join(tokens[position : position + length]) + "\n")
            position += length
    return len(tokens), len({token.lower() for token in tokens})


def _vocabulary(rng: random.Random, size: int) -> list[str]:
    seen: set[str] = set()
    words: list[str] = []
    while len(words) < size:
        word = "".join(rng.choices("abcdefghijklmnopqrstuvwxyz", k=rng.randint(2, 11)))
        if word not in seen:
            seen.add(word)
            words.append(word)
    return words


# -- the two jobs, as the baselines do them ------------------------------------------


def _lower_words(line: str) -> list[str]:
    return [word.lower() for word in text.words(line)]


def _long_upper_words(line: str) -> list[str]:
    return [word.upper() for word in text.words(line) if longer_than(word, MIN_LEN)]


class _Counts:
    """The word count's end: counts per word, written in word order at the end."""

    def __init__(self, out: str) -> None:
        self.out = out
        self.counts: dict[str, int] = {}

    def take(self, words: list[str]) -> None:
        counts = self.counts
        for word in words:
            counts[word] = counts.get(word, 0) + 1

    def close(self) -> None:
        rows = sorted(self.counts.items())
        for start in range(0, len(rows), BATCH):
            text.write_tsv(rows[start : start + BATCH], self.out)
        text.write_tsv.end(self.out)


class _Lines:
    """The stateless job's end: every word written, a batch of 256 at a time."""

    def __init__(self, out: str) -> None:
        self.out = out
        self.held: list[str] = []

    def take(self, words: list[str]) -> None:
        self.held += words
        while len(self.held) >= BATCH:
            text.write_lines(self.held[:BATCH], self.out)
            del self.held[:BATCH]

    def close(self) -> None:
        if self.held:
            text.write_lines(self.held, self.out)
        text.write_lines.end(self.out)


TRANSFORMS: dict[str, Callable[[str], list[str]]] = {
    "wordcount": _lower_words,
    "stateless": _long_upper_words,
}
ENDS: dict[str, Callable[[str], _Counts | _Lines]] = {
    "wordcount": _Counts,
    "stateless": _Lines,
}


# -- the contenders (each runs in a child process) ----------------------------------


def run_loop(job: str, corpus: str, out: str) -> dict[str, float]:
    transform, end = TRANSFORMS[job], ENDS[job](out)
    for line in text.lines(corpus):
        end.take(transform(line))
    end.close()
    return {}


def run_pipeline(job: str, corpus: str, out: str) -> dict[str, float]:
    asyncio.run(_pipeline(job, corpus, out))
    return {}


async def _pipeline(job: str, corpus: str, out: str) -> None:
    lines: asyncio.Queue[list[str] | None] = asyncio.Queue(QUEUE_ITEMS)
    words: asyncio.Queue[list[str] | None] = asyncio.Queue(QUEUE_ITEMS)
    end = ENDS[job](out)
    await asyncio.gather(
        _read(corpus, lines),
        _transform(TRANSFORMS[job], lines, words),
        _end(words, end),
    )
    end.close()


async def _read(corpus: str, output: asyncio.Queue[list[str] | None]) -> None:
    batch: list[str] = []
    for line in text.lines(corpus):
        batch.append(line)
        if len(batch) == BATCH:
            await output.put(batch)
            batch = []
    await _finish(batch, output)


async def _transform(
    transform: Callable[[str], list[str]],
    inputs: asyncio.Queue[list[str] | None],
    output: asyncio.Queue[list[str] | None],
) -> None:
    batch: list[str] = []
    async for lines in _batches(inputs):
        for line in lines:
            batch += transform(line)
            if len(batch) >= BATCH:
                await output.put(batch[:BATCH])
                del batch[:BATCH]
    await _finish(batch, output)


async def _end(inputs: asyncio.Queue[list[str] | None], end: _Counts | _Lines) -> None:
    async for words in _batches(inputs):
        end.take(words)


async def _batches(queue: asyncio.Queue[list[str] | None]) -> AsyncIterator[list[str]]:
    while (batch := await queue.get()) is not None:
        yield batch


async def _finish(batch: list[str], output: asyncio.Queue[list[str] | None]) -> None:
    if batch:
        await output.put(batch)
    await output.put(None)


def run_reflow(job: str, corpus: str, out: str) -> dict[str, float]:
    from reflow_lang.frontend.api import compile_file
    from reflow_lang.runtime import run

    started = time.perf_counter()
    flow = Path(out).with_suffix(".flow")
    flow.write_text(FLOWS[job], encoding="utf-8")
    compiled = compile_file(str(flow), {"path": corpus, "out": out})
    if compiled.plan is None:
        msg = f"the benchmark flow does not compile: {compiled.diagnostics}"
        raise RuntimeError(msg)
    compile_seconds = time.perf_counter() - started

    result = run(compiled.plan, handle_signals=False)
    if not result.ok:
        msg = f"the reflow job failed: {result.error}"
        raise RuntimeError(msg)
    return {"compile_seconds": compile_seconds}


def run_bytewax(job: str, corpus: str, out: str) -> dict[str, float]:
    import bytewax.operators as op
    from bytewax.connectors.files import FileSource
    from bytewax.dataflow import Dataflow
    from bytewax.testing import TestingSink, run_main

    flow = Dataflow(job)
    lines = op.input("lines", flow, FileSource(corpus))
    words = op.flat_map("words", lines, text.words)
    if job == "stateless":
        long = op.filter("long", words, lambda word: longer_than(word, MIN_LEN))
        op.output("out", op.map("upper", long, str.upper), _bytewax_lines(out))
        run_main(flow)  # type: ignore[no-untyped-call]
        text.write_lines.end(out)
        return {}

    counted: list[tuple[str, int]] = []
    lower = op.map("lower", words, str.lower)
    counts = op.count_final("count", lower, lambda word: word)
    op.output("out", counts, TestingSink(counted))
    run_main(flow)  # type: ignore[no-untyped-call]
    end = _Counts(out)
    end.counts = dict(counted)
    end.close()
    return {}


def _bytewax_lines(out: str) -> Any:
    # A sink that hands each of Bytewax's batches to `text.write_lines`, as reflow's
    # sink does (Bytewax's own FileSink also calls fsync on every batch).
    from bytewax.outputs import DynamicSink, StatelessSinkPartition

    class Partition(StatelessSinkPartition[str]):
        def write_batch(self, items: list[str]) -> None:
            text.write_lines(items, out)

    class Sink(DynamicSink[str]):
        def build(
            self, step_id: str, worker_index: int, worker_count: int
        ) -> Partition:
            return Partition()

    return Sink()


RUNNERS: dict[str, Callable[[str, str, str], dict[str, float]]] = {
    "loop": run_loop,
    "pipeline": run_pipeline,
    "reflow": run_reflow,
    "bytewax": run_bytewax,
}


def child(job: str, contender: str, corpus: str, out: str, words: int) -> None:
    """Runs one contender once and reports its time (the child's entry point)."""
    started = time.perf_counter()
    extra = RUNNERS[contender](job, corpus, out)
    seconds = time.perf_counter() - started - extra.get("compile_seconds", 0.0)
    report(contender, seconds, words, **extra)


# -- the parent ---------------------------------------------------------------------


def available(contenders: Iterable[str]) -> list[str]:
    """The contenders that can run here; says why a missing one is skipped."""
    chosen = []
    for name in contenders:
        if name == "bytewax" and importlib.util.find_spec("bytewax") is None:
            print("bytewax: not installed, skipped (pip install bytewax==0.21.1)")
            continue
        if name == "reflow" and importlib.util.find_spec("reflow_lang.runtime") is None:
            print("reflow: the runtime is not importable, skipped")
            continue
        chosen.append(name)
    return chosen


def measure(
    job: str, contenders: list[str], corpus: Path, words: int, rounds: int
) -> dict[str, list[Measure]]:
    """Interleaved rounds: every contender once per round, in turn."""
    results: dict[str, list[Measure]] = {name: [] for name in contenders}
    digests: dict[str, str] = {}
    for number in range(1, rounds + 1):
        line = []
        for name in list(contenders):
            out = corpus.with_name(f"{job}-{name}-{number}.out")
            args = ["--child", name, "--job", job, "--corpus", str(corpus)]
            try:
                result = run_child(
                    SCRIPT, [*args, "--out", str(out), "--words", str(words)]
                )
            except ChildFailed as exc:
                print(f"{name}: failed, dropped from the comparison\n{exc}")
                contenders.remove(name)
                continue
            results[name].append(result)
            digests[name] = hashlib.sha256(out.read_bytes()).hexdigest()
            out.unlink()
            line.append(f"{name} {result.seconds:.2f}s")
        print(f"{job}, round {number}/{rounds}: " + ", ".join(line), flush=True)
    _check_same_output(digests)
    return {name: runs for name, runs in results.items() if runs}


def _check_same_output(digests: dict[str, str]) -> None:
    if len(set(digests.values())) > 1:
        detail = ", ".join(f"{name} {digest[:12]}" for name, digest in digests.items())
        msg = f"the contenders wrote different outputs: {detail}"
        raise SystemExit(msg)
    print("every contender wrote the same output")


def summarise(job: str, results: dict[str, list[Measure]], words: int) -> None:
    """Prints the table of medians and the ratios."""
    seconds = {
        name: median([r.seconds for r in runs]) for name, runs in results.items()
    }
    rates = {name: words / taken for name, taken in seconds.items()}
    rows = []
    for name, runs in results.items():
        peak = median([r.peak_mb for r in runs])
        rate = f"{rates[name] / 1e6:.2f} M"
        rows.append([name, rate, f"{seconds[name]:.3f}", f"{peak:.0f}"])
    print(f"\n{job}:")
    print(table(["contender", "words/s", "median s", "peak MiB"], rows))
    compile_times = [r.extra["compile_seconds"] for r in results.get("reflow", [])]
    if compile_times:
        print(f"(reflow's compile, not counted above: {median(compile_times):.3f} s)")

    for top, bottom, target in [
        ("reflow", "pipeline", "target >= 0.5"),
        ("reflow", "bytewax", ""),
        ("loop", "pipeline", ""),
    ]:
        if top in rates and bottom in rates:
            note = f"  ({target})" if target else ""
            print(f"{top} / {bottom}: {rates[top] / rates[bottom]:.2f}{note}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_corpus_options(parser, quick="20,000 lines, 3 rounds")
    parser.add_argument("--job", choices=[*JOBS, "all"], default="wordcount")
    parser.add_argument(
        "--only", nargs="+", choices=CONTENDERS, default=list(CONTENDERS)
    )
    parser.add_argument("--child", choices=CONTENDERS, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.child:
        child(args.job, args.child, args.corpus, args.out, args.words)
        return 0

    lines = args.lines or (20_000 if args.quick else 200_000)
    rounds = args.rounds or (3 if args.quick else 5)
    jobs = JOBS if args.job == "all" else (args.job,)
    contenders = available(args.only)
    with tempfile.TemporaryDirectory(prefix="reflow-bench-") as scratch:
        corpus = Path(scratch, "corpus.txt")
        words, distinct = make_corpus(corpus, lines, args.seed)
        print(
            f"corpus: {lines:,} lines, {words:,} words, {distinct:,} distinct "
            f"lower-case words (seed {args.seed}); {rounds} interleaved rounds"
        )
        for job in jobs:
            summarise(job, measure(job, list(contenders), corpus, words, rounds), words)
    return 0


if __name__ == "__main__":
    sys.exit(main())

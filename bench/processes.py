"""Benchmark: a job run as OS processes, against the same job run locally and raw pyzmq.

The jobs and corpus of `wordcount.py` (its generator, seeded), three contenders,
each run in a child process of its own, in interleaved rounds:

- `local`: `reflow_lang.runtime.run` on the compiled plan (one process, asyncio);
- `process`: `reflow_lang.runtime.runner.run_processes` on the same plan: a queue
  server and a process per worker unit under a supervisor, over ZeroMQ on loopback
  (the processes' start and end are counted: it is what a user waits for);
- `raw`: the raw contender of `transport.py` (three processes, blocking pyzmq and
  msgpack, the same bound and reads) moving as many events as the corpus has words,
  in batches of 256 short strings: the ceiling of moving them between processes
  with nothing but pyzmq, one hop.

It prints words per second of each (medians) and the ratios process / local and
process / raw, measured in this run; the compile of each flow is timed apart and not
counted. Run from the repository root:

    python bench/processes.py                   # 200,000 lines, 5 rounds, both jobs
    python bench/processes.py --quick           # 10,000 lines, 2 rounds
    python bench/processes.py --job wordcount   # or `stateless`
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import sys
import tempfile
import time
from pathlib import Path
from types import ModuleType

from _common import Measure, add_corpus_options, median, report, run_child, table

SCRIPT = Path(__file__).resolve()
BENCH = SCRIPT.parent
CONTENDERS = ("local", "process", "raw")
JOBS = ("wordcount", "stateless")


def _load(name: str) -> ModuleType:
    # By path: `transport` would clash with the test package of that name.
    spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCH / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def run_reflow(job: str, corpus: str, out: str, *, processes: bool) -> float:
    """Runs the job's flow locally or as processes; answers the compile's seconds."""
    from reflow_lang.frontend.api import compile_file
    from reflow_lang.runtime import run
    from reflow_lang.runtime.runner import run_processes

    started = time.perf_counter()
    flow = Path(out).with_suffix(".flow")
    flow.write_text(_load("wordcount").FLOWS[job], encoding="utf-8")
    compiled = compile_file(str(flow), {"path": corpus, "out": out})
    if compiled.plan is None:
        msg = f"the benchmark flow does not compile: {compiled.diagnostics}"
        raise RuntimeError(msg)
    compile_seconds = time.perf_counter() - started

    if processes:
        result = run_processes(compiled.plan, handle_signals=False)
    else:
        result = run(compiled.plan, handle_signals=False)
    if not result.ok:
        msg = f"the reflow job failed ({'processes' if processes else 'local'}): "
        raise RuntimeError(msg + str(result.error))
    return compile_seconds


def child(job: str, contender: str, corpus: str, out: str, words: int) -> None:
    """Runs one contender once and reports its time (the child's entry point)."""
    if contender == "raw":
        batches = -(-words // _load("transport").BATCH)
        rate, per_batch = _load("transport").measure_raw(batches)
        events = batches * _load("transport").BATCH
        report(contender, events / rate, events, cpu_per_batch=per_batch)
        return
    started = time.perf_counter()
    compile_seconds = run_reflow(job, corpus, out, processes=contender == "process")
    seconds = time.perf_counter() - started - compile_seconds
    report(contender, seconds, words, compile_seconds=compile_seconds)


def measure(
    jobs: tuple[str, ...], corpus: Path, words: int, rounds: int
) -> dict[str, dict[str, list[Measure]]]:
    """Interleaved rounds: in each, `raw` once, then every job locally and as
    processes; answers the measures by job (`raw` under each job)."""
    results: dict[str, dict[str, list[Measure]]] = {
        job: {name: [] for name in CONTENDERS} for job in jobs
    }
    for number in range(1, rounds + 1):
        raw = _child(jobs[0], "raw", corpus, words, number)
        line = [f"raw {raw.seconds:.2f}s"]
        for job in jobs:
            results[job]["raw"].append(raw)
            digests = set()
            for name in ("local", "process"):
                measured, digest = _run(job, name, corpus, words, number)
                results[job][name].append(measured)
                digests.add(digest)
                line.append(f"{job} {name} {measured.seconds:.2f}s")
            if len(digests) != 1:
                msg = f"{job}: the local and process runs wrote different outputs"
                raise SystemExit(msg)
        print(f"round {number}/{rounds}: " + ", ".join(line), flush=True)
    return results


def _child(job: str, name: str, corpus: Path, words: int, number: int) -> Measure:
    out = corpus.with_name(f"{job}-{name}-{number}.out")
    args = ["--child", name, "--job", job, "--corpus", str(corpus), "--out", str(out)]
    return run_child(SCRIPT, [*args, "--words", str(words)])


def _run(
    job: str, name: str, corpus: Path, words: int, number: int
) -> tuple[Measure, str]:
    measured = _child(job, name, corpus, words, number)
    out = corpus.with_name(f"{job}-{name}-{number}.out")
    digest = hashlib.sha256(out.read_bytes()).hexdigest()
    out.unlink()
    return measured, digest


def summarise(job: str, results: dict[str, list[Measure]]) -> None:
    """Prints the table of medians and the ratios."""
    rates = {name: median([r.rate for r in runs]) for name, runs in results.items()}
    rows = []
    for name, runs in results.items():
        seconds = median([r.seconds for r in runs])
        peak = median([r.peak_mb for r in runs])
        rows.append(
            [name, f"{rates[name] / 1e6:.2f} M", f"{seconds:.3f}", f"{peak:.0f}"]
        )
    print(f"\n{job}:")
    print(table(["contender", "events/s", "median s", "peak MiB"], rows))
    compiles = [r.extra["compile_seconds"] for r in results["local"]]
    print(f"(the flow's compile, not counted above: {median(compiles):.3f} s)")
    print(f"process / local: {rates['process'] / rates['local']:.2f}")
    print(f"process / raw: {rates['process'] / rates['raw']:.2f}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_corpus_options(parser, quick="10,000 lines, 2 rounds")
    parser.add_argument("--job", choices=[*JOBS, "all"], default="all")
    parser.add_argument("--child", choices=CONTENDERS, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.child:
        child(args.job, args.child, args.corpus, args.out, args.words)
        return 0

    lines = args.lines or (10_000 if args.quick else 200_000)
    rounds = args.rounds or (2 if args.quick else 5)
    jobs = JOBS if args.job == "all" else (args.job,)
    with tempfile.TemporaryDirectory(prefix="reflow-bench-") as scratch:
        corpus = Path(scratch, "corpus.txt")
        words, distinct = _load("wordcount").make_corpus(corpus, lines, args.seed)
        print(
            f"corpus: {lines:,} lines, {words:,} words, {distinct:,} distinct "
            f"lower-case words (seed {args.seed}); {rounds} interleaved rounds"
        )
        results = measure(jobs, corpus, words, rounds)
    for job in jobs:
        summarise(job, results[job])
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Helpers shared by the benchmark scripts: child processes, peak memory, tables.

Each contender runs in a child process of its own, so that its peak memory
(`ru_maxrss`) is its own and no contender warms a cache for another. The child prints
one JSON object on its last line of standard output; the parent collects them.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent


@dataclass(frozen=True, slots=True)
class Measure:
    """What one child process reports about one run."""

    contender: str
    seconds: float
    events: int
    peak_mb: float
    extra: dict[str, Any]

    @property
    def rate(self) -> float:
        """Events per second."""
        return self.events / self.seconds if self.seconds > 0 else float("inf")


class ChildFailed(RuntimeError):
    """A child process exited with an error; its standard error is the message."""


def peak_mb() -> float:
    """This process's peak resident memory so far, in MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def report(contender: str, seconds: float, events: int, **extra: Any) -> None:
    """Prints a child's result as the JSON line the parent reads."""
    record = {
        "contender": contender,
        "seconds": seconds,
        "events": events,
        "peak_mb": peak_mb(),
        "extra": extra,
    }
    sys.stdout.write(json.dumps(record) + "\n")
    sys.stdout.flush()


def run_child(script: Path, args: Sequence[str], timeout: float = 900.0) -> Measure:
    """Runs `python script args...` and reads the JSON line it prints last."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [str(BENCH), str(ROOT), env.get("PYTHONPATH", "")]
    ).rstrip(os.pathsep)
    done = subprocess.run(
        [sys.executable, str(script), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        check=False,
        cwd=ROOT,
    )
    if done.returncode != 0:
        msg = f"`{script.name} {' '.join(args)}` exited with {done.returncode}:\n"
        raise ChildFailed(msg + done.stderr[-3000:])

    record = json.loads(done.stdout.strip().splitlines()[-1])
    return Measure(
        record["contender"],
        record["seconds"],
        record["events"],
        record["peak_mb"],
        record["extra"],
    )


def add_corpus_options(parser: argparse.ArgumentParser, quick: str) -> None:
    """The options of a benchmark over the word-count corpus, and the hidden ones
    its parent passes to each child; `quick` says what `--quick` means."""
    parser.add_argument("--quick", action="store_true", help=quick)
    parser.add_argument("--rounds", type=int, help="interleaved rounds (default 5)")
    parser.add_argument("--lines", type=int, help="corpus lines (default 200,000)")
    parser.add_argument("--seed", type=int, default=1, help="corpus seed (default 1)")
    parser.add_argument("--corpus", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    parser.add_argument("--words", type=int, help=argparse.SUPPRESS)


def median(values: Sequence[float]) -> float:
    """The median (of a few rounds: robust to one slow round)."""
    return statistics.median(values)


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A plain-text table, columns right-aligned except the first."""
    widths = [
        max(len(str(x)) for x in column) for column in zip(headers, *rows, strict=True)
    ]
    lines = []
    for row in [headers, *rows]:
        cells = [str(row[0]).ljust(widths[0])]
        cells += [
            str(cell).rjust(width)
            for cell, width in zip(row[1:], widths[1:], strict=True)
        ]
        lines.append("  ".join(cells))
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(lines)

"""Tests of the benchmarks' parts: the corpus, the generated flows, the contenders.

The benchmarks themselves are run by hand (`bench/README.md`); these tests make sure
that what they measure is right: the corpus has the documented shape, every
generated flow checks clean, and every contender of `bench/wordcount.py` writes the
same output on a small corpus.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from reflow_lang.frontend.api import compile_file

BENCH = Path(__file__).resolve().parent.parent / "bench"


@pytest.fixture(scope="module")
def bench() -> Iterator[dict[str, ModuleType]]:
    sys.path.insert(0, str(BENCH))
    try:
        import check_scaling
        import memory
        import processes
        import wordcount

        yield {
            "wordcount": wordcount,
            "memory": memory,
            "check_scaling": check_scaling,
            "processes": processes,
        }
    finally:
        sys.path.remove(str(BENCH))


def test_corpus_has_the_documented_shape(
    bench: dict[str, ModuleType], tmp_path: Path
) -> None:
    path, again = tmp_path / "a.txt", tmp_path / "b.txt"

    words, distinct = bench["wordcount"].make_corpus(path, 5_000, seed=3)
    bench["wordcount"].make_corpus(again, 5_000, seed=3)

    lines = path.read_text().splitlines()
    tokens = [token for line in lines for token in line.split()]
    assert len(lines) == 5_000
    assert all(5 <= len(line.split()) <= 15 for line in lines)
    assert words == len(tokens)
    assert distinct == len({token.lower() for token in tokens})
    assert 0.005 < sum(t[0].isupper() for t in tokens) / words < 0.02
    assert path.read_bytes() == again.read_bytes()


@pytest.mark.parametrize("job", ["wordcount", "stateless"])
def test_wordcount_contenders_write_the_same_output(
    bench: dict[str, ModuleType], tmp_path: Path, job: str
) -> None:
    wordcount = bench["wordcount"]
    corpus = tmp_path / "corpus.txt"
    wordcount.make_corpus(corpus, 2_000, seed=5)
    outputs = {}

    for name in ("loop", "pipeline", "reflow"):
        out = tmp_path / f"{name}.out"
        wordcount.RUNNERS[name](job, str(corpus), str(out))
        outputs[name] = out.read_bytes()

    assert outputs["loop"]
    assert outputs["pipeline"] == outputs["loop"]
    assert outputs["reflow"] == outputs["loop"]


def test_memory_flow_checks_clean(bench: dict[str, ModuleType], tmp_path: Path) -> None:
    flow = tmp_path / "memory.flow"
    flow.write_text(bench["memory"].FLOW)

    compiled = compile_file(str(flow), {"events": "10", "delay": "0.0"})

    assert compiled.diagnostics == ()


@pytest.mark.parametrize("stages", [100, 1_000])
def test_scaling_flows_check_clean(
    bench: dict[str, ModuleType], tmp_path: Path, stages: int
) -> None:
    text, exact = bench["check_scaling"].make_flow(stages)
    flow = tmp_path / "scaling.flow"
    flow.write_text(text)

    compiled = compile_file(str(flow))

    assert compiled.diagnostics == ()
    assert compiled.plan is not None
    assert abs(exact - stages) <= 10


def test_processes_prints_rates_and_ratios_of_both_jobs(
    bench: dict[str, ModuleType], capsys: pytest.CaptureFixture[str]
) -> None:
    # A tiny corpus, one round: the shape of the output, not the speed.
    status = bench["processes"].main(["--quick", "--lines", "300", "--rounds", "1"])

    out = capsys.readouterr().out
    assert status == 0
    assert re.search(r"^round 1/1: raw [0-9.]+s, wordcount local [0-9.]+s", out, re.M)
    for job in ("wordcount", "stateless"):
        section = out.split(f"\n{job}:\n")[1]
        for contender in ("local", "process", "raw"):
            assert re.search(rf"^{contender} +[0-9.]+ M +[0-9.]+ +\d+$", section, re.M)
        assert re.search(r"^process / local: [0-9.]+$", section, re.M)
        assert re.search(r"^process / raw: [0-9.]+$", section, re.M)

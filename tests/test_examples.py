"""Tests of the examples: each checks clean, runs, and gives the right results.

Every expected result is computed here in plain Python from the data files, with the
examples' own helper functions (which their doctests test), so that a run of a flow
is compared with what the flow means, not with a stored copy of its output. Each
result test runs in both modes (the `mode` fixture): in this process, and as
processes around a queue server (`reflowc run --processes`). The snapshots of the
compiler's outputs for the examples live in `test_snapshots.py`.
"""

from __future__ import annotations

import doctest
import hashlib
import json
import re
from collections import Counter
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from reflow_lang.stdlib import text

from reflow_lang.frontend import ast
from reflow_lang.frontend.api import compile_file
from reflow_lang.loader import load_module
from reflow_lang.plan import DEFAULT_CAPACITY, Plan
from reflow_lang.runtime import JobResult, run
from reflow_lang.runtime.runner import run_processes

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
DATA = EXAMPLES / "data"
FLOWS = sorted(EXAMPLES.glob("*.flow"))
HELPERS = sorted(EXAMPLES.glob("*.py"))


def _helpers(name: str) -> ModuleType:
    return load_module(name, str(EXAMPLES / f"{name}.py"))


def _run(mode: str, flow: str, **params: str) -> JobResult:
    compiled = compile_file(str(EXAMPLES / flow), params)
    assert compiled.plan is not None, compiled.diagnostics

    if mode == "processes":
        result = run_processes(compiled.plan, handle_signals=False)
    else:
        result = run(compiled.plan, handle_signals=False)
    assert result.ok, result.error
    return result


def _json_lines(path: Path) -> list[Any]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


# -- every example ------------------------------------------------------------------


def test_examples_are_at_least_five() -> None:
    assert len(FLOWS) >= 5


@pytest.mark.parametrize("flow", FLOWS, ids=lambda p: p.name)
def test_example_checks_clean(flow: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)

    compiled = compile_file(f"examples/{flow.name}")

    assert compiled.diagnostics == ()
    assert compiled.plan is not None


@pytest.mark.parametrize("flow", FLOWS, ids=lambda p: p.name)
def test_example_starts_with_what_it_does_and_how_to_run_it(flow: Path) -> None:
    lines = flow.read_text(encoding="utf-8").splitlines()
    comment = [line for line in lines if line.startswith("#")]

    assert lines[0].startswith("# ")
    assert len(comment) >= 3
    assert any(f"reflowc run examples/{flow.name}" in line for line in comment)


@pytest.mark.parametrize("helper", HELPERS, ids=lambda p: p.name)
def test_example_helpers_have_docstrings_and_passing_doctests(helper: Path) -> None:
    module = load_module(f"examples_{helper.stem}", str(helper))

    result = doctest.testmod(module, verbose=False, report=True)

    assert module.__doc__
    assert result.failed == 0


def _plans() -> list[Plan]:
    plans = []
    for flow in FLOWS:
        compiled = compile_file(str(flow))
        assert compiled.plan is not None
        plans.append(compiled.plan)
    return plans


def test_examples_cover_every_stage_kind_and_option() -> None:
    tasks = [task for plan in _plans() for task in plan.tasks]
    kinds = {task.kind for task in tasks}
    orders = {task.order.kind for task in tasks}
    policies = {task.on_error.kind for task in tasks}

    assert kinds == {
        "source", "map", "flat_map", "filter", "key_by", "rejoin",
        "count", "reduce", "merge", "join", "sink",
    }  # fmt: skip
    assert orders == {"total", "partial", "keyed", "none"}
    assert policies == {"fail", "skip", "retry", "dead_letter"}
    assert any(task.workers > 1 for task in tasks)
    assert any(task.batch is not None for task in tasks)
    assert any(task.timeout is not None for task in tasks)
    assert any(task.expansion is not None for task in tasks)
    assert any(task.how == "left" for task in tasks)
    assert {task.by.kind for task in tasks if task.by} >= {"self", "function"}
    assert any(key.kind == "field" for task in tasks for key in task.join_keys)
    assert "exactly_once" in {plan.delivery for plan in _plans()}


def _modules() -> list[ast.Module]:
    modules = []
    for flow in FLOWS:
        compiled = compile_file(str(flow))
        assert compiled.module is not None
        modules.append(compiled.module)
    return modules


def test_examples_cover_every_declaration() -> None:
    modules = _modules()
    params = {param.type for m in modules if m.header for param in m.header.params}
    uses = {(use.python, use.alias is not None) for m in modules for use in m.uses}
    fragments_used = [
        stage
        for m in modules
        for statement in m.body
        for stage in statement.chain.stages
        if stage.kind == "fragment"
    ]
    queues = [queue for plan in _plans() for queue in plan.queues]

    assert params == {"str", "int", "float", "bool", "duration", "path"}
    assert uses == {(False, False), (True, False), (True, True)}
    assert any(m.defs for m in modules)
    assert fragments_used
    assert any(queue.capacity != DEFAULT_CAPACITY for queue in queues)


# -- each example's results ---------------------------------------------------------


def _expected_word_counts(min_len: int) -> str:
    counts: Counter[str] = Counter()
    for line in text.lines(str(DATA / "as_you_like_it.txt")):
        counts.update(w.lower() for w in text.words(line) if len(w) >= min_len)
    return "".join(f"{word}\t{n}\n" for word, n in sorted(counts.items()))


@pytest.mark.parametrize("min_len", [4, 9])
def test_wordcount_counts_the_words_of_the_play(
    tmp_path: Path, min_len: int, mode: str
) -> None:
    out = tmp_path / "counts.tsv"

    _run(mode, "wordcount.flow", out=str(out), min_len=str(min_len))

    assert out.read_text(encoding="utf-8") == _expected_word_counts(min_len)


def test_wordcount_finds_the_heroine(tmp_path: Path, mode: str) -> None:
    out = tmp_path / "counts.tsv"

    _run(mode, "wordcount.flow", out=str(out))

    counts = dict(line.split("\t") for line in out.read_text().splitlines())
    assert int(counts["rosalind"]) > 100
    assert "the" not in counts
    assert "abandon'd" in counts


def test_readability_scores_every_paragraph_in_order(tmp_path: Path, mode: str) -> None:
    prose = _helpers("prose")
    out = tmp_path / "ease.jsonl"
    expected = []
    for paragraph in prose.paragraphs(str(DATA / "alice.txt")):
        parts = [prose.syllables(token) for token in prose.tokens(paragraph)]
        score = prose.reading_ease(parts)
        if prose.has_words(score):
            expected.append(score)

    _run(mode, "readability.flow", out=str(out))

    assert _json_lines(out) == expected
    assert expected[0]["opening"] == "ALICE'S ADVENTURES IN WONDERLAND"


def test_station_means_averages_each_station_window(tmp_path: Path, mode: str) -> None:
    sensors = _helpers("sensors")
    out = tmp_path / "means.jsonl"
    tallies: dict[tuple[str, str], list[float]] = {}
    for name in ("readings_north.jsonl", "readings_south.jsonl"):
        for line in (DATA / name).read_text().splitlines():
            reading = sensors.to_celsius(json.loads(line))
            if sensors.plausible(reading, 40.0):
                reading = sensors.windowed(reading, 1800.0)
                key = sensors.station_window(reading)
                tallies[key] = sensors.add(
                    tallies.get(key, [0, 0.0, 1e3, -1e3]), reading
                )
    expected = [sensors.summary(pair) for pair in sorted(tallies.items())]

    _run(mode, "station_means.flow", out=str(out), window="30m", max_celsius="40.0")

    assert _json_lines(out) == expected
    assert len(expected) == 4 * 12
    assert sum(row["readings"] for row in expected) == 4 * 72 - 3


@pytest.mark.parametrize("with_vat", [True, False])
def test_order_totals_sums_revenue_per_country(
    tmp_path: Path, with_vat: bool, mode: str
) -> None:
    shop = _helpers("shop")
    out = tmp_path / "revenue.tsv"
    customers = {c["id"]: c for c in _json_lines(DATA / "customers.jsonl")}
    revenue: dict[str, float] = {}
    for order in _json_lines(DATA / "orders.jsonl"):
        line = shop.invoice_line((order, customers.get(order["customer_id"])), with_vat)
        revenue[line["country"]] = revenue.get(line["country"], 0.0) + line["total"]

    _run(mode, "order_totals.flow", out=str(out), with_vat=str(with_vat).lower())

    rows = [line.split("\t") for line in out.read_text().splitlines()]
    assert [name for name, _ in rows] == sorted(revenue)
    for name, total in rows:
        assert float(total) == pytest.approx(revenue[name], abs=0.011)
    assert "unknown" in revenue


def test_payments_settles_skips_retries_and_dead_letters(
    tmp_path: Path, mode: str
) -> None:
    pay = _helpers("settlement")
    out, rejects = tmp_path / "settled.jsonl", tmp_path / "rejected.jsonl"
    settled, damaged, invalid = [], [], 0
    for number, line in enumerate((DATA / "payments.jsonl").read_text().splitlines()):
        try:
            payment = pay.parse(line)
        except ValueError:
            damaged.append((number, line))
            continue
        if not pay.is_settled(payment):
            continue
        if payment["amount"] < 0 or payment["currency"] not in pay.RATES_PER_EUR:
            invalid += 1
            continue
        rate = pay.RATES_PER_EUR["USD"] / pay.RATES_PER_EUR[payment["currency"]]
        settled.append({**payment, "settled": round(payment["amount"] * rate, 2)})
    # The simulated rate service fails once per currency it has not seen in this
    # process: start it cold, as a new process would.
    pay._service = pay._RateService()

    result = _run(
        mode, "payments.flow", out=str(out), rejects=str(rejects), currency="USD"
    )

    assert _json_lines(out) == [{**p, "in": "USD"} for p in settled]
    letters = _json_lines(rejects)
    assert [(r["id"][1], r["value"]) for r in letters] == damaged
    assert {r["error"]["type"] for r in letters} == {"JSONDecodeError"}
    assert {r["stage"] for r in letters} == {"payments/map"}
    stages = {s.name: s for s in result.statistics.stages}
    assert stages["payments/map#2"].skipped == invalid > 0
    assert stages["payments/map#3"].retried == len({p["currency"] for p in settled})
    assert len(damaged) == 2


def test_example_data_texts_are_the_documented_files() -> None:
    readme = (DATA / "README.md").read_text(encoding="utf-8")
    found = re.findall(r"([0-9a-f]{64})  (\S+)", readme)
    digests = {name: digest for digest, name in found}

    for name in ("as_you_like_it.txt", "alice.txt"):
        data = (DATA / name).read_bytes()
        assert hashlib.sha256(data).hexdigest() == digests[name]
        assert len(data) < 1_000_000

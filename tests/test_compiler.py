"""The compiler (IR to `Plan`) and the front end's API (`compile_file`, ...)."""

from __future__ import annotations

from pathlib import Path

import pytest
from frontend_helpers import check
from hypothesis import given, settings
from hypothesis import strategies as st

from reflow_lang.frontend.api import compile_file, compile_source
from reflow_lang.plan import DEFAULT_CAPACITY, ErrorPolicy, Key, Order, Plan

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = sorted((ROOT / "examples").glob("*.flow"))

FLOW = """\
flow demo(path: str = "in.txt", n: int = 2, wait: duration = 250ms)
use text
use python fns
lines = source fns.rsrc(path)
words = lines | flat_map text.words [expansion = 6]
    | filter fns.two(n) [workers = 3, order = partial, on_error = dead_letter(bad)]
    | rejoin fns.parts [timeout = wait, capacity = 10]
words | count [by = "w"] | sink text.print
words | reduce fns.add [by = fns.key, initial = 0, batch = 8] | sink fns.out
j = join lines by self, words by fns.key [how = outer]
j | sink text.print [on_error = retry(2)]
bad | sink text.print
"""


@pytest.fixture
def plan(tmp_path: Path) -> Plan:
    c = check(tmp_path, FLOW, params={"wait": "2s"})
    assert c.diagnostics == ()
    assert c.plan is not None
    return c.plan


def test_tasks_in_topological_order_with_readable_names(plan: Plan) -> None:
    assert [t.name for t in plan.tasks] == [
        "lines",
        "words/flat_map",
        "words/filter",
        "words/rejoin",
        "line8/count",
        "line8/sink",
        "line9/reduce",
        "line9/sink",
        "j",
        "line11/sink",
        "line12/sink",
    ]
    produced = {q.name: q.producer for q in plan.queues}
    seen: set[str] = set()
    for task in plan.tasks:
        assert all(produced[name] in seen for name in task.inputs)
        seen.add(task.name)


def test_queues_with_producer_readers_and_capacity(plan: Plan) -> None:
    queues = {q.name: (q.producer, q.consumers, q.capacity) for q in plan.queues}
    assert queues == {
        "lines": ("lines", ("words/flat_map", "j"), DEFAULT_CAPACITY),
        "words/flat_map": ("words/flat_map", ("words/filter",), DEFAULT_CAPACITY),
        "words/filter": ("words/filter", ("words/rejoin",), DEFAULT_CAPACITY),
        "bad": ("words/filter", ("line12/sink",), DEFAULT_CAPACITY),
        "words": ("words/rejoin", ("line8/count", "line9/reduce", "j"), 10),
        "line8/count": ("line8/count", ("line8/sink",), DEFAULT_CAPACITY),
        "line9/reduce": ("line9/reduce", ("line9/sink",), DEFAULT_CAPACITY),
        "j": ("j", ("line11/sink",), DEFAULT_CAPACITY),
    }


def test_parameters_substituted_and_durations_in_seconds(plan: Plan) -> None:
    assert plan.parameters == (("path", "in.txt"), ("n", 2), ("wait", 2.0))
    source = plan.task("lines")
    assert source.function is not None and source.function.args == ("in.txt",)
    assert source.rewindable
    filtered = plan.task("words/filter")
    assert filtered.function is not None and filtered.function.args == (2,)
    assert plan.task("words/rejoin").timeout == 2.0


def test_options_splits_keys_and_policies(plan: Plan) -> None:
    flat, filtered, rejoin = (
        plan.task(n) for n in ("words/flat_map", "words/filter", "words/rejoin")
    )
    assert (flat.expansion, flat.split, flat.closes) == (6.0, None, None)
    assert (filtered.workers, filtered.order, filtered.split) == (
        3,
        Order("partial"),
        "words/flat_map",
    )
    assert filtered.on_error == ErrorPolicy("dead_letter", 0, "bad")
    assert filtered.dead_letter == "bad"
    assert (rejoin.closes, rejoin.order, rejoin.output) == (
        "words/flat_map",
        Order("total"),
        "words",
    )
    assert plan.task("line8/count").by == Key("field", field="w")
    reduce = plan.task("line9/reduce")
    assert reduce.by is not None and reduce.by.function is not None
    assert (reduce.by.function.name, reduce.initial, reduce.batch) == ("key", 0, 8)
    join = plan.task("j")
    assert join.inputs == ("lines", "words") and join.how == "outer"
    assert [k.kind for k in join.join_keys] == ["self", "function"]
    assert plan.task("line11/sink").on_error == ErrorPolicy("retry", 2)
    assert plan.task("line11/sink").output is None


def test_plan_round_trips_through_json(plan: Plan) -> None:
    assert Plan.from_json(plan.to_json()) == plan


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_examples_compile_and_round_trip(
    path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(ROOT)
    c = compile_file(str(path.relative_to(ROOT)))
    assert c.errors == ()
    assert c.plan is not None
    assert Plan.from_json(c.plan.to_json()) == c.plan


def test_wordcount_plan(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    c = compile_file("examples/wordcount.flow", {"min_len": "6"})
    assert c.ok and c.plan is not None
    assert dict(c.plan.parameters)["min_len"] == 6
    user = [t.function for t in c.plan.tasks if t.function and t.function.path]
    assert user and all(f.path == "examples/wordfns.py" for f in user)


def test_compile_file_reports_a_missing_file(tmp_path: Path) -> None:
    c = compile_file(str(tmp_path / "none.flow"))
    assert (c.source, c.module, c.ir, c.plan) == (None, None, None, None)
    assert [d.code for d in c.diagnostics] == ["E001"]
    assert not c.ok


def test_syntax_errors_stop_before_checking(tmp_path: Path) -> None:
    text = "flow t()\nuse text\nx = source text.lines(\nx | nosuch | sink text.print\n"
    c = compile_source(text, str(tmp_path / "t.flow"))
    assert c.ir is None
    assert all(d.code.startswith("E0") for d in c.errors)
    assert c.plan is None


def test_errors_leave_no_plan_and_are_sorted(tmp_path: Path) -> None:
    text = FLOW.replace("fns.parts", "fns.prts").replace("text.words", "text.wrds")
    c = check(tmp_path, text)
    assert (c.ir, c.plan) == (None, None)
    assert [d.code for d in c.errors] == ["E302", "E302"]
    lines = [d.span.line for d in c.diagnostics]
    assert lines == sorted(lines)


def test_warnings_keep_the_plan(tmp_path: Path) -> None:
    c = check(tmp_path, FLOW.replace("n: int = 2,", "n: int = 2, spare: int = 1,"))
    assert c.ok and c.plan is not None
    assert [d.code for d in c.warnings] == ["W801"]
    assert c.errors == ()


_PIECES = st.sampled_from(
    [
        "lines",
        "words",
        "| map str.lower",
        "| flat_map text.words",
        "| filter len",
        "| rejoin len",
        "| count",
        "| sink text.print",
        "| key_by len",
        "| reduce max [initial = 0]",
        "[order = partial]",
        "[order = total]",
        "[order = none]",
        "[workers = 2]",
        "[on_error = dead_letter(bad)]",
        "| w",
        "merge(lines, words)",
        "join lines by self, words by len",
        "words =",
        "bad",
    ]
)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.lists(_PIECES, min_size=1, max_size=6), min_size=1, max_size=5))
def test_random_flows_never_raise(
    tmp_path_factory: pytest.TempPathFactory, body: list[list[str]]
) -> None:
    text = (
        'flow t(path: str = "x")\nuse text\ndef w(s) = s | map str.upper\n'
        "lines = source text.lines(path)\n"
        + "\n".join(" ".join(statement) for statement in body)
        + "\n"
    )
    compiled = compile_source(text, str(tmp_path_factory.mktemp("fuzz") / "t.flow"))
    if compiled.ok:
        assert compiled.plan is not None
        assert Plan.from_json(compiled.plan.to_json()) == compiled.plan
    else:
        assert compiled.plan is None


def test_fingerprint_ignores_where_the_flow_lies_not_what_it_does(
    tmp_path: Path,
) -> None:
    source = (
        "flow f(n: int = 3)\nuse text\nuse python helpers as h\n"
        'source text.lines("in.txt") | map h.twice(n) | sink text.print\n'
    )
    plans = []
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "helpers.py").write_text(
            "def twice(x, n):\n    return x\n"
        )
        (tmp_path / folder / "f.flow").write_text(source)
        for params in ({}, {"n": "4"}):
            compiled = compile_file(str(tmp_path / folder / "f.flow"), params)
            assert compiled.plan is not None, compiled.diagnostics
            plans.append(compiled.plan)

    a3, a4, b3, b4 = (plan.fingerprint() for plan in plans)
    assert plans[0].file != plans[2].file
    assert (a3, a4) == (b3, b4)
    assert a3 != a4

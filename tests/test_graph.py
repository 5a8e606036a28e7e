"""Tests of the plan drawings (`reflow_lang.frontend.graph`) on hand-written plans."""

from __future__ import annotations

import pytest
from syrupy.assertion import SnapshotAssertion

from reflow_lang.frontend.graph import (
    describe_task,
    task_details,
    to_dot,
    to_mermaid,
    to_tree,
    tree_lines,
)
from reflow_lang.plan import (
    ErrorPolicy,
    FunctionRef,
    Key,
    Order,
    Plan,
    Queue,
    Task,
    Value,
)


def _fn(
    display: str, *args: Value, module: str = "reflow_lang.stdlib.text"
) -> FunctionRef:
    return FunctionRef(module, display.rsplit(".", 1)[-1], None, args, display)


def _queue(name: str, *consumers: str, producer: str | None = None) -> Queue:
    return Queue(name, producer or name, consumers, 2048)


def wordcount_plan() -> Plan:
    """The contract's word count: a chain with a split, a count and a sink."""
    tasks = (
        Task(
            "lines",
            "source",
            "wc.flow:5:9",
            _fn("text.lines", "hamlet.txt"),
            output="lines",
            rewindable=True,
        ),
        Task(
            "words/flat_map",
            "flat_map",
            "wc.flow:6:17",
            _fn("text.words"),
            ("lines",),
            "words/flat_map",
            expansion=12.0,
        ),
        Task(
            "words/map",
            "map",
            "wc.flow:7:13",
            _fn("str.lower", module="builtins"),
            ("words/flat_map",),
            "words",
            split="words/flat_map",
        ),
        Task(
            "line9/count",
            "count",
            "wc.flow:9:9",
            None,
            ("words",),
            "line9/count",
            by=Key("self"),
        ),
        Task(
            "line9/sink",
            "sink",
            "wc.flow:9:33",
            _fn("text.write_tsv", "-"),
            ("line9/count",),
        ),
    )
    queues = (
        _queue("lines", "words/flat_map"),
        _queue("words/flat_map", "words/map"),
        _queue("words", "line9/count", producer="words/map"),
        _queue("line9/count", "line9/sink"),
    )
    params = (("path", "hamlet.txt"), ("min_len", 4))
    return Plan("wordcount", "wc.flow", "at_least_once", params, tasks, queues)


def shapes_plan() -> Plan:
    """Fan-out, a dead letter, a left join, a split closed by a rejoin, and a merge."""
    none = Order("none")
    tasks = (
        Task(
            "orders",
            "source",
            "s.flow:4:10",
            _fn("json.read", "orders.jsonl"),
            output="orders",
            on_error=ErrorPolicy("dead_letter", dead_letter="bad"),
        ),
        Task(
            "customers",
            "source",
            "s.flow:5:13",
            _fn("json.read", "customers.jsonl"),
            output="customers",
        ),
        Task(
            "joined/join",
            "join",
            "s.flow:6:10",
            None,
            ("orders", "customers"),
            "joined",
            order=none,
            how="left",
            join_keys=(Key("field", "customer"), Key("field", "id")),
        ),
        Task(
            "line7/sink",
            "sink",
            "s.flow:7:10",
            _fn("json.write", "-"),
            ("joined",),
            order=none,
        ),
        Task(
            "bad/sink",
            "sink",
            "s.flow:8:7",
            _fn("text.print"),
            ("bad",),
            timeout=2.5,
            on_error=ErrorPolicy("retry", retries=3),
        ),
        Task(
            "per_customer/count",
            "count",
            "s.flow:9:25",
            None,
            ("orders",),
            "per_customer",
            by=Key("field", "customer"),
        ),
        Task(
            "notes",
            "source",
            "s.flow:10:9",
            _fn("text.lines", "notes.txt"),
            output="notes",
        ),
        Task(
            "scored/flat_map",
            "flat_map",
            "s.flow:11:18",
            _fn("text.words"),
            ("notes",),
            "scored/flat_map",
        ),
        Task(
            "scored/map",
            "map",
            "s.flow:11:40",
            _fn("w.score", module="scores"),
            ("scored/flat_map",),
            "scored/map",
            workers=4,
            order=Order("partial"),
            split="scored/flat_map",
        ),
        Task(
            "scored/rejoin",
            "rejoin",
            "s.flow:11:70",
            _fn("w.total", module="scores"),
            ("scored/map",),
            "scored",
            closes="scored/flat_map",
        ),
        Task(
            "all/merge",
            "merge",
            "s.flow:12:7",
            None,
            ("scored", "per_customer"),
            "all",
            order=none,
        ),
        Task(
            "line13/sink",
            "sink",
            "s.flow:13:8",
            _fn("text.print"),
            ("all",),
            order=none,
            batch=64,
        ),
    )
    queues = (
        _queue("orders", "joined/join", "per_customer/count"),
        _queue("bad", "bad/sink", producer="orders"),
        _queue("customers", "joined/join"),
        _queue("joined", "line7/sink", producer="joined/join"),
        _queue("per_customer", "all/merge", producer="per_customer/count"),
        _queue("notes", "scored/flat_map"),
        _queue("scored/flat_map", "scored/map"),
        _queue("scored/map", "scored/rejoin"),
        _queue("scored", "all/merge", producer="scored/rejoin"),
        _queue("all", "line13/sink", producer="all/merge"),
    )
    return Plan("shapes", "s.flow", "exactly_once", (), tasks, queues)


def chain_plan(length: int) -> Plan:
    """A source, `length - 2` maps and a sink, one straight chain."""
    names = [f"s{i}" for i in range(length)]
    tasks = [
        Task(names[0], "source", "c.flow:1:1", _fn("text.lines", "x"), output="s0")
    ]
    for i in range(1, length - 1):
        fn = _fn("str.lower", module="builtins")
        tasks.append(
            Task(names[i], "map", f"c.flow:{i}:1", fn, (names[i - 1],), names[i])
        )
    last = names[length - 2]
    tasks.append(Task(names[-1], "sink", "c.flow:9:1", _fn("text.print"), (last,)))
    queues = tuple(_queue(name, names[i + 1]) for i, name in enumerate(names[:-1]))
    return Plan("chain", "c.flow", "at_least_once", (), tuple(tasks), queues)


PLANS = {"wordcount": wordcount_plan, "shapes": shapes_plan}
DRAWINGS = {"tree": to_tree, "mermaid": to_mermaid, "dot": to_dot}


@pytest.mark.parametrize("plan", sorted(PLANS))
@pytest.mark.parametrize("drawing", sorted(DRAWINGS))
def test_drawing_matches_snapshot(
    plan: str, drawing: str, snapshot: SnapshotAssertion
) -> None:
    assert DRAWINGS[drawing](PLANS[plan]()) == snapshot


@pytest.mark.parametrize("drawing", sorted(DRAWINGS))
def test_drawing_is_a_function_of_the_plan_alone(drawing: str) -> None:
    plan = shapes_plan()
    again = Plan.from_json(plan.to_json())

    assert DRAWINGS[drawing](again) == DRAWINGS[drawing](plan)


def test_tree_draws_a_straight_chain_at_one_depth() -> None:
    lines = to_tree(wordcount_plan()).splitlines()

    assert lines == [
        "flow wordcount  [delivery = at_least_once]",
        '  parameters: path = "hamlet.txt", min_len = 4',
        'lines = source text.lines("hamlet.txt")  [workers 1, order total, rewindable]',
        "  ↓ lines (capacity 2048)",
        "words/flat_map = flat_map text.words  "
        "[workers 1, order total, expansion 12, opens a split]",
        "  ↓ words/flat_map (capacity 2048)",
        "words/map = map str.lower  "
        "[workers 1, order total, inside the split of words/flat_map]",
        "  ↓ words (capacity 2048)",
        "line9/count = count by self  [workers 1, order total]",
        "  ↓ line9/count (capacity 2048)",
        'line9/sink = sink text.write_tsv("-")  [workers 1, order total]',
    ]


def test_tree_branches_at_fan_out_and_dead_letter() -> None:
    lines = to_tree(shapes_plan()).splitlines()

    branches = [line.split(" ▶ ")[0] for line in lines if " ▶ " in line]
    assert branches == [
        "  ├─ orders (capacity 2048, 2 readers, left)",
        "  ├─ orders (capacity 2048, 2 readers)",
        "  └─ dead letter bad (capacity 2048)",
    ]


def test_tree_names_a_task_reached_twice_instead_of_drawing_it_again() -> None:
    lines = to_tree(shapes_plan()).splitlines()

    assert (
        sum(
            line.startswith("joined/join = ") or " ▶ joined/join = " in line
            for line in lines
        )
        == 1
    )
    assert "joined/join (drawn above)" in lines
    assert "all/merge (drawn above)" in lines


def test_tree_of_ten_thousand_stages_needs_no_recursion() -> None:
    lines = tree_lines(chain_plan(10_000))

    assert len(lines) == 1 + 10_000 + 9_999
    assert {line.prefix for line in lines if line.role == "task"} == {""}


def test_tree_lines_carry_roles_for_colouring() -> None:
    roles = [line.role for line in tree_lines(wordcount_plan())]

    assert roles == ["flow", "parameters"] + ["task", "queue"] * 4 + ["task"]


def test_mermaid_escapes_quotes_and_angle_brackets() -> None:
    plan = chain_plan(3)
    source = plan.tasks[0]
    odd = Task(
        source.name, "source", source.location, _fn("text.lines", 'a"<b>#'), output="s0"
    )
    plan = Plan(
        plan.flow, plan.file, plan.delivery, (), (odd, *plan.tasks[1:]), plan.queues
    )

    text = to_mermaid(plan)

    assert "text.lines(#quot;a\\#quot;#lt;b#gt;#35;#quot;)" in text
    assert "<b>" not in text


def test_dot_escapes_quotes_and_newlines() -> None:
    text = to_dot(wordcount_plan())

    assert (
        '"line9/sink" [label="line9/sink\\nsink text.write_tsv(\\"-\\")\\n'
        'workers 1 · order total", shape=house];'
    ) in text


def test_dot_and_mermaid_draw_every_queue_reader_once() -> None:
    plan = shapes_plan()
    readers = sum(len(queue.consumers) for queue in plan.queues)

    assert to_dot(plan).count(" -> ") == readers + 1  # and the split/rejoin pair
    mermaid = to_mermaid(plan)
    assert mermaid.count("-->") + mermaid.count("-.->") == readers
    assert mermaid.count('-.-|"split / rejoin"|') == 1


@pytest.mark.parametrize(
    ("name", "description"),
    [
        ("lines", 'source text.lines("hamlet.txt")'),
        ("words/map", "map str.lower"),
        ("line9/count", "count by self"),
    ],
)
def test_describe_task_speaks_the_flow_language(name: str, description: str) -> None:
    assert describe_task(wordcount_plan().task(name)) == description


def test_describe_task_of_join_merge_and_reduce() -> None:
    plan = shapes_plan()
    reduce = Task(
        "r",
        "reduce",
        "r.flow:1:1",
        _fn("ops.add", module="operator"),
        ("x",),
        "r",
        by=Key("field", "user"),
        initial=0,
    )

    assert describe_task(plan.task("joined/join")) == (
        'join orders by "customer", customers by "id" how left'
    )
    assert describe_task(plan.task("all/merge")) == "merge of scored, per_customer"
    assert describe_task(reduce) == 'reduce ops.add by "user" initial 0'


def test_task_details_show_every_option_set() -> None:
    sink = shapes_plan().task("bad/sink")
    mapper = shapes_plan().task("scored/map")

    assert task_details(sink) == [
        "workers 1",
        "order total",
        "timeout 2.5s",
        "on_error retry(3)",
    ]
    assert task_details(mapper) == [
        "workers 4",
        "order partial",
        "inside the split of scored/flat_map",
    ]

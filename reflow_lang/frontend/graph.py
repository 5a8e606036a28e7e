"""Drawings of a compiled plan for people: a text tree, Mermaid and Graphviz DOT.

Every function here is a pure function of a `Plan`: the same plan always gives the
same text, so the drawings can be snapshot-tested. `tree_lines` gives the tree as
records so that the command line can colour it without parsing text back.

The tree nests only where the graph branches: a straight chain (one output queue,
one reader) is drawn down the page at one depth, so a flow of ten thousand stages
stays readable and no recursion is needed to draw it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Literal

from reflow_lang.plan import FunctionRef, Plan, Queue, Task, Value

LineRole = Literal["flow", "parameters", "task", "queue", "reference"]


@dataclass(frozen=True, slots=True)
class TreeLine:
    """One line of the tree drawing.

    Attributes:
        prefix: the branch-drawing characters in front of the line.
        role: what the line shows, for colouring.
        text: the main words (a task's kind, name and function; a queue's name).
        detail: the secondary words (options, capacity), or `""`.
    """

    prefix: str
    role: LineRole
    text: str
    detail: str = ""

    def __str__(self) -> str:
        tail = f"  [{self.detail}]" if self.detail else ""
        return f"{self.prefix}{self.text}{tail}"


@dataclass(frozen=True, slots=True)
class _Index:
    """The plan's tasks by name and queues by producer, built once per drawing."""

    tasks: dict[str, Task]
    outputs: dict[str, list[Queue]]

    @classmethod
    def of(cls, plan: Plan) -> _Index:
        outputs: dict[str, list[Queue]] = {}
        for queue in plan.queues:
            outputs.setdefault(queue.producer, []).append(queue)
        return cls({task.name: task for task in plan.tasks}, outputs)


@dataclass(frozen=True, slots=True)
class _Edge:
    """A queue from a producing task to one of its readers."""

    queue: Queue
    reader: Task
    dead_letter: bool


def to_tree(plan: Plan) -> str:
    """The plan as an indented text tree, one line per task and per queue hop."""
    return "".join(f"{line}\n" for line in tree_lines(plan))


def tree_lines(plan: Plan) -> list[TreeLine]:
    """The lines of `to_tree`, as records: the flow, then each source's subgraph.

    A task reached a second time (the other input of a merge or a join) is named
    with a reference line instead of being drawn again.
    """
    lines = [TreeLine("", "flow", f"flow {plan.flow}", f"delivery = {plan.delivery}")]
    if plan.parameters:
        params = ", ".join(f"{name} = {_literal(v)}" for name, v in plan.parameters)
        lines.append(TreeLine("  ", "parameters", f"parameters: {params}"))

    index = _Index.of(plan)
    drawn: set[str] = set()
    for root in _roots(plan):
        if root.name not in drawn:
            lines.extend(_walk(index, root, drawn))
    return lines


def to_mermaid(plan: Plan) -> str:
    """The plan as a Mermaid `flowchart`, top to bottom."""
    ids = {task.name: f"t{index}" for index, task in enumerate(plan.tasks)}
    out = [f"%% flow {plan.flow} [delivery = {plan.delivery}]", "flowchart TD"]
    for task in plan.tasks:
        label = "<br/>".join(_mermaid_text(part) for part in _node_label(task))
        opening, closing = _MERMAID_SHAPES.get(task.kind, ("[", "]"))
        out.append(f'    {ids[task.name]}{opening}"{label}"{closing}')

    for edge in _all_edges(plan):
        arrow = "-.->" if edge.dead_letter else "-->"
        label = _mermaid_text(_edge_label(edge))
        source, target = ids[edge.queue.producer], ids[edge.reader.name]
        out.append(f'    {source} {arrow}|"{label}"| {target}')

    for split, rejoin in _split_pairs(plan):
        out.append(f'    {ids[split]} -.-|"split / rejoin"| {ids[rejoin]}')
    return "\n".join(out) + "\n"


def to_dot(plan: Plan) -> str:
    """The plan as a Graphviz `digraph`, for `dot -Tsvg`."""
    out = [
        f"digraph {_dot_quote(plan.flow)} {{",
        f"    label={_dot_quote(f'flow {plan.flow} [delivery = {plan.delivery}]')};",
        "    labelloc=t;",
        "    rankdir=TB;",
        '    node [shape=box, style=rounded, fontname="Helvetica"];',
        '    edge [fontname="Helvetica", fontsize=10];',
    ]
    for task in plan.tasks:
        label = _dot_quote("\n".join(_node_label(task)))
        shape = _DOT_SHAPES.get(task.kind, "box")
        out.append(f"    {_dot_quote(task.name)} [label={label}, shape={shape}];")

    for edge in _all_edges(plan):
        style = ", style=dashed, color=red" if edge.dead_letter else ""
        source, target = _dot_quote(edge.queue.producer), _dot_quote(edge.reader.name)
        out.append(
            f"    {source} -> {target} [label={_dot_quote(_edge_label(edge))}{style}];"
        )

    for split, rejoin in _split_pairs(plan):
        out.append(
            f"    {_dot_quote(split)} -> {_dot_quote(rejoin)} "
            '[style=dotted, arrowhead=none, constraint=false, label="split / rejoin"];'
        )
    out.append("}")
    return "\n".join(out) + "\n"


def describe_task(task: Task) -> str:
    """What a task does, in the flow's words: `map str.lower`, `count by self`."""
    if task.kind == "merge":
        return f"merge of {', '.join(task.inputs)}"
    if task.kind == "join":
        return _describe_join(task)

    words: list[str] = [task.kind]
    if task.function is not None:
        words.append(_call(task.function))
    if task.by is not None:
        words.append(f"by {task.by}")
    if task.kind == "reduce":
        words.append(f"initial {_literal(task.initial)}")
    return " ".join(words)


def task_details(task: Task) -> list[str]:
    """The task's settings worth showing: workers, order, and any option it sets."""
    details = [f"workers {task.workers}", f"order {task.order}"]
    if task.batch is not None:
        details.append(f"batch {task.batch}")
    if task.timeout is not None:
        details.append(f"timeout {_seconds(task.timeout)}")
    if task.on_error.kind != "fail":
        details.append(f"on_error {_policy(task)}")
    if task.expansion is not None:
        details.append(f"expansion {task.expansion:g}")
    if task.rewindable:
        details.append("rewindable")
    return details + _split_details(task)


# --- walking the graph ------------------------------------------------------------


def _roots(plan: Plan) -> list[Task]:
    """Sources in plan order, then the rest (drawn only if no source reached them)."""
    sources = [task for task in plan.tasks if not task.inputs]
    return sources + [task for task in plan.tasks if task.inputs]


def _walk(index: _Index, root: Task, drawn: set[str]) -> Iterator[TreeLine]:
    """Draws the subgraph under `root`, depth first, with an explicit stack."""
    stack: list[tuple[Task, str, str | None]] = [(root, "", None)]
    while stack:
        task, prefix, branch = stack.pop()
        head = prefix if branch is None else branch
        if task.name in drawn:
            yield TreeLine(head, "reference", f"{task.name} (drawn above)")
            continue

        drawn.add(task.name)
        text = f"{task.name} = {describe_task(task)}"
        yield TreeLine(head, "task", text, _details(task))

        edges = _edges_from(index, task)
        if len(edges) == 1 and not edges[0].dead_letter:
            yield TreeLine(prefix + "  ↓ ", "queue", _edge_label(edges[0]))
            stack.append((edges[0].reader, prefix, None))
            continue

        yield from _unread_queues(index, task, prefix)
        stack.extend(reversed(list(_branches(edges, prefix))))


def _branches(edges: Sequence[_Edge], prefix: str) -> Iterator[tuple[Task, str, str]]:
    for index, edge in enumerate(edges):
        last = index == len(edges) - 1
        branch = f"{prefix}  {'└' if last else '├'}─ {_edge_label(edge)} ▶ "
        yield edge.reader, prefix + ("     " if last else "  │  "), branch


def _unread_queues(index: _Index, task: Task, prefix: str) -> Iterator[TreeLine]:
    for queue in index.outputs.get(task.name, ()):
        if not queue.consumers:
            yield TreeLine(prefix + "  ↓ ", "queue", queue.name, _queue_detail(queue))


def _edges_from(index: _Index, task: Task) -> list[_Edge]:
    """The task's output edges: its stream's readers, then its dead letters' readers."""
    edges: list[_Edge] = []
    for queue in index.outputs.get(task.name, ()):
        dead = queue.name == task.dead_letter
        readers = (index.tasks[name] for name in queue.consumers if name in index.tasks)
        edges.extend(_Edge(queue, reader, dead) for reader in readers)
    return sorted(edges, key=lambda edge: edge.dead_letter)


def _all_edges(plan: Plan) -> list[_Edge]:
    index = _Index.of(plan)
    return [edge for task in plan.tasks for edge in _edges_from(index, task)]


def _split_pairs(plan: Plan) -> list[tuple[str, str]]:
    """Each rejoin with the flat_map whose split it closes."""
    names = {task.name for task in plan.tasks}
    return [
        (task.closes, task.name)
        for task in plan.tasks
        if task.kind == "rejoin" and task.closes in names
    ]


# --- words ------------------------------------------------------------------------


def _node_label(task: Task) -> list[str]:
    return [task.name, describe_task(task), " · ".join(task_details(task))]


def _details(task: Task) -> str:
    return ", ".join(task_details(task))


def _edge_label(edge: _Edge) -> str:
    queue = edge.queue
    text = f"dead letter {queue.name}" if edge.dead_letter else queue.name
    side = ""
    if edge.reader.kind == "join" and queue.name in edge.reader.inputs:
        side = ", left" if edge.reader.inputs.index(queue.name) == 0 else ", right"
    return f"{text} ({_queue_detail(queue)}{side})"


def _queue_detail(queue: Queue) -> str:
    readers = len(queue.consumers)
    shared = f", {readers} readers" if readers > 1 else ""
    unread = ", not read" if readers == 0 else ""
    return f"capacity {queue.capacity}{shared}{unread}"


def _split_details(task: Task) -> list[str]:
    details = []
    if task.kind == "flat_map":
        details.append("opens a split")
    if task.kind == "rejoin" and task.closes:
        details.append(f"closes the split of {task.closes}")
    if task.split:
        details.append(f"inside the split of {task.split}")
    return details


def _describe_join(task: Task) -> str:
    sides = [
        f"{name} by {key}"
        for name, key in zip(task.inputs, task.join_keys, strict=False)
    ]
    return f"join {', '.join(sides)} how {task.how or 'inner'}"


def _call(function: FunctionRef) -> str:
    name = function.display or f"{function.module}.{function.name}"
    if not function.args:
        return name
    return f"{name}({', '.join(_literal(arg) for arg in function.args)})"


def _policy(task: Task) -> str:
    policy = task.on_error
    if policy.kind == "retry":
        return f"retry({policy.retries})"
    if policy.kind == "dead_letter":
        return f"dead_letter({policy.dead_letter})"
    return policy.kind


def _literal(value: Value) -> str:
    """A value spelt as in a `.flow` file: strings quoted, booleans lowercase."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "none"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_literal(item) for item in value) + "]"
    return str(value)


def _seconds(value: float) -> str:
    return f"{value:g}s"


# --- escaping ---------------------------------------------------------------------

_MERMAID_SHAPES = {
    "source": ("([", "])"),
    "sink": ("[/", "/]"),
    "merge": ("{{", "}}"),
    "join": ("{{", "}}"),
}

_DOT_SHAPES = {
    "source": "invhouse",
    "sink": "house",
    "merge": "hexagon",
    "join": "hexagon",
}


def _mermaid_text(text: str) -> str:
    # Mermaid reads `"` as the end of a label and `<`/`>` as HTML: use its entities.
    return (
        text.replace("#", "#35;")
        .replace('"', "#quot;")
        .replace("<", "#lt;")
        .replace(">", "#gt;")
    )


def _dot_quote(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'

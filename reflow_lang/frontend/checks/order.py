"""E7xx: order is a type: every stream's order, and stages asking for more.

The lattice (LANGUAGE.md section 4): `total` is stronger than `partial` and
`keyed(K)`, which are both stronger than `none`; `partial` and `keyed(K)` are
incomparable, and so are `keyed(K1)` and `keyed(K2)`. The pass walks the stages in
topological order (after `splits.annotate`), computes every stream's order, and
remembers where each stream lost `total`, so that an error can say which stage lost
the order and how to keep it. After an error the stage is taken to have the order it
asked for, so that one mistake gives one message.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from reflow_lang.frontend import ir
from reflow_lang.frontend.diagnostics import Diagnostic, error
from reflow_lang.frontend.span import Span

CODES: dict[str, str] = {
    "E701": "stage asks for more order than its input has",
    "E702": "`order = partial` with no open split",
    "E703": "`order = partial` in a split whose input is not total",
    "E704": "`keyed(K)` on a stream keyed by another key",
    "E705": "sink asks for more order than its input has",
}


@dataclass(frozen=True, slots=True)
class _Loss:
    """Where a stream lost `total`: the stage, the place, and what did it."""

    stage: str
    span: Span
    cause: str  # "option", "merge", "join" or "dead_letter"
    text: str  # the option as written (`order = none`), for hints


@dataclass(frozen=True, slots=True)
class _State:
    order: ir.Order
    lost: _Loss | None = None
    # The key the events carry since the last `key_by` (a merge or join of streams
    # carrying one key is keyed by it).
    key: ir.Key | None = None


def annotate(
    stages: tuple[ir.Stage, ...],
) -> tuple[tuple[ir.Stage, ...], dict[str, ir.Order | None], list[Diagnostic]]:
    """Sets `order` on every stage; returns the order of every stream and the errors."""
    state: dict[str, _State] = {}
    split_inputs: dict[str, _State] = {}
    found: list[Diagnostic] = []
    annotated = []
    for stage in stages:
        inputs = [state.get(name) for name in stage.inputs]
        out = (
            None
            if any(s is None for s in inputs)
            else _step(stage, [s for s in inputs if s is not None], split_inputs, found)
        )
        if stage.kind == "flat_map" and inputs and inputs[0] is not None:
            split_inputs[stage.name] = inputs[0]
        annotated.append(replace(stage, order=None if out is None else out.order))
        if out is not None and stage.output is not None:
            state[stage.output] = out
        _dead_letter(stage, state)
    orders: dict[str, ir.Order | None] = {name: s.order for name, s in state.items()}
    return tuple(annotated), orders, found


def _dead_letter(stage: ir.Stage, state: dict[str, _State]) -> None:
    policy = stage.options.on_error
    if policy is None or policy.dead_letter is None:
        return
    # Failures are reported as they happen, from any worker: no promise of order.
    loss = _Loss(stage.name, policy.span, "dead_letter", str(policy))
    state[policy.dead_letter] = _State(ir.Order(policy.span, "none"), loss)


def _step(
    stage: ir.Stage,
    inputs: list[_State],
    split_inputs: dict[str, _State],
    found: list[Diagnostic],
) -> _State | None:
    if stage.kind == "source":
        return _State(ir.Order(stage.span, "total"))
    if stage.kind in ("count", "reduce"):
        # They emit when the input ends, in key order.
        return _State(ir.Order(stage.span, "total"))
    if stage.kind in ("merge", "join"):
        return _combine(stage, inputs)
    if not inputs:
        return None

    have: _State | None = inputs[0]
    if stage.kind == "rejoin":
        have = _rejoined(stage, inputs[0], split_inputs)
    if have is None:
        return None
    out = _ask(stage, have, split_inputs, found)
    if stage.kind == "key_by" and stage.function is not None:
        out = replace(
            out, key=ir.Key(stage.function.span, "function", function=stage.function)
        )
    return out


def _combine(stage: ir.Stage, inputs: list[_State]) -> _State:
    loss = _Loss(stage.name, stage.span, stage.kind, stage.kind)
    key = _carried(inputs[0]) if inputs else None
    if any(_carried(s) != key for s in inputs):
        key = None
    if stage.kind == "join" and (
        len(stage.join_keys) != 2 or any(k != key for k in stage.join_keys)
    ):
        key = None
    if key is None:
        return _State(ir.Order(stage.span, "none"), loss)
    return _State(ir.Order(stage.span, "keyed", key), loss, key)


def _carried(state: _State) -> ir.Key | None:
    """The key a stream is keyed by: its `keyed(K)` order, or `total` with key K."""
    if state.order.kind == "keyed":
        return state.order.key
    if state.order.kind == "total":
        return state.key
    return None


def _rejoined(
    stage: ir.Stage, inside: _State, split_inputs: dict[str, _State]
) -> _State | None:
    if stage.closes is None or stage.closes not in split_inputs:
        return None  # no split to close: reported by the splits pass
    parent = split_inputs[stage.closes]
    if inside.order.kind == "none":
        # The parts were reordered beyond their parents: the parents' order is gone.
        return replace(inside, order=ir.Order(stage.span, "none"))
    return replace(parent, order=replace(parent.order, span=stage.span))


def _ask(
    stage: ir.Stage,
    have: _State,
    split_inputs: dict[str, _State],
    found: list[Diagnostic],
) -> _State:
    need = stage.options.order
    if need is None:
        return have
    problem = _check(stage, need, have, split_inputs)
    if problem is not None:
        found.append(problem)
        return _State(need, None, have.key)
    if _stronger(have.order, need):
        text = f"order = {need}"
        return _State(need, _Loss(stage.name, need.span, "option", text), have.key)
    return replace(have, order=need)


def _stronger(have: ir.Order, need: ir.Order) -> bool:
    return have.kind != need.kind or have.key != need.key


def _satisfies(have: ir.Order, need: ir.Order) -> bool:
    if need.kind == "none" or have.kind == "total":
        return True
    return have.kind == need.kind and have.key == need.key


def _check(
    stage: ir.Stage, need: ir.Order, have: _State, split_inputs: dict[str, _State]
) -> Diagnostic | None:
    if need.kind == "partial":
        problem = _partial(stage, need, split_inputs)
        if problem is not None:
            return problem
    if _satisfies(have.order, need):
        return None
    if need.kind == "keyed" and have.order.kind == "keyed":
        msg = (
            f"`{stage.name}` asks for `{need}` but its input is keyed by "
            f"`{have.order.key}`"
        )
        return error("E704", need.span, msg, _hint(have, need))
    return _weaker(stage, need, have)


def _weaker(stage: ir.Stage, need: ir.Order, have: _State) -> Diagnostic:
    code = "E705" if stage.kind == "sink" else "E701"
    who = f"sink `{stage.name}`" if stage.kind == "sink" else f"`{stage.name}`"
    msg = f"{who} asks for `{need}` order but its input has only `{have.order}`"
    if have.lost is not None:
        where = f"{have.lost.span.line}:{have.lost.span.column}"
        msg += f"; the order was lost at `{have.lost.stage}` ({where})"
    return error(code, need.span, msg, _hint(have, need))


def _hint(have: _State, need: ir.Order) -> str:
    loss = have.lost
    weaker = (
        f"ask for `{have.order}` here"
        if have.order.kind != "none"
        else ("remove this `order`")
    )
    if loss is None:
        return weaker
    where = f"{loss.span.line}:{loss.span.column}"
    if loss.cause == "option":
        return f"remove `{loss.text}` from `{loss.stage}` at {where}, or {weaker}"
    if loss.cause == "dead_letter":
        return f"a dead-letter stream has no order; {weaker}"
    return (
        f"the {loss.cause} `{loss.stage}` at {where} interleaves its inputs; key every "
        f"input by the same key and ask for `keyed(K)`, or {weaker}"
    )


def _partial(
    stage: ir.Stage, need: ir.Order, split_inputs: dict[str, _State]
) -> Diagnostic | None:
    if stage.split is None:
        msg = f"`{stage.name}` asks for `partial` order but lies inside no split"
        hint = (
            "`partial` keeps the parts of one `flat_map` parent together; "
            "put it after a `flat_map`, or ask for `total` or `none`"
        )
        if stage.kind == "flat_map":
            # Its own split is not upstream of it: the parts it makes leave in order.
            hint = (
                "a `flat_map` emits its parts in split order; put `order = partial` "
                "on the stages after it"
            )
        return error("E702", need.span, msg, hint)
    parent = split_inputs.get(stage.split)
    if parent is None or parent.order.kind == "total":
        return None
    msg = (
        f"`{stage.name}` asks for `partial` order but the input of its split "
        f"`{stage.split}` is `{parent.order}`, not `total`"
    )
    return error("E703", need.span, msg, _hint(parent, ir.Order(need.span, "total")))

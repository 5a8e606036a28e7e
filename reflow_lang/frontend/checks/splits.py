"""E6xx: splits and rejoins: each `rejoin` closes the nearest open `flat_map`.

The pass walks the stages in topological order and keeps, for each stream, the stack
of splits still open on it, innermost last. It records on every stage the split it
lies inside (`Stage.split`) and on each rejoin the split it closes
(`Stage.closes`). A merge, a join, a count or a reduce ends the open splits: their
outputs are no longer parts of one parent, so a rejoin after them is an error.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from reflow_lang.frontend import ir
from reflow_lang.frontend.diagnostics import Diagnostic, error
from reflow_lang.frontend.span import Span

CODES: dict[str, str] = {
    "E601": "`rejoin` with no open split",
    "E602": "`rejoin` across a merge, join, count or reduce",
}

# Stages after which parts no longer belong to one parent.
_BARRIERS = frozenset({"merge", "join", "count", "reduce"})


@dataclass(frozen=True, slots=True)
class _Barrier:
    stage: str
    kind: str
    span: Span
    split: str


@dataclass(frozen=True, slots=True)
class _Splits:
    """The splits open on a stream, innermost last, and what ended earlier ones."""

    open: tuple[str, ...] = ()
    barrier: _Barrier | None = None


_CLEAN = _Splits()


def annotate(
    stages: tuple[ir.Stage, ...],
) -> tuple[tuple[ir.Stage, ...], list[Diagnostic]]:
    """Sets `split` and `closes` on every stage; E601/E602 for unmatched rejoins."""
    state: dict[str, _Splits] = {}
    found: list[Diagnostic] = []
    annotated = []
    for stage in stages:
        stage, out = _step(stage, state, found)
        annotated.append(stage)
        if stage.output is not None and out is not None:
            state[stage.output] = out
        policy = stage.options.on_error
        if policy is not None and policy.dead_letter is not None:
            state[policy.dead_letter] = _CLEAN
    return tuple(annotated), found


def _step(
    stage: ir.Stage, state: dict[str, _Splits], found: list[Diagnostic]
) -> tuple[ir.Stage, _Splits | None]:
    if stage.kind == "source":
        return stage, _CLEAN
    inputs = [state.get(name) for name in stage.inputs]
    if not inputs or any(s is None for s in inputs):
        return stage, None  # an unknown input: reported already
    known = [s for s in inputs if s is not None]

    if stage.kind in _BARRIERS:
        return stage, _barrier(stage, known)
    splits = known[0]
    inside = splits.open[-1] if splits.open else None
    if stage.kind == "rejoin":
        return _rejoin(stage, splits, found)
    if inside is not None:
        stage = replace(stage, split=inside)
    if stage.kind == "flat_map":
        return stage, _Splits((*splits.open, stage.name))
    return stage, splits


def _barrier(stage: ir.Stage, inputs: list[_Splits]) -> _Splits:
    for splits in inputs:
        if splits.open:
            return _Splits(
                (), _Barrier(stage.name, stage.kind, stage.span, splits.open[-1])
            )
        if splits.barrier is not None:
            return _Splits((), splits.barrier)
    return _CLEAN


def _rejoin(
    stage: ir.Stage, splits: _Splits, found: list[Diagnostic]
) -> tuple[ir.Stage, _Splits | None]:
    if splits.open:
        closes = splits.open[-1]
        rest = splits.open[:-1]
        inside = rest[-1] if rest else None
        return replace(stage, split=inside, closes=closes), _Splits(
            rest, splits.barrier
        )

    barrier = splits.barrier
    if barrier is None:
        msg = f"`{stage.name}` has no open split to close"
        hint = (
            "a `rejoin` gathers the parts of a `flat_map` upstream; "
            "add one or remove the rejoin"
        )
        found.append(error("E601", stage.span, msg, hint))
        return stage, None
    where = f"{barrier.span.line}:{barrier.span.column}"
    msg = (
        f"`{stage.name}` cannot close the split of `{barrier.split}` across "
        f"the {barrier.kind} `{barrier.stage}` at {where}"
    )
    hint = f"rejoin the parts before the {barrier.kind}"
    found.append(error("E602", stage.span, msg, hint))
    return stage, None

"""E1xx: names: unknown, duplicate, used before bound, fragment cycles and misuse.

Lowering asks this module whenever it looks a name up; the checks that need the
whole file at once (duplicates, fragment cycles, the shape of each `def`) run here
before lowering starts.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from reflow_lang.frontend import ast
from reflow_lang.frontend.diagnostics import Diagnostic, did_you_mean, error, warning
from reflow_lang.frontend.span import Span

CODES: dict[str, str] = {
    "E101": "unknown stream",
    "E102": "name bound twice",
    "E103": "stream read before it is bound",
    "E104": "fragment that uses itself",
    "E105": "unknown stage or fragment",
    "E106": "fragment misused",
    "E107": "unknown name in an argument",
    "E108": "statement in a library file",
    "E109": "fragments nested too deeply, or expanding to too many stages",
    "W101": "fragment never used",
}

STAGE_KEYWORDS = (
    "map",
    "flat_map",
    "filter",
    "key_by",
    "rejoin",
    "count",
    "reduce",
    "sink",
)


def unknown_stream(
    span: Span,
    name: str,
    later: Span | None,
    in_scope: Iterable[str],
    fragments: Iterable[str] = (),
) -> Diagnostic:
    """E101, or E103 when `name` is bound further down the file."""
    if later is not None:
        msg = (
            f"stream `{name}` is read before it is bound at {later.line}:{later.column}"
        )
        hint = "move the chain that binds it above this one; a stream cannot feed back"
        return error("E103", span, msg, hint)
    msg = f"unknown stream `{name}`"
    hint = did_you_mean(name, in_scope) or "bind it first with `NAME = CHAIN`"
    if name in fragments:
        msg = f"`{name}` is a fragment, not a stream"
        hint = f"use it as a stage, after a stream: `STREAM | {name}`"
    return error("E101", span, msg, hint)


def duplicate(span: Span, what: str, name: str, first: Span) -> Diagnostic:
    """E102: `name` is bound a second time."""
    msg = f"{what} `{name}` is already bound at {first.line}:{first.column}"
    return error("E102", span, msg, "choose another name")


def find_duplicates(
    named: Iterable[tuple[str, Span]], what: str
) -> tuple[dict[str, Span], list[Diagnostic]]:
    """The first span of each name, and E102 for every later one."""
    first: dict[str, Span] = {}
    found: list[Diagnostic] = []
    for name, span in named:
        if name in first:
            found.append(duplicate(span, what, name, first[name]))
        else:
            first[name] = span
    return first, found


def fragment_uses(definition: ast.Def) -> list[ast.Stage]:
    """The stages of a `def` that use a fragment."""
    return [s for s in definition.chain.stages if s.kind == "fragment" and s.function]


def fragment_cycles(defs: dict[str, ast.Def]) -> tuple[set[str], list[Diagnostic]]:
    """The fragments that reach themselves, and one E104 per cycle."""
    state: dict[str, int] = {}  # 1: on the current path, 2: finished
    in_cycle: set[str] = set()
    found: list[Diagnostic] = []
    for root in defs:
        if root not in state:
            _walk(root, defs, state, in_cycle, found)
    return in_cycle, found


def _walk(
    root: str,
    defs: dict[str, ast.Def],
    state: dict[str, int],
    in_cycle: set[str],
    found: list[Diagnostic],
) -> None:
    # An explicit stack rather than recursion: a long chain of fragments must not
    # hit Python's recursion limit.
    path: list[str] = [root]
    pending: list[list[ast.Stage]] = [fragment_uses(defs[root])[::-1]]
    state[root] = 1
    while path:
        if not pending[-1]:
            state[path.pop()] = 2
            pending.pop()
            continue
        stage = pending[-1].pop()
        assert stage.function is not None
        target = stage.function.callee.dotted
        if target not in defs:
            continue
        if state.get(target) == 1:
            cycle = path[path.index(target) :] + [target]
            in_cycle.update(cycle)
            found.append(_cycle(stage.span, cycle))
        elif target not in state:
            state[target] = 1
            path.append(target)
            pending.append(fragment_uses(defs[target])[::-1])


def _cycle(span: Span, cycle: Sequence[str]) -> Diagnostic:
    route = " -> ".join(f"`{name}`" for name in cycle)
    msg = f"fragment `{cycle[0]}` uses itself: {route}"
    hint = "a fragment is expanded inline, so it cannot use itself"
    return error("E104", span, msg, hint)


def check_def_shape(definition: ast.Def) -> list[Diagnostic]:
    """E106: a `def`'s chain must start with its parameter."""
    head = definition.chain.head
    if isinstance(head, ast.StreamHead) and head.name.dotted == definition.param:
        return []
    msg = (
        f"fragment `{definition.name}` must start with its parameter "
        f"`{definition.param}`"
    )
    hint = (
        f"write `def {definition.name}({definition.param}) = {definition.param} | ...`"
    )
    return [error("E106", head.span, msg, hint)]


def unknown_stage(span: Span, name: str, fragments: Iterable[str]) -> Diagnostic:
    """E105: a stage keyword or fragment name that does not exist."""
    msg = f"unknown stage or fragment `{name}`"
    candidates = [*STAGE_KEYWORDS, *fragments]
    hint = did_you_mean(name, candidates) or (
        f"a stage is one of {', '.join(f'`{k}`' for k in STAGE_KEYWORDS)}, "
        "or a fragment defined with `def`"
    )
    return error("E105", span, msg, hint)


def fragment_with_extras(stage: ast.Stage, name: str) -> Diagnostic:
    """E106: a fragment used with arguments or options."""
    msg = f"fragment `{name}` takes no arguments or options when used as a stage"
    hint = "put the options on the stages inside the `def`"
    return error("E106", stage.span, msg, hint)


def expansion_too_big(
    span: Span, path: tuple[str, ...], max_depth: int, max_stages: int
) -> Diagnostic:
    """E109: expanding fragments here nests or grows past the limits."""
    shown = [f"`{n}`" for n in path]
    if len(shown) > 5:
        shown = [*shown[:2], "...", *shown[-2:]]
    where = " -> ".join(shown)
    if len(path) > max_depth:
        msg = f"fragments nest more than {max_depth} deep here: {where}"
        hint = "use fewer levels of fragments; write some stages out in the chain"
    else:
        msg = f"fragments expand to more than {max_stages} stages here: {where}"
        hint = "a fragment that uses another twice doubles the stages at each level"
    return error("E109", span, msg, hint)


def unknown_argument(
    span: Span, name: str, params: Iterable[str], option: str | None = None
) -> Diagnostic:
    """E107: a name in an argument list (or an option's value) that is no parameter."""
    msg = (
        f"unknown name `{name}` in an argument; "
        "arguments are literals or flow parameters"
    )
    if option is not None:
        msg = (
            f"unknown name `{name}` in the value of `{option}`; "
            "it is a literal or a flow parameter"
        )
    hint = (
        did_you_mean(name, params) or "declare it as a parameter in the `flow` header"
    )
    return error("E107", span, msg, hint)


def library_statement(span: Span) -> Diagnostic:
    """E108: a chain in a file without a `flow` header."""
    msg = (
        "a file without a `flow` header is a library; it may hold only `use` and `def`"
    )
    hint = "add a header such as `flow NAME()` at the top"
    return error("E108", span, msg, hint)


def unused_fragment(definition: ast.Def) -> Diagnostic:
    """W101: a `def` the flow never uses."""
    msg = f"fragment `{definition.name}` is never used"
    return warning("W101", definition.name_span, msg, "use it as a stage or remove it")

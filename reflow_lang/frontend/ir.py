"""The checked flow as a graph: names resolved, options typed, orders known.

Lowering (`lower.py`) turns the AST of a flow file into a `Flow`: `def` fragments are
expanded inline, functions are resolved to the module and attribute the runtime will
import (with the facts the checker read from their signatures), options are typed and
defaulted, and the checker passes annotate every stage with its split and every stream
with its order (LANGUAGE.md section 4). The compiler turns a `Flow` into a `Plan`.

Every node is a frozen, slotted dataclass with a `span`. Spans never take part in
equality, so two orders or keys written in different places compare equal when they
mean the same thing. `format_ir(flow)` (also `str(flow)`) prints stable text for
`reflowc compile --emit ir`.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field

from reflow_lang.frontend.span import Span
from reflow_lang.plan import (
    DEFAULT_CAPACITY,
    Delivery,
    JoinHow,
    OrderKind,
    PolicyKind,
    StageKind,
    Value,
)

# --- arguments ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Const:
    """A literal argument; durations are already in seconds."""

    span: Span = field(compare=False)
    value: Value

    def __str__(self) -> str:
        return format_value(self.value)


@dataclass(frozen=True, slots=True)
class ParamRef:
    """A flow parameter used as an argument; the compiler substitutes its value."""

    span: Span = field(compare=False)
    name: str

    def __str__(self) -> str:
        return self.name


Arg = Const | ParamRef


@dataclass(frozen=True, slots=True)
class Function:
    """A resolved user function, with what its signature told the checker.

    Attributes:
        module: the importable module (`reflow_lang.stdlib.text`, `builtins`).
        name: the attribute path inside the module (`words`, `str.lower`).
        path: the file a `use python` module is loaded from, when found beside the flow.
        args: the arguments after the implicit ones (event, batch, parts, acc).
        display: the name as the flow spells it (`text.words`).
        is_async: a coroutine function (or an async generator function).
        rewindable: accepts a keyword `start` (meaningful for sources).
    """

    span: Span = field(compare=False)
    module: str
    name: str
    path: str | None
    args: tuple[Arg, ...]
    display: str = field(compare=False)
    is_async: bool = field(default=False, compare=False)
    rewindable: bool = field(default=False, compare=False)

    def __str__(self) -> str:
        if not self.args:
            return self.display
        return f"{self.display}({', '.join(str(a) for a in self.args)})"


# --- keys, orders, options -----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Key:
    """How a key is read from an event: `self`, a quoted field, or a function."""

    span: Span = field(compare=False)
    kind: str  # "self" | "field" | "function"
    field: str | None = None
    function: Function | None = None

    def __str__(self) -> str:
        if self.kind == "field":
            return json.dumps(self.field)
        if self.function is not None:
            return str(self.function)
        return "self"


@dataclass(frozen=True, slots=True)
class Order:
    """An order of the lattice `total > partial, keyed(K) > none`."""

    span: Span = field(compare=False)
    kind: OrderKind
    key: Key | None = None

    def __str__(self) -> str:
        return f"keyed({self.key})" if self.kind == "keyed" else self.kind


@dataclass(frozen=True, slots=True)
class ErrorPolicy:
    """`on_error`: `fail`, `skip`, `retry(N)` or `dead_letter(NAME)`."""

    span: Span = field(compare=False)
    kind: PolicyKind = "fail"
    retries: int = 0
    dead_letter: str | None = None

    def __str__(self) -> str:
        if self.kind == "retry":
            return f"retry({self.retries})"
        if self.kind == "dead_letter":
            return f"dead_letter({self.dead_letter})"
        return self.kind


@dataclass(frozen=True, slots=True)
class Options:
    """A stage's options, typed, with defaults filled in.

    Attributes:
        workers: parallel workers.
        order: the order asked for with `order = X`; `None` inherits the input's.
        batch: events per call and per queue item; `None` lets the runtime choose.
        capacity: bound of the queue behind the stage's output.
        timeout: seconds a call may take; `None` for no limit.
        on_error: the error policy.
        expansion: a flat_map's starting hint of outputs per input.
        by: the grouping key of `count` and `reduce`.
        initial: the initial accumulator of `reduce`.
        how: a join's kind.
    """

    span: Span = field(compare=False)
    workers: int = 1
    order: Order | None = None
    batch: int | None = None
    capacity: int = DEFAULT_CAPACITY
    timeout: float | None = None
    on_error: ErrorPolicy | None = None
    expansion: float | None = None
    by: Key | None = None
    initial: Value = None
    how: JoinHow | None = None

    def __str__(self) -> str:
        shown = [f"{k} = {v}" for k, v in self.items()]
        return f"[{', '.join(shown)}]" if shown else ""

    def items(self) -> Iterator[tuple[str, str]]:
        """The options that differ from their defaults, as printable pairs."""
        if self.workers != 1:
            yield "workers", str(self.workers)
        if self.order is not None:
            yield "order", str(self.order)
        if self.batch is not None:
            yield "batch", str(self.batch)
        if self.capacity != DEFAULT_CAPACITY:
            yield "capacity", str(self.capacity)
        if self.timeout is not None:
            yield "timeout", f"{self.timeout:g}s"
        if self.on_error is not None and self.on_error.kind != "fail":
            yield "on_error", str(self.on_error)
        if self.expansion is not None:
            yield "expansion", f"{self.expansion:g}"
        if self.by is not None:
            yield "by", str(self.by)
        if self.initial is not None:
            yield "initial", format_value(self.initial)
        if self.how is not None:
            yield "how", self.how


# --- the graph -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Stage:
    """One task of the flow: a head (source, merge, join) or a stage of a chain.

    Attributes:
        name: unique and readable (`words/map`, `line12/sink`).
        kind: the stage kind.
        function: the user function; `None` for `count`, `merge`, `join`.
        inputs: the streams read (a join's left then right).
        output: the stream written; `None` for a sink.
        options: typed options.
        fragments: the `def` fragments expanded to reach this stage, outermost first.
        join_keys: a join's left and right keys.
        split: the flat_map stage whose split this stage lies inside, if any.
        closes: for a rejoin, the flat_map stage it closes.
        order: the order of the output (for a sink: the order it keeps); `None`
            when an earlier error left it unknown.
    """

    span: Span = field(compare=False)
    name: str
    kind: StageKind
    function: Function | None
    inputs: tuple[str, ...]
    output: str | None
    options: Options
    fragments: tuple[str, ...] = ()
    join_keys: tuple[Key, ...] = ()
    split: str | None = None
    closes: str | None = None
    order: Order | None = None

    def __str__(self) -> str:
        return _format_stage(self)


@dataclass(frozen=True, slots=True)
class Stream:
    """A queue between stages: one producer, any number of readers.

    Attributes:
        name: the bound name (`words`), a dead-letter name, or the producing stage's
            name for the streams inside a chain.
        producer: the stage that writes it.
        readers: the stages that read it, in file order.
        capacity: its bound, in events.
        bound: named in the flow file (so a later chain may read it).
        dead_letter: a stream of failed events (`on_error = dead_letter(NAME)`).
        order: its order; `None` when an earlier error left it unknown.
    """

    span: Span = field(compare=False)
    name: str
    producer: str
    readers: tuple[str, ...]
    capacity: int
    bound: bool = False
    dead_letter: bool = False
    order: Order | None = None

    def __str__(self) -> str:
        kind = "dead_letter " if self.dead_letter else ""
        readers = ", ".join(self.readers) or "(nobody)"
        return (
            f"stream {kind}{self.name}: {self.order or '?'} "
            f"[capacity = {self.capacity}]  {self.producer} -> {readers}"
        )


@dataclass(frozen=True, slots=True)
class Param:
    """A flow parameter with its type, default and the value it takes in this run."""

    span: Span = field(compare=False)
    name: str
    type: str
    default: Value
    value: Value

    def __str__(self) -> str:
        text = f"param {self.name}: {self.type}"
        if self.default is not None:
            text += f" = {self._show(self.default)}"
        if self.value != self.default:
            text += f"  (given {self._show(self.value)})"
        return text

    def _show(self, value: Value) -> str:
        if self.type == "duration" and isinstance(value, float):
            return f"{value:g}s"
        return format_value(value)


@dataclass(frozen=True, slots=True)
class Use:
    """A resolved `use`: the name bound in the file and the module behind it."""

    span: Span = field(compare=False)
    alias: str
    module: str
    path: str | None
    python: bool

    def __str__(self) -> str:
        kind = "use python" if self.python else "use"
        where = f" from {self.path}" if self.path else ""
        return f"{kind} {self.alias} = {self.module}{where}"


@dataclass(frozen=True, slots=True)
class Flow:
    """A checked flow: its parameters, modules, stages in topological order, streams."""

    span: Span = field(compare=False)
    name: str
    file: str
    delivery: Delivery
    params: tuple[Param, ...]
    uses: tuple[Use, ...]
    stages: tuple[Stage, ...]
    streams: tuple[Stream, ...]

    def __str__(self) -> str:
        return format_ir(self)


def format_ir(flow: Flow) -> str:
    """The flow as stable, readable text: header, modules, stages, streams."""
    lines = [f"flow {flow.name} [delivery = {flow.delivery}]"]
    lines.extend(f"  {param}" for param in flow.params)
    lines.append("")
    lines.extend(str(use) for use in flow.uses)
    if flow.uses:
        lines.append("")
    lines.extend(str(stage) for stage in flow.stages)
    lines.append("")
    lines.extend(str(stream) for stream in flow.streams)
    return "\n".join(lines) + "\n"


def format_value(value: Value) -> str:
    """A literal as the flow file would write it."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list):
        return f"[{', '.join(format_value(v) for v in value)}]"
    if value is None:
        return "none"
    return repr(value)


def _format_stage(stage: Stage) -> str:
    what = stage.kind if stage.function is None else f"{stage.kind} {stage.function}"
    if stage.kind == "join" and len(stage.join_keys) == 2 and len(stage.inputs) == 2:
        left, right = stage.inputs
        what = f"join {left} by {stage.join_keys[0]}, {right} by {stage.join_keys[1]}"
    elif stage.inputs:
        what += f" <- {', '.join(stage.inputs)}"
    options = str(stage.options)
    parts = [f"{stage.name} = {what}"]
    if options:
        parts.append(options)
    if stage.output is not None:
        parts.append(f"-> {stage.output}")
    parts.append(f": {stage.order or '?'}")
    notes = []
    if stage.split is not None:
        notes.append(f"in split {stage.split}")
    if stage.closes is not None:
        notes.append(f"closes {stage.closes}")
    if stage.fragments:
        notes.append(f"from def {'/'.join(stage.fragments)}")
    if stage.function is not None and stage.function.rewindable:
        notes.append("rewindable")
    if stage.function is not None and stage.function.is_async:
        notes.append("async")
    located = f"@{stage.span.line}:{stage.span.column}"
    tail = f"  # {located}{'; ' + '; '.join(notes) if notes else ''}"
    return " ".join(parts) + tail

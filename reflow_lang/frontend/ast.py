"""The syntax tree of a `.flow` file, as written: nothing resolved yet.

Every node is a frozen dataclass with a `span`. `str(node)` prints `.flow`-like
source; `repr(node)` reads like a constructor call.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, is_dataclass, replace

from reflow_lang.frontend.span import Span

# --- expressions: arguments, option values, keys ---------------------------------


@dataclass(frozen=True, slots=True)
class Name:
    """A dotted name: `path`, `text.words`, `str.lower`, `self`, `total`."""

    span: Span
    parts: tuple[str, ...]

    @property
    def dotted(self) -> str:
        return ".".join(self.parts)

    def __str__(self) -> str:
        return self.dotted


@dataclass(frozen=True, slots=True)
class Int:
    span: Span
    value: int

    def __str__(self) -> str:
        return str(self.value)


@dataclass(frozen=True, slots=True)
class Float:
    span: Span
    value: float

    def __str__(self) -> str:
        return repr(self.value)


@dataclass(frozen=True, slots=True)
class Str:
    span: Span
    value: str

    def __str__(self) -> str:
        return _quote(self.value)


@dataclass(frozen=True, slots=True)
class Bool:
    span: Span
    value: bool

    def __str__(self) -> str:
        return "true" if self.value else "false"


@dataclass(frozen=True, slots=True)
class Duration:
    """`250ms`, `5s`, `2m`: kept as written, with its value in seconds."""

    span: Span
    seconds: float
    text: str

    def __str__(self) -> str:
        return self.text


@dataclass(frozen=True, slots=True)
class List:
    span: Span
    items: tuple[Expr, ...]

    def __str__(self) -> str:
        return "[" + ", ".join(str(item) for item in self.items) + "]"


@dataclass(frozen=True, slots=True)
class Call:
    """A name applied to arguments: `text.lines(path)`, `retry(3)`, `keyed(user)`."""

    span: Span
    callee: Name
    args: tuple[Expr, ...]

    def __str__(self) -> str:
        return f"{self.callee}({', '.join(str(arg) for arg in self.args)})"


Expr = Name | Int | Float | Str | Bool | Duration | List | Call


@dataclass(frozen=True, slots=True)
class Option:
    """`key = value` inside `[...]`."""

    span: Span
    key: str
    key_span: Span
    value: Expr

    def __str__(self) -> str:
        return f"{self.key} = {self.value}"


# --- heads and stages ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SourceHead:
    """`source F(args) [options]`."""

    span: Span
    function: Call
    options: tuple[Option, ...]

    def __str__(self) -> str:
        return f"source {_function(self.function)}{_options(self.options)}"


@dataclass(frozen=True, slots=True)
class StreamHead:
    """A stream bound earlier, read by name."""

    span: Span
    name: Name

    def __str__(self) -> str:
        return str(self.name)


@dataclass(frozen=True, slots=True)
class MergeHead:
    """`merge(A, B, ...) [options]`."""

    span: Span
    inputs: tuple[Name, ...]
    options: tuple[Option, ...]

    def __str__(self) -> str:
        inputs = ", ".join(str(name) for name in self.inputs)
        return f"merge({inputs}){_options(self.options)}"


@dataclass(frozen=True, slots=True)
class JoinHead:
    """`join A by KA, B by KB [options]`; a key is a Name, a Str (field) or a Call."""

    span: Span
    left: Name
    left_key: Expr
    right: Name
    right_key: Expr
    options: tuple[Option, ...]

    def __str__(self) -> str:
        left = f"{self.left} by {self.left_key}"
        right = f"{self.right} by {self.right_key}"
        return f"join {left}, {right}{_options(self.options)}"


Head = SourceHead | StreamHead | MergeHead | JoinHead


@dataclass(frozen=True, slots=True)
class Stage:
    """One `| ...` step of a chain.

    `kind` is the stage keyword (`map`, `flat_map`, `filter`, `key_by`, `rejoin`,
    `count`, `reduce`, `sink`) or `fragment` for a `def` used as a stage, whose
    name is then `function.callee` with no arguments.
    """

    span: Span
    kind: str
    kind_span: Span
    function: Call | None
    options: tuple[Option, ...]

    def __str__(self) -> str:
        if self.kind == "fragment" and self.function is not None:
            return f"{self.function.callee}{_options(self.options)}"
        function = "" if self.function is None else " " + _function(self.function)
        return f"{self.kind}{function}{_options(self.options)}"


@dataclass(frozen=True, slots=True)
class Chain:
    span: Span
    head: Head
    stages: tuple[Stage, ...]

    def __str__(self) -> str:
        return " | ".join([str(self.head), *(str(stage) for stage in self.stages)])


# --- statements ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Param:
    """`name: type = default` in the flow header."""

    span: Span
    name: str
    type: str
    type_span: Span
    default: Expr | None

    def __str__(self) -> str:
        default = "" if self.default is None else f" = {self.default}"
        return f"{self.name}: {self.type}{default}"


@dataclass(frozen=True, slots=True)
class Header:
    """`flow NAME(PARAMS) [OPTIONS]`."""

    span: Span
    name: str
    params: tuple[Param, ...]
    options: tuple[Option, ...]

    def __str__(self) -> str:
        params = ", ".join(str(param) for param in self.params)
        return f"flow {self.name}({params}){_options(self.options)}"


@dataclass(frozen=True, slots=True)
class Use:
    """`use MODULE [as ALIAS]` or `use python MODULE [as ALIAS]`."""

    span: Span
    module: Name
    python: bool
    alias: str | None

    @property
    def bound(self) -> str:
        """The name the module is bound to in the file."""
        return self.alias or self.module.parts[-1]

    def __str__(self) -> str:
        python = "python " if self.python else ""
        alias = "" if self.alias is None else f" as {self.alias}"
        return f"use {python}{self.module}{alias}"


@dataclass(frozen=True, slots=True)
class Binding:
    """`NAME = CHAIN`."""

    span: Span
    name: str
    name_span: Span
    chain: Chain

    def __str__(self) -> str:
        return f"{self.name} = {self.chain}"


@dataclass(frozen=True, slots=True)
class Statement:
    """An unbound chain (it must end in a sink)."""

    span: Span
    chain: Chain

    def __str__(self) -> str:
        return str(self.chain)


@dataclass(frozen=True, slots=True)
class Def:
    """`def NAME(IN) = CHAIN`: a fragment whose chain's head is its parameter."""

    span: Span
    name: str
    name_span: Span
    param: str
    chain: Chain

    def __str__(self) -> str:
        return f"def {self.name}({self.param}) = {self.chain}"


@dataclass(frozen=True, slots=True)
class Module:
    """A whole file: a flow (with a header) or a library (without)."""

    span: Span
    header: Header | None
    uses: tuple[Use, ...]
    defs: tuple[Def, ...]
    body: tuple[Binding | Statement, ...]

    def __str__(self) -> str:
        """The module as canonical `.flow` source: header, uses, defs, then the body."""
        header = () if self.header is None else (self.header,)
        statements = (*header, *self.uses, *self.defs, *self.body)
        return "".join(f"{statement}\n" for statement in statements)


Node = (
    Name
    | Int
    | Float
    | Str
    | Bool
    | Duration
    | List
    | Call
    | Option
    | SourceHead
    | StreamHead
    | MergeHead
    | JoinHead
    | Stage
    | Chain
    | Param
    | Header
    | Use
    | Binding
    | Statement
    | Def
    | Module
)


# --- printing as source ------------------------------------------------------------

_ESCAPES = {
    "\\": "\\\\",
    '"': '\\"',
    "\n": "\\n",
    "\t": "\\t",
    "\r": "\\r",
    "\0": "\\0",
}


def _quote(value: str) -> str:
    return '"' + "".join(_escape(char) for char in value) + '"'


def _escape(char: str) -> str:
    if char in _ESCAPES:
        return _ESCAPES[char]
    if char.isprintable():
        return char
    code = ord(char)
    return f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}"


def _function(call: Call) -> str:
    # A stage's function is a call either way: `map str.lower` means `map str.lower()`.
    return str(call) if call.args else str(call.callee)


def _options(options: tuple[Option, ...]) -> str:
    if not options:
        return ""
    return " [" + ", ".join(str(option) for option in options) + "]"


# --- printing as a tree ------------------------------------------------------------


def format_ast(node: Node) -> str:
    """A stable, indented tree of `node` and its children, with their spans.

    Each line shows a node's class, its span as `line:column-end_line:end_column` and
    its plain fields; child nodes follow, indented, labelled with their field (and
    index). A `Name` shows its dotted name. This is what `reflowc compile --emit ast`
    prints.
    """
    lines: list[str] = []
    _tree(node, "", 0, lines)
    return "\n".join(lines) + "\n"


def _tree(node: Node, label: str, depth: int, lines: list[str]) -> None:
    scalars: list[str] = []
    children: list[tuple[str, Node]] = []
    for field in fields(node):
        value = getattr(node, field.name)
        if field.name == "span" or value is None:
            continue
        if isinstance(value, Span):
            scalars.append(f"{field.name}={_position(value)}")
        elif is_dataclass(value):
            children.append((field.name, value))  # type: ignore[arg-type]
        elif isinstance(value, tuple) and all(is_dataclass(item) for item in value):
            children.extend(
                (f"{field.name}[{i}]", item) for i, item in enumerate(value)
            )
        elif isinstance(node, Name) and field.name == "parts":
            scalars.append(node.dotted)
        else:
            scalars.append(f"{field.name}={value!r}")

    prefix = f"{label}: " if label else ""
    text = " ".join([f"{prefix}{type(node).__name__}", _position(node.span), *scalars])
    lines.append("  " * depth + text)
    for child_label, child in children:
        _tree(child, child_label, depth + 1, lines)


def _position(span: Span) -> str:
    return f"{span.line}:{span.column}-{span.end_line}:{span.end_column}"


# --- comparing without positions -----------------------------------------------------

_NOWHERE = Span("", 0, 0, 0, 0)


def without_spans(node: Node) -> Node:
    """`node` with every span replaced by one fixed span: to compare trees by shape."""
    changes: dict[str, object] = {}
    for field in fields(node):
        value = getattr(node, field.name)
        if isinstance(value, Span):
            changes[field.name] = _NOWHERE
        elif is_dataclass(value):
            changes[field.name] = without_spans(value)  # type: ignore[arg-type]
        elif isinstance(value, tuple) and value and is_dataclass(value[0]):
            changes[field.name] = tuple(without_spans(item) for item in value)
    return replace(node, **changes)  # type: ignore[arg-type]

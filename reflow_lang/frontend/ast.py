"""The syntax tree of a `.flow` file, as written: nothing resolved yet.

Every node is a frozen dataclass with a `span`. `str(node)` prints `.flow`-like
source; `repr(node)` reads like a constructor call.
"""

from __future__ import annotations

from dataclasses import dataclass

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


@dataclass(frozen=True, slots=True)
class Int:
    span: Span
    value: int


@dataclass(frozen=True, slots=True)
class Float:
    span: Span
    value: float


@dataclass(frozen=True, slots=True)
class Str:
    span: Span
    value: str


@dataclass(frozen=True, slots=True)
class Bool:
    span: Span
    value: bool


@dataclass(frozen=True, slots=True)
class Duration:
    """`250ms`, `5s`, `2m`: kept as written, with its value in seconds."""

    span: Span
    seconds: float
    text: str


@dataclass(frozen=True, slots=True)
class List:
    span: Span
    items: tuple[Expr, ...]


@dataclass(frozen=True, slots=True)
class Call:
    """A name applied to arguments: `text.lines(path)`, `retry(3)`, `keyed(user)`."""

    span: Span
    callee: Name
    args: tuple[Expr, ...]


Expr = Name | Int | Float | Str | Bool | Duration | List | Call


@dataclass(frozen=True, slots=True)
class Option:
    """`key = value` inside `[...]`."""

    span: Span
    key: str
    key_span: Span
    value: Expr


# --- heads and stages ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SourceHead:
    """`source F(args) [options]`."""

    span: Span
    function: Call
    options: tuple[Option, ...]


@dataclass(frozen=True, slots=True)
class StreamHead:
    """A stream bound earlier, read by name."""

    span: Span
    name: Name


@dataclass(frozen=True, slots=True)
class MergeHead:
    """`merge(A, B, ...) [options]`."""

    span: Span
    inputs: tuple[Name, ...]
    options: tuple[Option, ...]


@dataclass(frozen=True, slots=True)
class JoinHead:
    """`join A by KA, B by KB [options]`; a key is a Name, a Str (field) or a Call."""

    span: Span
    left: Name
    left_key: Expr
    right: Name
    right_key: Expr
    options: tuple[Option, ...]


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


@dataclass(frozen=True, slots=True)
class Chain:
    span: Span
    head: Head
    stages: tuple[Stage, ...]


# --- statements ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Param:
    """`name: type = default` in the flow header."""

    span: Span
    name: str
    type: str
    type_span: Span
    default: Expr | None


@dataclass(frozen=True, slots=True)
class Header:
    """`flow NAME(PARAMS) [OPTIONS]`."""

    span: Span
    name: str
    params: tuple[Param, ...]
    options: tuple[Option, ...]


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


@dataclass(frozen=True, slots=True)
class Binding:
    """`NAME = CHAIN`."""

    span: Span
    name: str
    name_span: Span
    chain: Chain


@dataclass(frozen=True, slots=True)
class Statement:
    """An unbound chain (it must end in a sink)."""

    span: Span
    chain: Chain


@dataclass(frozen=True, slots=True)
class Def:
    """`def NAME(IN) = CHAIN`: a fragment whose chain's head is its parameter."""

    span: Span
    name: str
    name_span: Span
    param: str
    chain: Chain


@dataclass(frozen=True, slots=True)
class Module:
    """A whole file: a flow (with a header) or a library (without)."""

    span: Span
    header: Header | None
    uses: tuple[Use, ...]
    defs: tuple[Def, ...]
    body: tuple[Binding | Statement, ...]

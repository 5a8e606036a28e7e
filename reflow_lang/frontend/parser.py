"""Text to AST: the layout pass, the LALR parser driver, error recovery and the builder.

`parse(text, file)` turns the text of a `.flow` file into an `ast.Module`, or reports
why it cannot. It works in four steps:

1. lark's basic lexer turns the text into tokens (`grammar/flow.lark`); it never stops,
   because stray characters and unclosed strings have tokens of their own;
2. the layout pass cuts the tokens into statements: a newline ends a statement unless
   it is inside brackets or the next line starts with `|`;
3. each statement is fed on its own to lark's LALR parser (the `statement` rule),
   resolving contextual keywords on the way; a statement that fails gets one
   diagnostic, classified by the table in `syntax_errors.py`, and parsing goes on at
   the next statement, so independent mistakes are each reported and none cascades;
4. `_Builder`, a lark `Transformer` whose methods are named after the grammar's rules,
   turns each statement's tree into AST nodes, checking literals on the way.
"""

from __future__ import annotations

import functools
import importlib.resources
import re
from collections.abc import Iterator, Sequence
from copy import copy
from dataclasses import dataclass
from typing import Any

from lark import Lark, Token, Transformer, Tree
from lark.exceptions import UnexpectedToken
from lark.lark import PostLex
from lark.parsers.lalr_parser_state import ParserState
from lark.tree import Meta

from reflow_lang.frontend import ast
from reflow_lang.frontend.ast import format_ast
from reflow_lang.frontend.diagnostics import Diagnostic, did_you_mean, error
from reflow_lang.frontend.source import MAX_BYTES
from reflow_lang.frontend.span import Span
from reflow_lang.frontend.syntax_errors import EXAMPLES, BadExample

__all__ = [
    "PARAM_TYPES",
    "STAGE_KEYWORDS",
    "Lost",
    "Partial",
    "format_ast",
    "parse",
    "parse_partial",
]

# Deeper brackets than this are refused before parsing: the builder recurses once per
# level, and no real flow nests arguments more than a few levels.
MAX_DEPTH = 64

# After this many syntax errors the rest of a file is not parsed: past that point the
# file is most likely not a flow at all, and more messages would not help.
MAX_ERRORS = 50

PARAM_TYPES: tuple[str, ...] = ("str", "int", "float", "bool", "duration", "path")

STAGE_KEYWORDS: tuple[str, ...] = (
    "map",
    "flat_map",
    "filter",
    "key_by",
    "rejoin",
    "reduce",
    "sink",
    "count",
)

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")

# How many tokens after a word that may be a keyword or a name decide which it is.
_WINDOW = 3

# After `|` these are keywords whatever follows, so that `| map | sink f` reports a
# missing function rather than reading a fragment named `map`.
_ALWAYS_KEYWORDS = frozenset(word.upper() for word in STAGE_KEYWORDS)

_OPENING = {"LPAR": ")", "LSQB": "]"}
_CLOSING = frozenset({"RPAR", "RSQB"})

# Tokens that go on a statement when they start a line, so never start one.
_CONTINUING = frozenset({"VBAR", "RPAR", "RSQB", "COMMA"})

# The tokens `_token_problem` looks at: stray characters, open strings, brackets.
_CHECKED = frozenset({"BAD_CHAR", "BAD_STRING", *_OPENING})

_PUNCTUATION = {
    "LPAR": "(",
    "RPAR": ")",
    "LSQB": "[",
    "RSQB": "]",
    "COMMA": ",",
    "EQUAL": "=",
    "COLON": ":",
    "DOT": ".",
    "VBAR": "|",
}

_WORDS = {
    "NAME": "a name",
    "NUMBER": "a number",
    "STRING": "a string",
    "$END": "the end of the line",
}

_VALUE_STARTS = frozenset({"NUMBER", "STRING", "TRUE", "FALSE", "LSQB", "NAME"})


class _KeepReportedTerminals(PostLex):
    """Keeps the terminals that no rule uses, matched only so they can be reported."""

    always_accept = ("BAD_STRING", "BAD_CHAR")

    def process(self, stream: Iterator[Token]) -> Iterator[Token]:
        return stream


@dataclass(frozen=True, slots=True)
class _Grammar:
    """The parser built once per process, and what the driver needs from its tables."""

    lark: Lark
    template: ParserState[Any]
    quiet: ParserState[Any]
    keywords: frozenset[str]


@functools.cache
def _grammar() -> _Grammar:
    text = importlib.resources.files("reflow_lang.grammar").joinpath("flow.lark")
    lark = Lark(
        text.read_text(encoding="utf-8"),
        parser="lalr",
        lexer="basic",
        start=["start", "statement"],
        propagate_positions=True,
        maybe_placeholders=True,
        postlex=_KeepReportedTerminals(),
    )
    template = lark.parse_interactive(None, start="statement").parser_state

    # Probing whether a token fits must not build trees: a copy without callbacks.
    quiet_conf = copy(template.parse_conf)
    quiet_conf.callbacks = {}
    quiet = ParserState(quiet_conf, template.lexer)

    keywords = frozenset(
        t.name
        for t in lark.terminals
        if t.pattern.type == "str" and re.fullmatch(r"[a-z_]+", t.pattern.value)
    )
    return _Grammar(lark, template, quiet, keywords)


# --- the entry point ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Lost:
    """What the statements that failed to parse would have bound.

    The checker reads the rest of the file with these names known but unknown in
    kind, so that a syntax error in one statement does not turn every later use of
    its names into another error.

    Attributes:
        streams: stream names (`NAME = ...`, and `dead_letter(NAME)` inside).
        fragments: `def` names.
        modules: the names `use` lines would bind.
        header: the `flow` header itself failed.
        use: some `use` line failed (it may have named a library of fragments).
    """

    streams: frozenset[str] = frozenset()
    fragments: frozenset[str] = frozenset()
    modules: frozenset[str] = frozenset()
    header: bool = False
    use: bool = False


@dataclass(frozen=True, slots=True)
class Partial:
    """The statements that parsed, the syntax errors, and what the others bound."""

    module: ast.Module | None
    diagnostics: list[Diagnostic]
    lost: Lost


def parse(text: str, file: str) -> tuple[ast.Module | None, list[Diagnostic]]:
    """Parses the text of a `.flow` file.

    Args:
        text: the file's text.
        file: the name spans and diagnostics use for the file.

    Returns:
        The module and no diagnostics, or `None` and at least one diagnostic (sorted
        by position). Never raises on any text.
    """
    partial = parse_partial(text, file)
    if partial.diagnostics:
        return None, partial.diagnostics
    return partial.module, []


def parse_partial(text: str, file: str) -> Partial:
    """Parses what it can: every statement that parses, even after syntax errors.

    The module is `None` only when the text is too large to parse at all.
    """
    if len(text) > MAX_BYTES:
        msg = f"the text is {len(text)} characters; a flow may be at most {MAX_BYTES}"
        problem = error("E007", Span.point(file), msg, "is this the right text?")
        return Partial(None, [problem], Lost())

    tokens = list(_grammar().lark.lex(text))
    trees, diagnostics, lost = _parse_statements(tokens, file)

    builder = _Builder(file)
    statements = [builder.transform(tree) for tree in trees]
    diagnostics.extend(builder.diagnostics)

    first = next((t for t in tokens if t.type != "_NL"), None)
    module = _assemble(statements, _file_span(text, file), first, diagnostics)
    if not statements and "#" in text:
        # Only comments and blank lines: "empty" would puzzle whoever wrote them.
        diagnostics[:] = [
            _only_comments(d) if d.code == "E006" else d for d in diagnostics
        ]
    diagnostics.sort(key=lambda d: (d.span.line, d.span.column, d.code))
    return Partial(module, diagnostics, lost)


def _file_span(text: str, file: str) -> Span:
    last_line = text.count("\n") + 1
    last_column = len(text) - (text.rfind("\n") + 1) + 1
    return Span(file, 1, 1, last_line, last_column)


# --- layout: tokens to statements --------------------------------------------------


def _skip_newlines(tokens: Sequence[Token], index: int) -> int:
    while index < len(tokens) and tokens[index].type == "_NL":
        index += 1
    return index


def _statement_end(tokens: Sequence[Token], start: int) -> int:
    """The index of the newline that ends the statement starting at `start`."""
    depth = 0
    index = start
    while index < len(tokens):
        kind = tokens[index].type
        if kind in _OPENING:
            depth += 1
        elif kind in _CLOSING:
            depth = max(0, depth - 1)
        elif kind == "_NL" and depth == 0:
            after = _skip_newlines(tokens, index)
            if after >= len(tokens) or tokens[after].type != "VBAR":
                return index
            index = after
            continue
        index += 1
    return index


def _resync(tokens: Sequence[Token], index: int, column: int) -> int:
    """Where to go on after an error: the next line that looks like a new statement.

    That is the first token at or after `index` that starts a line, at `column` (where
    the failed statement began) or left of it, and is not `|`, `)`, `]` or `,`. A
    statement's own continuation lines are usually indented, so this skips them and
    finds the next statement even when a bracket was left open.
    """
    for position in range(index, len(tokens)):
        token = tokens[position]
        if (
            tokens[position - 1].type == "_NL"
            and (token.column or 1) <= column
            and token.type not in _CONTINUING
        ):
            return position
    return len(tokens)


def _parse_statements(
    tokens: Sequence[Token], file: str
) -> tuple[list[Any], list[Diagnostic], Lost]:
    trees: list[Any] = []
    diagnostics: list[Diagnostic] = []
    failed: list[Sequence[Token]] = []
    position = _skip_newlines(tokens, 0)

    while position < len(tokens):
        if len(diagnostics) >= MAX_ERRORS:
            diagnostics.append(_too_many_errors(tokens[position], file))
            failed.append(tokens[position:])
            break

        end = _statement_end(tokens, position)
        outcome = _feed_statement(tokens, position, end, file)
        if isinstance(outcome, _Failed):
            diagnostics.append(outcome.diagnostic)
            column = tokens[position].column or 1
            after = _resync(tokens, max(outcome.index, position + 1), column)
            failed.append(tokens[position : max(after, end)])
            position = after
        else:
            trees.append(outcome)
            position = end
        position = _skip_newlines(tokens, position)
    return trees, diagnostics, _lost(failed)


def _lost(failed: Sequence[Sequence[Token]]) -> Lost:
    """The names the failed statements (each a run of tokens) would have bound."""
    streams: set[str] = set()
    fragments: set[str] = set()
    modules: set[str] = set()
    header = use = False
    for tokens in failed:
        words = [str(t) for t in tokens if t.type != "_NL"]
        first, second = (words + ["", ""])[:2]
        if first == "flow":
            header = True
        elif first == "use":
            use = True
            modules.update(_use_binds(words[1:]))
        elif first == "def" and _NAME.fullmatch(second):
            fragments.add(second)
        elif _NAME.fullmatch(first) and second == "=":
            streams.add(first)
        streams.update(
            words[i + 2]
            for i in range(len(words) - 2)
            if words[i] == "dead_letter" and words[i + 1] == "("
        )
    return Lost(
        frozenset(streams), frozenset(fragments), frozenset(modules), header, use
    )


def _use_binds(words: Sequence[str]) -> set[str]:
    """The names `use [python] a.b [as c]` may bind, from what is left of it."""
    if "as" in words[:-1]:
        return {words[words.index("as") + 1]}
    names = [w for w in words if _NAME.fullmatch(w) and w != "as"]
    # `python` is a keyword or a module name; both readings are kept.
    return set(names[-1:]) | ({"python"} if names[:1] == ["python"] else set())


def _too_many_errors(token: Token, file: str) -> Diagnostic:
    msg = f"too many syntax errors ({MAX_ERRORS}); the rest of the file was not parsed"
    return error("E025", _token_span(token, file), msg, "fix the errors above first")


# --- feeding one statement to the LALR parser --------------------------------------


@dataclass(frozen=True, slots=True)
class _Failed:
    """A statement that could not be parsed, and the token index to resync from."""

    index: int
    diagnostic: Diagnostic


@dataclass(frozen=True, slots=True)
class _Stuck:
    """Where the parser stopped: the token before, the token found, what would fit."""

    after: Token | None
    found: Token | None
    expected: frozenset[str]


def _feed_statement(tokens: Sequence[Token], start: int, end: int, file: str) -> Any:
    """Parses `tokens[start:end]` as one statement: its tree, or a `_Failed`."""
    grammar = _grammar()
    state = grammar.template.copy()
    positions = [i for i in range(start, end) if tokens[i].type != "_NL"]
    brackets: list[Token] = []
    previous: Token | None = None

    for n, index in enumerate(positions):
        token = tokens[index]
        if token.type in _CHECKED:
            problem = _token_problem(token, brackets, file)
            if problem is not None:
                return _Failed(index, problem)
        if token.type in grammar.keywords:
            ahead = [tokens[p] for p in positions[n + 1 : n + 1 + _WINDOW]]
            token = _resolve_keyword(state, token, ahead)

        try:
            state.feed_token(token)
        except UnexpectedToken:
            stuck = _Stuck(previous, token, _accepts(state))
            diagnostic = _unclosed(tokens, index, end, brackets, token, file)
            diagnostic = diagnostic or _syntax_error(stuck, file, at_end=False)
            return _Failed(index, diagnostic)

        _track_brackets(token, brackets)
        previous = token
    return _finish(state, tokens, previous, end, brackets, file)


def _finish(
    state: ParserState[Any],
    tokens: Sequence[Token],
    last: Token | None,
    end: int,
    brackets: list[Token],
    file: str,
) -> Any:
    assert last is not None, "a statement has at least one token"
    try:
        return state.feed_token(Token.new_borrow_pos("$END", "", last), True)
    except UnexpectedToken:
        at_end = _skip_newlines(tokens, end) >= len(tokens)
        if brackets:
            return _Failed(end, _never_closed(brackets[-1], None, at_end, file))
        stuck = _Stuck(last, None, _accepts(state))
        return _Failed(end, _syntax_error(stuck, file, at_end=at_end))


def _track_brackets(token: Token, brackets: list[Token]) -> None:
    if token.type in _OPENING:
        brackets.append(token)
    elif brackets and token.type in _CLOSING:
        brackets.pop()


def _token_problem(token: Token, brackets: list[Token], file: str) -> Diagnostic | None:
    """A token that cannot be fed: a stray character, an open string, a deep bracket."""
    span = _token_span(token, file)
    if token.type == "BAD_CHAR":
        return _bad_character(token, span)
    if token.type == "BAD_STRING":
        msg = 'this string is not closed; a string ends with `"` on the same line'
        return error("E021", span, msg, 'close it with `"`; write a newline as `\\n`')
    if token.type in _OPENING and len(brackets) >= MAX_DEPTH:
        msg = f"brackets are nested more than {MAX_DEPTH} levels deep"
        return error("E024", span, msg, "a flow's arguments need only a few levels")
    return None


def _bad_character(token: Token, span: Span) -> Diagnostic:
    char = str(token)[0]
    span = Span(span.file, span.line, span.column, span.line, span.column + 1)
    shown = char if char.isprintable() and not char.isspace() else f"U+{ord(char):04X}"
    hints = {
        "'": 'strings use double quotes: `"..."`',
        "-": "a negative number is written with no space: `-5`",
        "{": "options and lists use square brackets: `[workers = 2]`",
        ";": "statements end at the end of a line; `;` is not needed",
    }
    if char in hints:
        hint = hints[char]
    elif char.isalnum():
        hint = "names are written with ASCII letters, digits and `_`"
    else:
        hint = "remove it, or put it inside a string"
    return error("E020", span, f"unexpected character `{shown}`", hint)


def _resolve_keyword(
    state: ParserState[Any], token: Token, following: Sequence[Token]
) -> Token:
    """A keyword where the grammar takes that keyword here, a plain name otherwise.

    Where both fit, the keyword wins unless the tokens that follow (up to `_WINDOW`
    of them, or the end of the statement) fit only after a name; see the grammar's
    header comment. The stage words after `|` always win.
    """
    actions = state.parse_conf.states[state.position]
    as_name = Token.new_borrow_pos("NAME", str(token), token)
    if token.type not in actions:
        return as_name
    if "NAME" not in actions or token.type in _ALWAYS_KEYWORDS:
        return token

    ahead = following[:_WINDOW]
    ends = len(ahead) < _WINDOW
    if _reading_fits(state, token.type, ahead, ends):
        return token
    if _reading_fits(state, "NAME", ahead, ends):
        return as_name
    return token


def _probe(state: ParserState[Any]) -> ParserState[Any]:
    quiet = _grammar().quiet
    stack = list(state.state_stack)
    return ParserState(quiet.parse_conf, quiet.lexer, stack, list(state.value_stack))


def _reading_fits(
    state: ParserState[Any], first: str, ahead: Sequence[Token], ends: bool
) -> bool:
    """Whether `first`, then the tokens `ahead`, can come next in `state`.

    If `ends`, the statement ends after `ahead`. Each word ahead that may be a
    keyword or a name is tried both ways: at most `2 ** _WINDOW` short probes.
    """
    probe = _probe(state)
    try:
        probe.feed_token(Token(first, ""))
    except UnexpectedToken:
        return False
    if not ahead:
        return not ends or _accepts_one(probe, "$END")
    readings = _readings(probe, ahead[0])
    return any(_reading_fits(probe, kind, ahead[1:], ends) for kind in readings)


def _readings(state: ParserState[Any], token: Token) -> tuple[str, ...]:
    """The token types `token` may be read as in `state`."""
    if token.type not in _grammar().keywords:
        return (token.type,)
    actions = state.parse_conf.states[state.position]
    if token.type not in actions:
        return ("NAME",)
    if "NAME" not in actions or token.type in _ALWAYS_KEYWORDS:
        return (token.type,)
    return (token.type, "NAME")


def _accepts_one(state: ParserState[Any], kind: str) -> bool:
    probe = _probe(state)
    try:
        probe.feed_token(Token(kind, ""), kind == "$END")
    except UnexpectedToken:
        return False
    return True


def _accepts(state: ParserState[Any]) -> frozenset[str]:
    """The terminals that really fit next; LALR's merged states list more."""
    actions = state.parse_conf.states[state.position]
    return frozenset(k for k in actions if k.isupper() and _accepts_one(state, k))


# --- syntax error messages ---------------------------------------------------------


def _token_span(token: Token, file: str) -> Span:
    assert token.line is not None and token.column is not None
    assert token.end_line is not None and token.end_column is not None
    return Span(file, token.line, token.column, token.end_line, token.end_column)


def _after_span(token: Token, file: str) -> Span:
    """The one-column span just after `token`, where something was missing."""
    assert token.end_line is not None and token.end_column is not None
    return Span.point(file, token.end_line, token.end_column)


def _unclosed(
    tokens: Sequence[Token],
    index: int,
    end: int,
    brackets: list[Token],
    found: Token,
    file: str,
) -> Diagnostic | None:
    """E038 when the failure is on a later line than a bracket left open for good."""
    if not brackets or found.line == brackets[-1].line:
        return None
    depth = 0
    for position in range(index, end):
        kind = tokens[position].type
        depth += 1 if kind in _OPENING else -1 if kind in _CLOSING else 0
        if depth < 0:
            return None
    return _never_closed(brackets[-1], found, False, file)


def _never_closed(
    bracket: Token, found: Token | None, at_end: bool, file: str
) -> Diagnostic:
    closing = _OPENING[bracket.type]
    if found is None:
        where = _describe(found, at_end)
        msg = f"`{bracket}` is never closed; expected `{closing}` before {where}"
    else:
        msg = (
            f"`{bracket}` is never closed, so the statement runs on into line "
            f"{found.line}, where {_describe(found, False)} does not fit"
        )
    hint = f"add `{closing}`; a newline inside brackets does not end a statement"
    return error("E038", _token_span(bracket, file), msg, hint)


def _syntax_error(stuck: _Stuck, file: str, *, at_end: bool) -> Diagnostic:
    found = _describe(stuck.found, at_end)
    after = "" if stuck.after is None else str(stuck.after)
    example = _match_example(stuck)
    if stuck.found is not None:
        span = _token_span(stuck.found, file)
    else:
        assert stuck.after is not None
        span = _after_span(stuck.after, file)

    expected = _describe_expected(stuck.expected, at_end)
    if example is None and stuck.found is None:
        msg = f"expected {expected} after `{after}`; found {found}"
        return error("E030", span, msg, _generic_hint(stuck))
    if example is None:
        msg = f"unexpected {found}; expected {expected}"
        return error("E030", span, msg, _generic_hint(stuck))
    msg = example.message.format(found=found, after=after, expected=expected)
    hint = example.hint
    if example.code == "E031" and stuck.found is None and not at_end:
        hint = (
            "a chain goes on when the next line starts with `|`: move the `|` from "
            "the end of this line to the start of the next"
        )
    elif example.code == "E044" and stuck.found is not None and stuck.found == ".":
        hint = "a function needs a stage keyword before it: `map F`, `filter F`, ..."
    elif example.code == "E044":
        hint = did_you_mean(after, STAGE_KEYWORDS) or hint
    return error(example.code, span, msg, hint)


def _generic_hint(stuck: _Stuck) -> str | None:
    """A hint for two frequent failures no table entry names: a missing `,` or `|`."""
    if stuck.found is None or stuck.found.type not in _VALUE_STARTS:
        return None
    if "COMMA" in stuck.expected:
        return "separate arguments, list items and options with `,`"
    if "VBAR" in stuck.expected:
        return "to go on with another stage, write `|` before it"
    return None


def _describe(token: Token | None, at_end: bool) -> str:
    if token is None:
        return "the end of the file" if at_end else "the end of the line"
    text = str(token)
    if len(text) > 40:
        text = text[:37] + "..."
    if token.type in _PUNCTUATION:
        return f"`{text}`"
    if token.type in _grammar().keywords:
        return f"keyword `{text}`"
    noun = {"NUMBER": "number", "STRING": "string"}.get(token.type, "name")
    return f"{noun} `{text}`"


def _describe_expected(kinds: frozenset[str], at_end: bool) -> str:
    names: list[str] = []
    rest = set(kinds)
    if {"NUMBER", "STRING", "TRUE", "FALSE"} <= rest:
        names.append("a value")
        rest -= _VALUE_STARTS
    for kind in sorted(rest, key=_expected_order):
        if kind == "$END":
            names.append("the end of the file" if at_end else "the end of the line")
        elif kind in _WORDS:
            names.append(_WORDS[kind])
        else:
            names.append(f"`{_PUNCTUATION.get(kind, kind.lower())}`")
    if not names:  # pragma: no cover - every parser state accepts some token
        return "nothing more"
    if len(names) == 1:
        return names[0]
    return ", ".join(names[:-1]) + " or " + names[-1]


def _expected_order(kind: str) -> tuple[int, str]:
    # Words, then keywords, then punctuation, then the end: stable and readable.
    if kind == "$END":
        return (3, kind)
    if kind in _WORDS:
        return (0, kind)
    if kind in _PUNCTUATION:
        return (2, _PUNCTUATION[kind])
    return (1, kind.lower())


# --- the table of bad examples -------------------------------------------------------

_Key = tuple[str | None, str | None, frozenset[str]]


def _match_example(stuck: _Stuck) -> BadExample | None:
    table = _example_table()
    after = None if stuck.after is None else stuck.after.type
    found = "$END" if stuck.found is None else stuck.found.type
    for key in ((after, found, stuck.expected), (after, None, stuck.expected)):
        if key in table:
            return table[key]
    return table.get((None, found, stuck.expected))


@functools.cache
def _example_table() -> dict[_Key, BadExample]:
    table: dict[_Key, BadExample] = {}
    for entry in EXAMPLES:
        for example in entry.examples:
            stuck = _stuck_on(example)
            if stuck is None:
                continue
            table.setdefault(_key_of(entry, stuck), entry)
    return table


def _key_of(entry: BadExample, stuck: _Stuck) -> _Key:
    after = None if stuck.after is None else stuck.after.type
    found = "$END" if stuck.found is None else stuck.found.type
    if entry.match_on == "after":
        return (after, None, stuck.expected)
    if entry.match_on == "found":
        return (None, found, stuck.expected)
    return (after, found, stuck.expected)


def _stuck_on(example: str) -> _Stuck | None:
    """Where the parser stops on a one-statement example; `None` if it parses."""
    tokens = [t for t in _grammar().lark.lex(example) if t.type != "_NL"]
    state = _grammar().template.copy()
    previous: Token | None = None
    for n, token in enumerate(tokens):
        if token.type in _grammar().keywords:
            token = _resolve_keyword(state, token, tokens[n + 1 : n + 1 + _WINDOW])
        try:
            state.feed_token(token)
        except UnexpectedToken:
            return _Stuck(previous, token, _accepts(state))
        previous = token
    try:
        state.feed_token(Token("$END", ""), True)
    except UnexpectedToken:
        return _Stuck(previous, None, _accepts(state))
    return None


# --- the builder: parse trees to AST -----------------------------------------------

_INT = re.compile(r"-?[0-9](?:_?[0-9])*")
_FLOAT = re.compile(r"-?[0-9](?:_?[0-9])*(?:\.[0-9](?:_?[0-9])*)?(?:[eE][+-]?[0-9]+)?")
_DURATION = re.compile(r"([0-9]+(?:\.[0-9]+)?)(ms|s|m|h)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}

# Python refuses to convert longer digit strings to `int` (a guard against quadratic
# conversion); a flow never needs such numbers.
_MAX_DIGITS = 4000

_SMALLER = "write a smaller value; a flow's numbers are counts, sizes and times"

_ESCAPES = {"\\": "\\", '"': '"', "n": "\n", "t": "\t", "r": "\r", "0": "\0"}
_ESCAPE_HINT = (
    'write a backslash as `\\\\`; the escapes are `\\\\`, `\\"`, `\\n`, `\\t`, `\\r`, '
    "`\\0`, `\\uXXXX` and `\\UXXXXXXXX`"
)
_ESCAPE = re.compile(r"\\(u[0-9A-Fa-f]{4}|U[0-9A-Fa-f]{8}|.)", re.DOTALL)


def _options(value: tuple[ast.Option, ...] | None) -> tuple[ast.Option, ...]:
    return () if value is None else value


class _Builder(Transformer[Token, Any]):
    """Builds AST nodes from a statement's parse tree; one method per grammar rule.

    Each method takes the rule's `Meta` (its position) and its transformed children.
    Problems with literals (a bad number, an unknown escape, an unknown parameter
    type) are collected in `diagnostics`; the builder never raises.
    """

    def __init__(self, file: str) -> None:
        super().__init__()
        self.file = file
        self.diagnostics: list[Diagnostic] = []

    def transform(self, tree: Tree[Token]) -> Any:
        # lark's `v_args(meta=True)` builds a wrapper object on every call, which was a
        # third of the parse time; this loop passes the meta directly. Its recursion
        # depth is bounded by the parser's bracket limit (`MAX_DEPTH`).
        children = [
            self.transform(child) if isinstance(child, Tree) else child
            for child in tree.children
        ]
        return getattr(self, tree.data)(tree.meta, children)

    def _span(self, meta: Meta) -> Span:
        return Span(self.file, meta.line, meta.column, meta.end_line, meta.end_column)

    def _token_span(self, token: Token) -> Span:
        return _token_span(token, self.file)

    # --- statements

    def start(self, meta: Meta, children: list[Any]) -> list[Any]:
        return children

    def header(self, meta: Meta, children: list[Any]) -> ast.Header:
        name, params, options = children
        params = () if params is None else params
        return ast.Header(self._span(meta), str(name), params, _options(options))

    def params(self, meta: Meta, children: list[Any]) -> tuple[ast.Param, ...]:
        return tuple(c for c in children if c is not None)

    def param(self, meta: Meta, children: list[Any]) -> ast.Param:
        name, kind, default = children
        span = self._token_span(kind)
        if str(kind) not in PARAM_TYPES:
            self._unknown_type(kind, span)
        return ast.Param(self._span(meta), str(name), str(kind), span, default)

    def _unknown_type(self, kind: Token, span: Span) -> None:
        known = ", ".join(f"`{t}`" for t in PARAM_TYPES)
        msg = f"unknown parameter type `{kind}`; the types are {known}"
        hint = did_you_mean(str(kind), PARAM_TYPES)
        self.diagnostics.append(error("E026", span, msg, hint))

    def use(self, meta: Meta, children: list[Any]) -> ast.Use:
        python, module, alias = children
        alias_name = None if alias is None else str(alias)
        return ast.Use(self._span(meta), module, python is not None, alias_name)

    def fragment_def(self, meta: Meta, children: list[Any]) -> ast.Def:
        name, param, chain = children
        span = self._token_span(name)
        if str(name) in STAGE_KEYWORDS:
            msg = (
                f"a fragment cannot be named `{name}`; after `|` it is a stage keyword"
            )
            self.diagnostics.append(error("E029", span, msg, "choose another name"))
        return ast.Def(self._span(meta), str(name), span, str(param), chain)

    def binding(self, meta: Meta, children: list[Any]) -> ast.Binding:
        name, chain = children
        span = self._token_span(name)
        return ast.Binding(self._span(meta), str(name), span, chain)

    def unbound(self, meta: Meta, children: list[Any]) -> ast.Statement:
        (chain,) = children
        return ast.Statement(self._span(meta), chain)

    # --- chains

    def chain(self, meta: Meta, children: list[Any]) -> ast.Chain:
        head, *stages = children
        return ast.Chain(self._span(meta), head, tuple(stages))

    def source_head(self, meta: Meta, children: list[Any]) -> ast.SourceHead:
        function, options = children
        return ast.SourceHead(self._span(meta), function, _options(options))

    def stream_head(self, meta: Meta, children: list[Any]) -> ast.StreamHead:
        (name,) = children
        return ast.StreamHead(self._span(meta), self._name(name))

    def merge_head(self, meta: Meta, children: list[Any]) -> ast.MergeHead:
        *inputs, options = children
        names = tuple(self._name(t) for t in inputs if t is not None)
        return ast.MergeHead(self._span(meta), names, _options(options))

    def join_head(self, meta: Meta, children: list[Any]) -> ast.JoinHead:
        left, left_key, right, right_key, options = children
        return ast.JoinHead(
            self._span(meta),
            self._name(left),
            left_key,
            self._name(right),
            right_key,
            _options(options),
        )

    def function_stage(self, meta: Meta, children: list[Any]) -> ast.Stage:
        keyword, function, options = children
        span = self._token_span(keyword)
        return ast.Stage(
            self._span(meta), str(keyword), span, function, _options(options)
        )

    def count_stage(self, meta: Meta, children: list[Any]) -> ast.Stage:
        keyword, options = children
        span = self._token_span(keyword)
        return ast.Stage(self._span(meta), "count", span, None, _options(options))

    def fragment_stage(self, meta: Meta, children: list[Any]) -> ast.Stage:
        name, options = children
        span = self._token_span(name)
        call = ast.Call(span, self._name(name), ())
        return ast.Stage(self._span(meta), "fragment", span, call, _options(options))

    def function(self, meta: Meta, children: list[Any]) -> ast.Call:
        callee, args = children
        return ast.Call(self._span(meta), callee, () if args is None else args)

    def options(self, meta: Meta, children: list[Any]) -> tuple[ast.Option, ...]:
        return tuple(c for c in children if c is not None)

    def option(self, meta: Meta, children: list[Any]) -> ast.Option:
        key, value = children
        return ast.Option(self._span(meta), str(key), self._token_span(key), value)

    # --- values

    def call(self, meta: Meta, children: list[Any]) -> ast.Call:
        callee, args = children
        return ast.Call(self._span(meta), callee, args)

    def args(self, meta: Meta, children: list[Any]) -> tuple[ast.Expr, ...]:
        return tuple(c for c in children if c is not None)

    def list_value(self, meta: Meta, children: list[Any]) -> ast.List:
        return ast.List(self._span(meta), tuple(c for c in children if c is not None))

    def dotted(self, meta: Meta, children: list[Any]) -> ast.Name:
        return ast.Name(self._span(meta), tuple(str(c) for c in children))

    def boolean(self, meta: Meta, children: list[Any]) -> ast.Bool:
        (token,) = children
        return ast.Bool(self._span(meta), str(token) == "true")

    def string(self, meta: Meta, children: list[Any]) -> ast.Str:
        (token,) = children
        span = self._span(meta)
        return ast.Str(span, self._unescape(str(token)[1:-1], span))

    def number(self, meta: Meta, children: list[Any]) -> ast.Expr:
        (token,) = children
        span = self._span(meta)
        text = str(token)
        if _INT.fullmatch(text):
            return self._int(text, span)
        if _FLOAT.fullmatch(text):
            return self._float(text, span)
        duration = _DURATION.fullmatch(text.removeprefix("-"))
        if duration is not None and not text.startswith("-"):
            seconds = float(duration.group(1)) * _UNIT_SECONDS[duration.group(2)]
            if seconds == float("inf"):
                msg = f"the duration `{_short(text)}` is too long"
                self.diagnostics.append(error("E023", span, msg, _SMALLER))
                return ast.Duration(span, 0.0, text)
            return ast.Duration(span, seconds, text)
        return self._bad_number(text, span)

    def _name(self, token: Token) -> ast.Name:
        return ast.Name(self._token_span(token), (str(token),))

    def _int(self, text: str, span: Span) -> ast.Expr:
        if len(text) > _MAX_DIGITS:
            shown, digits = _short(text), len(text)
            msg = f"the integer `{shown}` has {digits} digits; at most {_MAX_DIGITS}"
            self.diagnostics.append(error("E023", span, msg, _SMALLER))
            return ast.Int(span, 0)
        return ast.Int(span, int(text))

    def _float(self, text: str, span: Span) -> ast.Expr:
        value = float(text)
        if value in (float("inf"), float("-inf")):
            msg = f"the number `{_short(text)}` is too large for a float"
            self.diagnostics.append(error("E023", span, msg, _SMALLER))
            return ast.Float(span, 0.0)
        return ast.Float(span, value)

    def _bad_number(self, text: str, span: Span) -> ast.Expr:
        if text.startswith("-") and _DURATION.fullmatch(text[1:]):
            msg = f"a duration cannot be negative: `{_short(text)}`"
            hint = "durations are written `250ms`, `5s`, `2m` or `1h`"
        else:
            msg = f"`{_short(text)}` is not a number or a duration"
            hint = (
                "a number is an integer (`42`) or a float (`0.5`, `1e-3`); a duration "
                "is a number and a unit: `250ms`, `5s`, `2m`, `1h`"
            )
        self.diagnostics.append(error("E023", span, msg, hint))
        return ast.Int(span, 0)

    def _unescape(self, body: str, span: Span) -> str:
        if "\\" not in body:
            return body
        return _ESCAPE.sub(lambda m: self._escape(m, span), body)

    def _escape(self, match: re.Match[str], span: Span) -> str:
        sequence = match.group(1)
        if sequence in _ESCAPES:
            return _ESCAPES[sequence]
        if sequence[0] in "uU" and len(sequence) > 1:
            code = int(sequence[1:], 16)
            if code <= 0x10FFFF:
                return chr(code)
        column = span.column + 1 + match.start()
        where = Span(self.file, span.line, column, span.line, column + len(match[0]))
        msg = f"unknown escape `{_short(match[0])}` in a string"
        self.diagnostics.append(error("E022", where, msg, _ESCAPE_HINT))
        return match[0]


def _short(text: str) -> str:
    return text if len(text) <= 40 else text[:37] + "..."


# --- assembling a module -------------------------------------------------------------


def _assemble(
    statements: list[Any],
    span: Span,
    first: Token | None,
    diagnostics: list[Diagnostic],
) -> ast.Module:
    """Sorts statements into a module; a header must come first, and only once.

    `first` is the file's first token: the header must start there, even when the
    statement before it could not be parsed.
    """
    header: ast.Header | None = None
    uses: list[ast.Use] = []
    defs: list[ast.Def] = []
    body: list[ast.Binding | ast.Statement] = []

    for statement in statements:
        if isinstance(statement, ast.Header):
            problem = _header_problem(statement, header, first)
            if problem is not None:
                diagnostics.append(problem)
            header = header or statement
        elif isinstance(statement, ast.Use):
            uses.append(statement)
        elif isinstance(statement, ast.Def):
            defs.append(statement)
        else:
            body.append(statement)

    if not statements and not diagnostics:
        diagnostics.append(_empty(span))
    return ast.Module(span, header, tuple(uses), tuple(defs), tuple(body))


def _header_problem(
    statement: ast.Header, header: ast.Header | None, first: Token | None
) -> Diagnostic | None:
    if header is not None:
        msg = f"a second `flow` header; the flow `{header.name}` began at {header.span}"
        return error("E028", statement.span, msg, "a file holds one flow")
    # A first statement that starts with `flow` but failed to parse was the header.
    start = (statement.span.line, statement.span.column)
    if first is not None and start != (first.line, first.column) and first != "flow":
        msg = "the `flow` header must be the first statement of the file"
        return error("E027", statement.span, msg, "move it to the top of the file")
    return None


def _only_comments(empty: Diagnostic) -> Diagnostic:
    msg = (
        "the file holds only comments: a flow needs a `flow` header and a library "
        "a `use` or `def`"
    )
    return error("E006", empty.span, msg, empty.hint)


def _empty(span: Span) -> Diagnostic:
    msg = "empty file: a flow needs a `flow` header and a library a `use` or `def`"
    hint = "start with `flow NAME(PARAMS)`, e.g. `flow wordcount(path: str)`"
    return error("E006", Span.point(span.file), msg, hint)

"""Tests of `grammar/flow.lark` and how the parser drives it."""

from __future__ import annotations

from pathlib import Path

import pytest
from lark import Token

from reflow_lang.frontend import parser
from reflow_lang.frontend.ast import without_spans

EXAMPLES_DIR = Path(__file__).parent.parent / "examples"

SAMPLE = """\
flow f(path: str = "a.txt", n: int = 2) [delivery = exactly_once]
use text
use python helpers as h
def words(s) = s | flat_map text.words | map str.lower
lines = source text.lines(path) [on_error = retry(3)]
counted = lines
    | words
    | count [by = self]
both = merge(lines, counted)
j = join lines by self, counted by h.key [how = left]
j | sink text.print
"""


def _rule_names() -> set[str]:
    """The rules that build a tree of their own, so need a builder method."""
    names = set()
    for rule in parser._grammar().lark.rules:
        name = rule.alias or rule.origin.name
        if name.startswith("_") or (rule.options.expand1 and not rule.alias):
            continue
        names.add(str(name))
    return names


def test_grammar_every_tree_rule_has_a_builder_method() -> None:
    names = _rule_names()
    assert {"header", "chain", "function_stage", "list_value", "number"} <= names
    missing = sorted(
        n for n in names if not callable(getattr(parser._Builder, n, None))
    )
    assert missing == []


def test_grammar_builder_has_no_method_without_a_rule() -> None:
    names = _rule_names()
    public = {
        n
        for n, value in vars(parser._Builder).items()
        if callable(value) and not n.startswith("_")
    }
    assert sorted(public - names - {"transform"}) == []


def test_grammar_is_built_once() -> None:
    assert parser._grammar() is parser._grammar()


def test_grammar_every_terminal_has_a_name_in_the_language() -> None:
    lark = parser._grammar().lark
    described = {}
    for terminal in lark.terminals:
        if terminal.name in {"WS", "COMMENT", "_NL", "BAD_CHAR", "BAD_STRING"}:
            continue
        described[terminal.name] = parser._describe_expected(
            frozenset({terminal.name}), at_end=False
        )
    for name, text in described.items():
        terminal = next(t for t in lark.terminals if t.name == name)
        if terminal.pattern.type == "str":
            assert text == f"`{terminal.pattern.value}`", name
        else:
            assert text in {"a name", "a number", "a string"}, name


def test_grammar_keywords_are_the_lowercase_literals() -> None:
    assert parser._grammar().keywords == {
        "FLOW", "USE", "PYTHON", "AS", "DEF", "SOURCE", "MERGE", "JOIN", "BY",
        "MAP", "FLAT_MAP", "FILTER", "KEY_BY", "REJOIN", "REDUCE", "SINK", "COUNT",
        "TRUE", "FALSE",
    }  # fmt: skip


def _layout(text: str) -> list[Token]:
    """The token stream the `start` rule reads: each statement, then one `_NL`."""
    tokens = list(parser._grammar().lark.lex(text))
    stream: list[Token] = []
    position = parser._skip_newlines(tokens, 0)
    while position < len(tokens):
        end = parser._statement_end(tokens, position)
        stream += [t for t in tokens[position:end] if t.type != "_NL"]
        stream.append(Token("_NL", "\n"))
        position = parser._skip_newlines(tokens, end)
    return stream


def _parse_whole(text: str) -> list[object]:
    interactive = parser._grammar().lark.parse_interactive(None, start="start")
    state = interactive.parser_state
    stream = _layout(text)
    for n, token in enumerate(stream):
        if token.type in parser._grammar().keywords:
            ahead = [t for t in stream[n + 1 : n + 4] if t.type != "_NL"]
            token = parser._resolve_keyword(state, token, ahead)
        state.feed_token(token)
    tree = state.feed_token(Token("$END", ""), True)
    return parser._Builder("t.flow").transform(tree)


@pytest.mark.parametrize(
    "text",
    [
        SAMPLE,
        *(p.read_text(encoding="utf-8") for p in sorted(EXAMPLES_DIR.glob("*.flow"))),
    ],
)
def test_grammar_start_rule_reads_the_same_statements(text: str) -> None:
    module, diagnostics = parser.parse(text, "t.flow")
    assert diagnostics == [] and module is not None
    statements = _parse_whole(text)

    header = () if module.header is None else (module.header,)
    expected = sorted(
        (*header, *module.uses, *module.defs, *module.body),
        key=lambda s: (s.span.line, s.span.column),
    )
    assert [without_spans(s) for s in statements] == [
        without_spans(s) for s in expected
    ]
    assert [s.span for s in statements] == [s.span for s in expected]


def test_grammar_has_no_grammar_text_in_python() -> None:
    source = Path(parser.__file__).read_text(encoding="utf-8")
    assert "%ignore" not in source and "?statement" not in source

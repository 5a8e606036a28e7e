"""Tests of `reflow_lang.frontend.parser`: the AST of valid flows, and syntax errors."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reflow_lang.frontend import ast
from reflow_lang.frontend.ast import format_ast, without_spans
from reflow_lang.frontend.diagnostics import Diagnostic, render_text
from reflow_lang.frontend.parser import (
    MAX_DEPTH,
    MAX_ERRORS,
    PARAM_TYPES,
    STAGE_KEYWORDS,
    parse,
)
from reflow_lang.frontend.span import Span
from reflow_lang.frontend.syntax_errors import CODES, EXAMPLES

WORDCOUNT = """\
# Counts the words of a text.
flow wordcount(path: str = "hamlet.txt", min_len: int = 4) [delivery = at_least_once]

use text                 # the standard library
use python wordfns as w

def words(s) = s | flat_map text.words [expansion = 12] | map str.lower

lines = source text.lines(path)
long = lines
          | words
          | filter w.longer_than(min_len) [workers = 2, order = partial]
long | count [by = self] | sink text.write_tsv("-")
"""

SYNTAX_DIR = Path(__file__).parent / "syntax"
EXAMPLES_DIR = Path(__file__).parent.parent / "examples"


def parse_ok(text: str) -> ast.Module:
    module, diagnostics = parse(text, "t.flow")
    assert diagnostics == []
    assert module is not None
    return module


def only_error(text: str) -> Diagnostic:
    module, diagnostics = parse(text, "t.flow")
    assert module is None
    assert len(diagnostics) == 1, diagnostics
    return diagnostics[0]


def first_chain(text: str) -> ast.Chain:
    statement = parse_ok(text).body[0]
    return statement.chain


def shape(node: ast.Node) -> ast.Node:
    return without_spans(node)


def S(line: int, column: int, end_line: int, end_column: int) -> Span:
    return Span("t.flow", line, column, end_line, end_column)


def at(text: str, line: int, needle: str, nth: int = 0) -> Span:
    """The span of the `nth` occurrence of `needle` on `line` of `text`."""
    row = text.splitlines()[line - 1]
    column = -1
    for _ in range(nth + 1):
        column = row.index(needle, column + 1)
    return S(line, column + 1, line, column + 1 + len(needle))


# --- valid flows -----------------------------------------------------------------


def test_parse_wordcount_sorts_statements_into_the_module() -> None:
    module = parse_ok(WORDCOUNT)

    assert module.header is not None
    assert module.header.name == "wordcount"
    assert [p.name for p in module.header.params] == ["path", "min_len"]
    assert [u.bound for u in module.uses] == ["text", "w"]
    assert [d.name for d in module.defs] == ["words"]
    assert [type(s).__name__ for s in module.body] == [
        "Binding",
        "Binding",
        "Statement",
    ]
    assert module.span == S(1, 1, 14, 1)


def test_parse_header_params_and_options() -> None:
    header = parse_ok(WORDCOUNT).header
    assert header is not None

    path, min_len = header.params
    assert (path.name, path.type) == ("path", "str")
    assert path.type_span == at(WORDCOUNT, 2, "str")
    assert path.default == ast.Str(at(WORDCOUNT, 2, '"hamlet.txt"'), "hamlet.txt")
    assert min_len.default == ast.Int(at(WORDCOUNT, 2, "4"), 4)
    (option,) = header.options
    assert (option.key, option.key_span) == ("delivery", at(WORDCOUNT, 2, "delivery"))
    assert option.value == ast.Name(
        at(WORDCOUNT, 2, "at_least_once"), ("at_least_once",)
    )
    line = WORDCOUNT.splitlines()[1]
    assert header.span == S(2, 1, 2, len(line) + 1)


def test_parse_header_without_params_or_parentheses() -> None:
    assert parse_ok("flow f\n").header == ast.Header(S(1, 1, 1, 7), "f", (), ())
    header = parse_ok("flow f() [delivery = exactly_once]").header
    assert header is not None and header.params == ()
    assert [o.key for o in header.options] == ["delivery"]


def test_parse_header_spread_over_lines_with_trailing_comma() -> None:
    header = parse_ok("flow f(\n    a: int = 1,\n    b: duration = 5s,\n)\n").header
    assert header is not None
    assert [(p.name, p.type) for p in header.params] == [
        ("a", "int"),
        ("b", "duration"),
    ]
    assert header.span == S(1, 1, 4, 2)


def test_parse_every_parameter_type() -> None:
    text = "flow f(a: str, b: int, c: float, d: bool, e: duration, f: path)"
    header = parse_ok(text).header
    assert header is not None
    assert [p.type for p in header.params] == [
        "str",
        "int",
        "float",
        "bool",
        "duration",
        "path",
    ]


def test_parse_use_plain_python_dotted_and_aliased() -> None:
    uses = parse_ok("use text\nuse python a.b.c as m\nuse json as j\n").uses
    assert [(u.module.dotted, u.python, u.alias, u.bound) for u in uses] == [
        ("text", False, None, "text"),
        ("a.b.c", True, "m", "m"),
        ("json", False, "j", "j"),
    ]
    assert uses[1].module.span == S(2, 12, 2, 17)


def test_parse_def_fragment_and_its_use_as_a_stage() -> None:
    module = parse_ok(WORDCOUNT)
    (fragment,) = module.defs
    assert (fragment.name, fragment.param) == ("words", "s")
    assert fragment.name_span == at(WORDCOUNT, 7, "words")
    s_span = S(7, 16, 7, 17)
    assert fragment.chain.head == ast.StreamHead(s_span, ast.Name(s_span, ("s",)))

    stage = module.body[1].chain.stages[0]
    span = at(WORDCOUNT, 11, "words")
    call = ast.Call(span, ast.Name(span, ("words",)), ())
    assert stage == ast.Stage(span, "fragment", span, call, ())


def test_parse_source_head_with_and_without_arguments() -> None:
    head = first_chain("a = source text.lines(path, 3) [on_error = skip]").head
    assert isinstance(head, ast.SourceHead)
    assert head.function.callee.dotted == "text.lines"
    assert [str(arg) for arg in head.function.args] == ["path", "3"]
    assert [o.key for o in head.options] == ["on_error"]
    assert head.span == S(1, 5, 1, 49)

    bare = first_chain("a = source gen").head
    assert isinstance(bare, ast.SourceHead)
    assert bare.function == ast.Call(
        S(1, 12, 1, 15), ast.Name(S(1, 12, 1, 15), ("gen",)), ()
    )


def test_parse_merge_head() -> None:
    head = first_chain("m = merge(a, b, c,) [capacity = 10]").head
    assert isinstance(head, ast.MergeHead)
    assert [n.dotted for n in head.inputs] == ["a", "b", "c"]
    assert head.inputs[1].span == S(1, 14, 1, 15)
    assert str(head) == "merge(a, b, c) [capacity = 10]"


def test_parse_join_head_with_each_kind_of_key() -> None:
    head = first_chain('j = join a by "user_id", b by keyed(u.key) [how = outer]').head
    assert isinstance(head, ast.JoinHead)
    assert (head.left.dotted, head.right.dotted) == ("a", "b")
    assert head.left_key == ast.Str(S(1, 15, 1, 24), "user_id")
    assert isinstance(head.right_key, ast.Call)
    assert str(head.right_key) == "keyed(u.key)"
    assert (
        str(first_chain("j = join a by self, b by f.k").head)
        == "join a by self, b by f.k"
    )


def test_parse_every_stage_kind() -> None:
    text = (
        "a | map f | flat_map g(1) | filter h | key_by k | rejoin r"
        " | reduce add [initial = 0] | count | frag | sink out"
    )
    stages = first_chain(text).stages
    assert [s.kind for s in stages] == [
        "map",
        "flat_map",
        "filter",
        "key_by",
        "rejoin",
        "reduce",
        "count",
        "fragment",
        "sink",
    ]
    assert stages[6].function is None
    assert stages[6].kind_span == at(text, 1, "count")
    assert [str(s) for s in stages] == text.split(" | ")[1:]


def test_parse_option_values_of_every_kind() -> None:
    text = (
        'a | map f [a = 1, b = -2, c = 2.5, d = 1e-3, e = "x", f = true, g = false,'
        " h = 250ms, i = 5s, j = 2m, k = 1h, l = 1.5s, m = total, n = keyed(user),"
        ' o = keyed("user_id"), p = retry(3), q = dead_letter(bad), r = [1, [2]],]'
    )
    (stage,) = first_chain(text).stages
    values = {o.key: shape(o.value) for o in stage.options}
    nowhere = shape(ast.Int(S(0, 0, 0, 0), 0)).span
    assert values["a"] == ast.Int(nowhere, 1)
    assert values["b"] == ast.Int(nowhere, -2)
    assert values["c"] == ast.Float(nowhere, 2.5)
    assert values["d"] == ast.Float(nowhere, 0.001)
    assert values["e"] == ast.Str(nowhere, "x")
    assert (values["f"], values["g"]) == (
        ast.Bool(nowhere, True),
        ast.Bool(nowhere, False),
    )
    assert values["h"] == ast.Duration(nowhere, 0.25, "250ms")
    assert values["i"] == ast.Duration(nowhere, 5.0, "5s")
    assert values["j"] == ast.Duration(nowhere, 120.0, "2m")
    assert values["k"] == ast.Duration(nowhere, 3600.0, "1h")
    assert values["l"] == ast.Duration(nowhere, 1.5, "1.5s")
    assert values["m"] == ast.Name(nowhere, ("total",))
    assert str(values["n"]) == "keyed(user)"
    assert str(values["o"]) == 'keyed("user_id")'
    assert str(values["p"]) == "retry(3)"
    assert str(values["q"]) == "dead_letter(bad)"
    assert str(values["r"]) == "[1, [2]]"


def test_parse_string_escapes() -> None:
    text = r'a = source f("q\"b\\n\n\t\r\0\u00e9\U0001F600")'
    (arg,) = first_chain(text).head.function.args
    assert arg == ast.Str(S(1, 14, 1, 47), 'q"b\\n\n\t\r\0é😀')


def test_parse_huge_integer_is_fine() -> None:
    (arg,) = first_chain("a = source f(" + "9" * 500 + ")").head.function.args
    assert arg == ast.Int(S(1, 14, 1, 514), int("9" * 500))


def test_parse_integer_with_underscores() -> None:
    (arg,) = first_chain("a = source f(1_000_000)").head.function.args
    assert isinstance(arg, ast.Int) and arg.value == 1_000_000


def test_parse_lists_in_arguments() -> None:
    (arg,) = first_chain('a = source f([1, 2.0, ["x"], []])').head.function.args
    assert str(arg) == '[1, 2.0, ["x"], []]'


def test_parse_line_starting_with_bar_continues_the_chain() -> None:
    text = "a = b\n  | map f\n\n  # a comment between\n\n  | sink g\nc | sink h\n"
    module = parse_ok(text)
    assert [str(s) for s in module.body] == ["a = b | map f | sink g", "c | sink h"]
    assert module.body[0].span == S(1, 1, 6, 11)


def test_parse_newline_inside_brackets_is_ignored() -> None:
    text = "a = source f(\n  1,\n  2\n) [\n  workers = 2\n]\n"
    assert str(parse_ok(text).body[0]) == "a = source f(1, 2) [workers = 2]"


def test_parse_comments_blank_lines_and_crlf() -> None:
    text = "# top\r\n\r\nflow f()  # trailing\r\n   \r\na = source g()\r\n# end"
    module = parse_ok(text)
    assert module.header is not None
    assert module.body[0].span == S(5, 1, 5, 15)


def test_parse_library_without_header() -> None:
    module = parse_ok("use text\ndef lower(s) = s | map str.lower\n")
    assert module.header is None
    assert module.body == ()


def test_parse_keywords_are_names_where_no_keyword_fits() -> None:
    module = parse_ok(
        "flow f(count: int, by: str, source: path)\n"
        "count = source text.count(by, map.filter)\n"
        "count | map f [by = self, count = 2] | sink g\n"
    )
    assert [str(s) for s in module.body] == [
        "count = source text.count(by, map.filter)",
        "count | map f [by = self, count = 2] | sink g",
    ]


def test_parse_head_keywords_as_stream_names_when_only_a_name_fits() -> None:
    module = parse_ok(
        "source = source f()\nmerge = merge(source, join)\nmerge | sink g\n"
        "flow2 = join | sink h\nuse python\n"
    )
    heads = [s.chain.head for s in module.body]
    assert [type(h).__name__ for h in heads] == [
        "SourceHead",
        "MergeHead",
        "StreamHead",
        "StreamHead",
    ]
    assert [s.name for s in module.body[:2]] == ["source", "merge"]
    assert module.uses[0].module.dotted == "python"


def test_parse_use_python_reads_python_as_a_module_where_only_that_fits() -> None:
    uses = parse_ok("use python as p\nuse python python as q\nuse python.x\n").uses
    assert [(u.module.dotted, u.python, u.alias) for u in uses] == [
        ("python", False, "p"),
        ("python", True, "q"),
        ("python.x", False, None),
    ]


def test_parse_flow_use_and_def_are_names_when_bound() -> None:
    module = parse_ok("flow = source f()\nuse = flow | map g\ndef = use | sink h\n")
    assert [s.name for s in module.body] == ["flow", "use", "def"]
    assert str(module.body[2]) == "def = use | sink h"


def test_parse_spans_are_one_based_and_end_exclusive() -> None:
    chain = first_chain("a = source f(x)\n")
    assert chain.span == S(1, 5, 1, 16)
    assert chain.head.function.args[0].span == S(1, 14, 1, 15)


# --- printing ----------------------------------------------------------------------


def test_str_prints_canonical_source() -> None:
    assert str(parse_ok(WORDCOUNT)) == (
        'flow wordcount(path: str = "hamlet.txt", min_len: int = 4)'
        " [delivery = at_least_once]\n"
        "use text\n"
        "use python wordfns as w\n"
        "def words(s) = s | flat_map text.words [expansion = 12] | map str.lower\n"
        "lines = source text.lines(path)\n"
        "long = lines | words | filter w.longer_than(min_len)"
        " [workers = 2, order = partial]\n"
        'long | count [by = self] | sink text.write_tsv("-")\n'
    )


def test_str_escapes_strings() -> None:
    value = ast.Str(S(1, 1, 1, 2), 'a"\\\n\t\x01\u2028😀')
    assert str(value) == '"a\\"\\\\\\n\\t\\u0001\\u2028😀"'


def test_repr_reads_like_a_constructor_call() -> None:
    name = ast.Name(S(1, 2, 1, 3), ("x",))
    assert repr(name) == (
        "Name(span=Span(file='t.flow', line=1, column=2, end_line=1, end_column=3), "
        "parts=('x',))"
    )


def test_format_ast_prints_an_indented_tree_with_spans() -> None:
    module = parse_ok(
        "flow f(n: int = 2)\n"
        "use python m as q\n"
        'x = source m.g("a") | count [by = self]\n'
    )
    assert format_ast(module) == (
        "Module 1:1-4:1\n"
        "  header: Header 1:1-1:19 name='f'\n"
        "    params[0]: Param 1:8-1:18 name='n' type='int' type_span=1:11-1:14\n"
        "      default: Int 1:17-1:18 value=2\n"
        "  uses[0]: Use 2:1-2:18 python=True alias='q'\n"
        "    module: Name 2:12-2:13 m\n"
        "  body[0]: Binding 3:1-3:40 name='x' name_span=3:1-3:2\n"
        "    chain: Chain 3:5-3:40\n"
        "      head: SourceHead 3:5-3:20\n"
        "        function: Call 3:12-3:20\n"
        "          callee: Name 3:12-3:15 m.g\n"
        "          args[0]: Str 3:16-3:19 value='a'\n"
        "      stages[0]: Stage 3:23-3:40 kind='count' kind_span=3:23-3:28\n"
        "        options[0]: Option 3:30-3:39 key='by' key_span=3:30-3:32\n"
        "          value: Name 3:35-3:39 self\n"
    )


@pytest.mark.parametrize(
    "path", sorted(EXAMPLES_DIR.glob("*.flow")), ids=lambda p: p.name
)
def test_str_round_trips_each_example(path: Path) -> None:
    module = parse_ok(path.read_text(encoding="utf-8"))
    assert shape(parse_ok(str(module))) == shape(module)


def test_str_round_trips_wordcount() -> None:
    module = parse_ok(WORDCOUNT)
    again = parse_ok(str(module))
    assert shape(again) == shape(module)
    assert str(again) == str(module)


# --- syntax errors: one test per code ------------------------------------------------


def test_e006_comment_only_text() -> None:
    found = only_error("# nothing but a comment\n\n")
    assert (found.code, found.span) == ("E006", S(1, 1, 1, 2))
    assert found.message == (
        "the file holds only comments: a flow needs a `flow` header and a library "
        "a `use` or `def`"
    )
    found = only_error(" \n\n")
    assert found.message == (
        "empty file: a flow needs a `flow` header and a library a `use` or `def`"
    )
    assert parse_ok("use text\n").uses


def test_e007_text_too_long() -> None:
    found = only_error("#" * (1 << 20) + "\n")
    assert found.code == "E007"
    assert (
        found.message == "the text is 1048577 characters; a flow may be at most 1048576"
    )
    assert parse_ok("a | sink f  #" + "x" * 1000).body


def test_e020_unexpected_character() -> None:
    found = only_error("a = b | sink f(1) @@\n")
    assert (found.code, found.span) == ("E020", S(1, 19, 1, 20))
    assert found.message == "unexpected character `@`"
    assert found.hint == "remove it, or put it inside a string"
    assert parse_ok('a = b | sink f("@")').body


def test_e020_single_quote_hints_at_double_quotes() -> None:
    found = only_error("a = source f('x')\n")
    assert found.message == "unexpected character `'`"
    assert found.hint == 'strings use double quotes: `"..."`'


@pytest.mark.parametrize(
    ("text", "char", "hint"),
    [
        ("a = source f(- 5)", "-", "a negative number is written with no space: `-5`"),
        (
            "a | map f {workers = 2}",
            "{",
            "options and lists use square brackets: `[workers = 2]`",
        ),
        ("a | sink f;", ";", "statements end at the end of a line; `;` is not needed"),
        ("a | sink f $", "$", "remove it, or put it inside a string"),
    ],
)
def test_e020_hints(text: str, char: str, hint: str) -> None:
    found = only_error(text)
    assert (found.code, found.message) == ("E020", f"unexpected character `{char}`")
    assert found.hint == hint


def test_e020_non_ascii_letter_in_a_name() -> None:
    found = only_error("café = source f()")
    assert (found.message, found.span) == ("unexpected character `é`", S(1, 4, 1, 5))
    assert found.hint == "names are written with ASCII letters, digits and `_`"


def test_e020_unprintable_character_is_shown_by_code_point() -> None:
    assert only_error("a = b\u00a0| sink f").message == "unexpected character `U+00A0`"


def test_e021_unterminated_string() -> None:
    found = only_error('a = source f("abc\n')
    assert (found.code, found.span) == ("E021", S(1, 14, 1, 18))
    assert found.message == (
        'this string is not closed; a string ends with `"` on the same line'
    )
    assert parse_ok('a = source f("abc")').body


def test_e022_unknown_escape() -> None:
    found = only_error('a = source f("a\\qb")\n')
    assert (found.code, found.span) == ("E022", S(1, 16, 1, 18))
    assert found.message == "unknown escape `\\q` in a string"
    assert parse_ok('a = source f("a\\\\qb")').body


def test_e022_code_point_out_of_range() -> None:
    found = only_error('a = source f("\\UFFFFFFFF")')
    assert found.message == "unknown escape `\\UFFFFFFFF` in a string"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("5x", "`5x` is not a number or a duration"),
        ("1.2.3", "`1.2.3` is not a number or a duration"),
        ("5sec", "`5sec` is not a number or a duration"),
        ("-5s", "a duration cannot be negative: `-5s`"),
        ("1e999", "the number `1e999` is too large for a float"),
        ("9" * 4001, f"the integer `{'9' * 37}...` has 4001 digits; at most 4000"),
        ("9" * 400 + "s", f"the duration `{'9' * 37}...` is too long"),
    ],
)
def test_e023_bad_numbers(text: str, message: str) -> None:
    found = only_error(f"a = source f({text})")
    assert (found.code, found.message) == ("E023", message)
    assert found.span.column == 14


def test_e023_each_bad_number_of_a_statement_is_reported() -> None:
    _, diagnostics = parse("a = source f(5x, 2y) [timeout = 3q]", "t.flow")
    assert [(d.code, d.span.column) for d in diagnostics] == [
        ("E023", 14),
        ("E023", 18),
        ("E023", 33),
    ]


def test_e024_nesting_too_deep() -> None:
    deep = "a = source f(" + "[" * MAX_DEPTH + "]" * MAX_DEPTH + ")\n"
    found = only_error(deep)
    assert (found.code, found.span) == ("E024", S(1, 77, 1, 78))
    assert found.message == "brackets are nested more than 64 levels deep"
    fine = "a = source f(" + "[" * (MAX_DEPTH - 1) + "]" * (MAX_DEPTH - 1) + ")\n"
    assert parse_ok(fine).body


def test_e024_ten_thousand_brackets_give_a_diagnostic() -> None:
    for text in ("a = source f(" + "g(" * 10_000, "a = source f(" + "[" * 10_000):
        found = only_error(text)
        assert found.code == "E024"


def test_e025_too_many_errors() -> None:
    text = "".join(f"a{i} = | x\n" for i in range(MAX_ERRORS + 5))
    _, diagnostics = parse(text, "t.flow")
    assert len(diagnostics) == MAX_ERRORS + 1
    last = diagnostics[-1]
    assert (last.code, last.span.line) == ("E025", MAX_ERRORS + 1)
    assert last.message == (
        "too many syntax errors (50); the rest of the file was not parsed"
    )
    _, fewer = parse("".join(f"a{i} = | x\n" for i in range(MAX_ERRORS)), "t.flow")
    assert {d.code for d in fewer} == {"E030"}


def test_e026_unknown_parameter_type() -> None:
    found = only_error("flow f(n: integer)\n")
    assert (found.code, found.span) == ("E026", S(1, 11, 1, 18))
    assert found.message == (
        "unknown parameter type `integer`; the types are `str`, `int`, `float`, "
        "`bool`, `duration`, `path`"
    )
    assert found.hint == "did you mean `int`?"


def test_e027_header_not_first() -> None:
    found = only_error("use text\nflow f()\n")
    assert (found.code, found.span) == ("E027", S(2, 1, 2, 9))
    assert found.message == "the `flow` header must be the first statement of the file"
    assert parse_ok("# a comment first is fine\nflow f()\nuse text\n").header


def test_e027_not_reported_after_a_broken_first_statement() -> None:
    _, diagnostics = parse("use 5\nflow f()\n", "t.flow")
    assert [d.code for d in diagnostics] == ["E040", "E027"]
    _, diagnostics = parse("flow f(a)\nflow g()\n", "t.flow")
    assert [d.code for d in diagnostics] == ["E037"]


def test_e028_second_header() -> None:
    found = only_error("flow f()\nflow g()\n")
    assert (found.code, found.span) == ("E028", S(2, 1, 2, 9))
    assert found.message == "a second `flow` header; the flow `f` began at t.flow:1:1"


def test_e029_fragment_named_after_stage_keyword() -> None:
    found = only_error("def count(s) = s | map f\n")
    assert (found.code, found.span) == ("E029", S(1, 5, 1, 10))
    assert found.message == (
        "a fragment cannot be named `count`; after `|` it is a stage keyword"
    )
    assert parse_ok("def counted(s) = s | count").defs


def test_e030_generic_unexpected_token_lists_expected_in_words() -> None:
    found = only_error("a = b | map f g\n")
    assert (found.code, found.span) == ("E030", S(1, 15, 1, 16))
    assert found.message == (
        "unexpected name `g`; expected `(`, `.`, `[`, `|` or the end of the line"
    )
    assert found.hint == "to go on with another stage, write `|` before it"


def test_e030_missing_comma_hint() -> None:
    found = only_error("a = source f(1 2)")
    assert found.message == "unexpected number `2`; expected `)` or `,`"
    assert found.hint == "separate arguments, list items and options with `,`"


def test_e030_without_hint() -> None:
    found = only_error("a = source f(1) )")
    assert found.message == "unexpected `)`; expected `[`, `|` or the end of the line"
    assert found.hint is None


def test_e030_value_starts_are_summarised() -> None:
    found = only_error("a = source f(,)\n")
    assert found.message == "unexpected `,`; expected a value or `)`"


def test_e030_end_of_file_is_named() -> None:
    found = only_error("a = source f(1, 2")
    assert (
        found.message == "`(` is never closed; expected `)` before the end of the file"
    )
    other = only_error("a = source f(x) [workers = 2")
    assert other.code == "E038"


def test_e038_unclosed_bracket_runs_into_the_next_line() -> None:
    module, diagnostics = parse("a = source f(1,\nb = a | sink g\nc | map\n", "t.flow")
    assert module is None
    first, second = diagnostics
    assert (first.code, first.span) == ("E038", S(1, 13, 1, 14))
    assert first.message == (
        "`(` is never closed, so the statement runs on into line 2, where `=` does "
        "not fit"
    )
    assert first.hint == "add `)`; a newline inside brackets does not end a statement"
    assert (second.code, second.span.line) == ("E032", 3)


def test_e038_not_reported_for_a_bracket_closed_later() -> None:
    found = only_error("a = source f(1,\n  2 3)\n")
    assert found.code == "E030"
    assert found.message == "unexpected number `3`; expected `)` or `,`"


@pytest.mark.parametrize(
    ("entry", "example"),
    [(entry, example) for entry in EXAMPLES for example in entry.examples],
    ids=lambda value: value if isinstance(value, str) else value.code,
)
def test_table_example_gets_its_code(entry: object, example: str) -> None:
    found = only_error(example + "\n")
    assert found.code == entry.code  # type: ignore[attr-defined]
    assert found.hint == entry.hint  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("text", "code", "message"),
    [
        (
            "a |\nb | sink c",
            "E031",
            "expected a stage after `|`; found the end of the line",
        ),
        ("a |", "E031", "expected a stage after `|`; found the end of the file"),
        ("a | 5", "E031", "expected a stage after `|`; found number `5`"),
        (
            "a | map\nb",
            "E032",
            "expected a function after `map`; found the end of the line",
        ),
        (
            "a = source 5",
            "E032",
            "expected a function after `source`; found number `5`",
        ),
        ("a | count f", "E033", "`count` takes no function; found name `f`"),
        (
            "a = source f(x = 1)",
            "E034",
            "keyword arguments are not supported; found `=` after an argument",
        ),
        (
            "a b",
            "E035",
            "expected `=` or `|` after the stream name `a`; found name `b`",
        ),
        (
            "a | map f [workers 2]",
            "E036",
            "expected `=` after the option name `workers`; found number `2`",
        ),
        (
            "flow f(a)",
            "E037",
            "expected `:` and a type after the parameter `a`; found `)`",
        ),
        ("flow 5", "E039", "expected the flow's name after `flow`; found number `5`"),
        ("use 5", "E040", "expected a module name after `use`; found number `5`"),
        ("x = merge a, b", "E041", "expected `(` after `merge`; found name `a`"),
        (
            "x = join a b",
            "E042",
            "expected `by` and a key after the join input `a`; found name `b`",
        ),
        (
            "def f = s | map g",
            "E043",
            "expected `(` and the fragment's input after `def f`; found `=`",
        ),
    ],
)
def test_table_messages(text: str, code: str, message: str) -> None:
    found = only_error(text)
    assert (found.code, found.message) == (code, message)


@pytest.mark.parametrize(
    "text",
    [
        "a | map f",
        "a = source f",
        "a | count [by = self]",
        "a = source f(1, 2)",
        "a | sink b",
        "a | map f [workers = 2]",
        "flow f(a: int)",
        "flow f",
        "use text",
        "x = merge(a, b)",
        "x = join a by k, b by k",
        "def f(s) = s | map g",
    ],
)
def test_table_neighbours_parse(text: str) -> None:
    assert parse_ok(text)


def test_every_code_is_summarised_and_every_table_code_is_known() -> None:
    assert all(code in CODES for code in (e.code for e in EXAMPLES))
    assert all(len(summary) < 90 for summary in CODES.values())
    assert sorted(CODES) == list(CODES)


def test_table_examples_do_not_parse_and_do_not_clash() -> None:
    seen: dict[str, str] = {}
    for entry in EXAMPLES:
        for example in entry.examples:
            _, diagnostics = parse(example, "t.flow")
            assert diagnostics, example
            seen[example] = diagnostics[0].code
    assert len(seen) == sum(len(e.examples) for e in EXAMPLES)


# --- recovery ------------------------------------------------------------------


def test_independent_statements_each_get_their_error_without_cascades() -> None:
    text = (
        "flow f(n: int)\n"
        "a = source g(n\n"  # unclosed, but the next line starts a statement
        "b = a | | map h\n"
        "c = b | map h\n"  # fine
        "d = c | count x\n"
        "e = d | sink out(1 2)\n"
    )
    module, diagnostics = parse(text, "t.flow")
    assert module is None
    assert [(d.code, d.span.line) for d in diagnostics] == [
        ("E038", 2),
        ("E031", 3),
        ("E033", 5),
        ("E030", 6),
    ]


def test_recovery_skips_indented_continuation_of_a_broken_statement() -> None:
    text = "a = b | map (\n    | filter g\n    [x = 1]\nc | sink d\ne | sink\n"
    _, diagnostics = parse(text, "t.flow")
    assert [(d.code, d.span.line) for d in diagnostics] == [("E032", 1), ("E032", 5)]


def test_diagnostics_are_sorted_by_position() -> None:
    text = "flow f(n: nat)\na = source g(5x)\nb |\n"
    _, diagnostics = parse(text, "t.flow")
    assert [(d.code, d.span.line) for d in diagnostics] == [
        ("E026", 1),
        ("E023", 2),
        ("E031", 3),
    ]


def test_trailing_bar_does_not_continue_onto_the_next_line() -> None:
    found = only_error("a = b |\n  map f\n")
    assert (found.code, found.span) == ("E031", S(1, 8, 1, 9))


# --- the files of bad examples in tests/syntax ----------------------------------


@pytest.mark.parametrize(
    "path", sorted(SYNTAX_DIR.glob("*.flow")), ids=lambda p: p.name
)
def test_syntax_file_diagnostics(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    module, diagnostics = parse(text, path.name)
    assert module is None
    expected = path.with_suffix(".txt").read_text(encoding="utf-8")
    assert render_text(diagnostics, {path.name: text}) == expected


def test_every_node_has_a_span_inside_the_text() -> None:
    module = parse_ok(WORDCOUNT)
    lines = WORDCOUNT.splitlines()
    for node in _walk(module):
        span = node.span
        assert 1 <= span.line <= span.end_line <= len(lines) + 1
        if span.line == span.end_line:
            assert span.column < span.end_column


def _walk(node: ast.Node) -> list[ast.Node]:
    found = [node]
    for field in dataclasses.fields(node):
        value = getattr(node, field.name)
        items = value if isinstance(value, tuple) else (value,)
        for item in items:
            if dataclasses.is_dataclass(item) and not isinstance(item, Span):
                found.extend(_walk(item))  # type: ignore[arg-type]
    return found


# --- round trip: printing any module and parsing it back gives the same module ------

_SPAN = Span("t.flow", 1, 1, 1, 2)
_WORDS = st.sampled_from(
    ["a", "b", "lines", "x_1", "count", "by", "source", "merge", "join", "flow", "use"]
    + ["def", "python", "as", "true", "map", "sink", "total", "self", "_"]
)
_SAFE = _WORDS.filter(lambda w: w not in STAGE_KEYWORDS and w not in ("true", "false"))
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def _names(words: st.SearchStrategy[str] = _WORDS) -> st.SearchStrategy[ast.Name]:
    return st.lists(words, min_size=1, max_size=3).map(
        lambda parts: ast.Name(_SPAN, tuple(parts))
    )


def _value_names() -> st.SearchStrategy[ast.Name]:
    # `true` and `false` alone are booleans; inside a dotted name they are names.
    return _names().filter(lambda n: n.dotted not in ("true", "false"))


def _durations() -> st.SearchStrategy[ast.Duration]:
    def build(number: int, unit: str) -> ast.Duration:
        return ast.Duration(_SPAN, float(number) * _UNITS[unit], f"{number}{unit}")

    return st.builds(build, st.integers(0, 10**6), st.sampled_from(sorted(_UNITS)))


_LEAVES = st.one_of(
    _value_names(),
    st.integers(-(10**30), 10**30).map(lambda v: ast.Int(_SPAN, v)),
    st.floats(allow_nan=False, allow_infinity=False).map(lambda v: ast.Float(_SPAN, v)),
    st.text(max_size=8).map(lambda v: ast.Str(_SPAN, v)),
    st.booleans().map(lambda v: ast.Bool(_SPAN, v)),
    _durations(),
)
_VALUES = st.recursive(
    _LEAVES,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3).map(lambda items: ast.List(_SPAN, tuple(items))),
        st.builds(
            lambda callee, args: ast.Call(_SPAN, callee, tuple(args)),
            _names(),
            st.lists(inner, max_size=3),
        ),
    ),
    max_leaves=6,
)
_OPTIONS = st.lists(
    st.builds(lambda key, value: ast.Option(_SPAN, key, _SPAN, value), _WORDS, _VALUES),
    max_size=2,
).map(tuple)
_CALLS = st.builds(
    lambda callee, args: ast.Call(_SPAN, callee, tuple(args)),
    _names(),
    st.lists(_VALUES, max_size=2),
)


def _stage(kind: str, function: ast.Call, options: tuple[ast.Option, ...]) -> ast.Stage:
    if kind == "count":
        return ast.Stage(_SPAN, kind, _SPAN, None, options)
    if kind == "fragment":
        callee = ast.Name(_SPAN, function.callee.parts[:1])
        return ast.Stage(_SPAN, kind, _SPAN, ast.Call(_SPAN, callee, ()), options)
    return ast.Stage(_SPAN, kind, _SPAN, function, options)


_STAGES = st.builds(
    _stage,
    st.sampled_from([*STAGE_KEYWORDS, "fragment"]),
    st.builds(
        lambda callee, args: ast.Call(_SPAN, callee, tuple(args)),
        _names(_SAFE),
        st.lists(_VALUES, max_size=2),
    ),
    _OPTIONS,
)
_STREAM = _SAFE.map(lambda w: ast.Name(_SPAN, (w,)))
_HEADS = st.one_of(
    st.builds(lambda f, o: ast.SourceHead(_SPAN, f, o), _CALLS, _OPTIONS),
    st.builds(lambda n: ast.StreamHead(_SPAN, n), _STREAM),
    st.builds(
        lambda inputs, o: ast.MergeHead(_SPAN, tuple(inputs), o),
        st.lists(_STREAM, min_size=1, max_size=3),
        _OPTIONS,
    ),
    st.builds(
        lambda a, ka, b, kb, o: ast.JoinHead(_SPAN, a, ka, b, kb, o),
        _STREAM,
        _VALUES,
        _STREAM,
        _VALUES,
        _OPTIONS,
    ),
)
_CHAINS = st.builds(
    lambda head, stages: ast.Chain(_SPAN, head, tuple(stages)),
    _HEADS,
    st.lists(_STAGES, max_size=3),
)
_BODY = st.one_of(
    st.builds(lambda name, c: ast.Binding(_SPAN, name, _SPAN, c), _WORDS, _CHAINS),
    st.builds(lambda c: ast.Statement(_SPAN, c), _CHAINS),
)
_PARAMS = st.builds(
    lambda name, kind, default: ast.Param(_SPAN, name, kind, _SPAN, default),
    _WORDS,
    st.sampled_from(PARAM_TYPES),
    st.none() | _VALUES,
)
_HEADER = st.builds(
    lambda name, params, options: ast.Header(_SPAN, name, tuple(params), options),
    _WORDS,
    st.lists(_PARAMS, max_size=3),
    _OPTIONS,
)
_USES = st.builds(
    lambda module, python, alias: ast.Use(_SPAN, module, python, alias),
    _names(),
    st.booleans(),
    st.none() | _WORDS,
)
_DEFS = st.builds(
    lambda name, param, chain: ast.Def(_SPAN, name, _SPAN, param, chain),
    _SAFE,
    _WORDS,
    _CHAINS,
)
_MODULES = st.builds(
    lambda header, uses, defs, body: ast.Module(
        _SPAN, header, tuple(uses), tuple(defs), tuple(body)
    ),
    st.none() | _HEADER,
    st.lists(_USES, max_size=2),
    st.lists(_DEFS, max_size=2),
    st.lists(_BODY, max_size=3),
).filter(lambda m: m.header or m.uses or m.defs or m.body)


@settings(max_examples=150, deadline=None)
@given(_MODULES)
def test_str_round_trips_any_module(module: ast.Module) -> None:
    text = str(module)
    again, diagnostics = parse(text, "t.flow")
    assert diagnostics == [], text
    assert again is not None
    assert shape(again) == shape(module), text
    assert str(again) == text


def test_syntax_files_cover_every_parse_code() -> None:
    # E001-E005 and E007 are about reading files: tests/test_source.py covers them.
    reading = {"E001", "E002", "E003", "E004", "E005", "E007"}
    named = {p.name[:4] for p in SYNTAX_DIR.glob("E0*.flow")}
    assert named == set(CODES) - reading


@pytest.mark.parametrize(
    "path", sorted(SYNTAX_DIR.glob("E0*.flow")), ids=lambda p: p.name
)
def test_syntax_file_reports_its_code(path: Path) -> None:
    _, diagnostics = parse(path.read_text(encoding="utf-8"), path.name)
    assert path.name[:4] in {d.code for d in diagnostics}


def test_rendered_line_is_the_spans_line_despite_form_feeds_and_crlf() -> None:
    text = "flow f()\r\n# page\x0cbreak \u2028 here\r\nx = | y\r\n"
    _, diagnostics = parse(text, "t.flow")
    assert render_text(diagnostics, {"t.flow": text}) == (
        "t.flow:3:5: error[E030]: unexpected `|`; expected a name, `join`, `merge` "
        "or `source`\n"
        "   3 | x = | y\n"
        "     |     ^\n"
    )


# --- a word after `|` that is no stage keyword, followed by more (E044) -------------


@pytest.mark.parametrize(
    ("text", "span", "message", "hint"),
    [
        (
            "a | mapp str.lower | sink f",
            S(1, 10, 1, 13),
            "`mapp` is not a stage keyword, so it names a fragment, which takes no "
            "function or arguments; found name `str`",
            "did you mean `map`?",
        ),
        (
            "a | fltr len [workers = 2]",
            S(1, 10, 1, 13),
            "`fltr` is not a stage keyword, so it names a fragment, which takes no "
            "function or arguments; found name `len`",
            "did you mean `filter`?",
        ),
        (
            "a | words(3) | sink f",
            S(1, 10, 1, 11),
            "`words` is not a stage keyword, so it names a fragment, which takes no "
            "function or arguments; found `(`",
            "a stage is `map F`, `flat_map F`, `filter F`, `key_by F`, `rejoin F`, "
            "`reduce F`, `count`, `sink F` or the name of a `def`",
        ),
        (
            "a | text.words | sink f",
            S(1, 9, 1, 10),
            "`text` is not a stage keyword, so it names a fragment, which takes no "
            "function or arguments; found `.`",
            "a function needs a stage keyword before it: `map F`, `filter F`, ...",
        ),
    ],
)
def test_e044_word_that_is_no_stage_keyword(
    text: str, span: Span, message: str, hint: str
) -> None:
    found = only_error(text)
    assert (found.code, found.span, found.message, found.hint) == (
        "E044",
        span,
        message,
        hint,
    )


def test_trailing_bar_hint_says_where_the_bar_goes() -> None:
    found = only_error("a = b |\n  map f\n")
    assert (found.message, found.hint) == (
        "expected a stage after `|`; found the end of the line",
        "a chain goes on when the next line starts with `|`: move the `|` from the "
        "end of this line to the start of the next",
    )

"""Fuzz tests of `parse`: mutated and random texts give diagnostics, never errors."""

from __future__ import annotations

from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from reflow_lang.frontend.ast import without_spans
from reflow_lang.frontend.diagnostics import render_text
from reflow_lang.frontend.parser import parse
from reflow_lang.frontend.syntax_errors import CODES

EXAMPLES_DIR = Path(__file__).parent.parent / "examples"

FLOWS = [
    """\
flow wordcount(path: str = "in.txt", min_len: int = 4) [delivery = at_least_once]
use text
use python wordfns as w
def words(s) = s | flat_map text.words [expansion = 12] | map str.lower
lines = source text.lines(path)
long = lines
    | words
    | filter w.longer_than(min_len) [workers = 2, order = partial]
long | count [by = self] | sink text.write_tsv("-")
""",
    """\
flow joins(limit: duration = 250ms, ratio: float = 0.5, on: bool = true)
use json
a = source json.read("a.jsonl") [on_error = dead_letter(bad)]
b = source json.read("b.jsonl", [1, 2, "x\\n"])
m = merge(a, b) [capacity = 64]
j = join a by "user_id", b by keyed(user) [how = outer, timeout = 2s]
j | reduce add [by = self, initial = 0] | sink json.write("-")
bad | sink json.write("rejects.jsonl") # dead letters
m | key_by k | rejoin r | sink json.write("-", 1e-3, -7)
""",
    "use text\ndef lower(s) = s | map str.lower\n",
    *(p.read_text(encoding="utf-8") for p in sorted(EXAMPLES_DIR.glob("*.flow"))),
]

_PIECES = st.sampled_from(
    list("|()[]=,.:\"'#\\\n\t -_@{};0123456789abz")
    + ["\x00", "é", "\u2028", "\r", "source", "map", "count", "flow", "def", "use"]
    + ["by", "join", "merge", "python", "as", "5s", "1e999", "[" * 80, "(" * 80]
)


def _mutate(text: str, data: st.DataObject) -> str:
    for _ in range(data.draw(st.integers(1, 4))):
        action = data.draw(st.sampled_from(["insert", "delete", "swap", "bytes"]))
        where = data.draw(st.integers(0, len(text)))
        if action == "insert":
            text = text[:where] + data.draw(_PIECES) + text[where:]
        elif action == "delete":
            size = data.draw(st.integers(1, 12))
            text = text[:where] + text[where + size :]
        elif action == "swap":
            words = text.split(" ")
            i = data.draw(st.integers(0, len(words) - 1))
            j = data.draw(st.integers(0, len(words) - 1))
            words[i], words[j] = words[j], words[i]
            text = " ".join(words)
        else:
            raw = data.draw(st.binary(min_size=1, max_size=6))
            text = text[:where] + raw.decode("latin-1") + text[where:]
    return text


def _check(text: str) -> None:
    module, diagnostics = parse(text, "f.flow")

    assert (module is None) == bool(diagnostics)
    lines = text.count("\n") + 1
    for diagnostic in diagnostics:
        assert diagnostic.code in CODES
        span = diagnostic.span
        assert 1 <= span.line <= span.end_line <= lines + 1
        assert span.column >= 1 and span.end_column >= 1
    assert render_text(diagnostics, {"f.flow": text}).count("error[") == len(
        diagnostics
    )

    if module is not None:
        again, problems = parse(str(module), "g.flow")
        assert problems == [] and again is not None
        assert without_spans(again) == without_spans(module)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(FLOWS), st.data())
def test_parse_mutated_flows_never_raise(text: str, data: st.DataObject) -> None:
    _check(_mutate(text, data))


@settings(max_examples=150, deadline=None)
@given(st.text(max_size=200))
def test_parse_random_text_never_raises(text: str) -> None:
    _check(text)


@settings(max_examples=150, deadline=None)
@given(st.lists(_PIECES, max_size=40).map(" ".join))
def test_parse_random_token_soup_never_raises(text: str) -> None:
    _check(text)

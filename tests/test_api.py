"""The front end's entry points: a syntax error does not hide the other statements'."""

from __future__ import annotations

from pathlib import Path

from frontend_helpers import check, found

from reflow_lang.frontend.parser import Lost, parse_partial

HEAD = """\
flow t(path: str = "in.txt", n: int = 2)
use text
use python fns
lines = source text.lines(path)
"""


def test_errors_of_other_statements_are_reported_after_a_syntax_error(
    tmp_path: Path,
) -> None:
    text = HEAD + "words = lines | mapp str.lower\n"
    text += "lines | map str.lowr | sink text.print\n"
    text += "words | map fns.nope | sink text.print\n"
    c = check(tmp_path, text)
    assert (c.module, c.ir, c.plan) == (None, None, None)
    assert found(c) == [
        (
            "E044",
            "5:22",
            "`mapp` is not a stage keyword, so it names a fragment, which takes no "
            "function or arguments; found name `str`",
        ),
        ("E302", "6:13", "`str` has no function `lowr`"),
        ("E302", "7:13", "`fns` has no function `nope`"),
    ]


def test_names_bound_by_a_failed_statement_stay_silent(tmp_path: Path) -> None:
    # The stream, fragment, dead letter and module the failed lines bind are read
    # later; none of those reads is a second mistake.
    text = HEAD + "use python other as\n"
    text += "words = lines | map str.lower [workers = ]\n"
    text += "def frag(s) = s | map (\n"
    text += "lines | map fns.one [on_error = dead_letter(bad)] | sink text.print(\n"
    text += "\n"
    text += "words | frag | map other.f | sink text.print\n"
    text += "bad | sink text.print\n"
    c = check(tmp_path, text)
    assert [code for code, _, _ in found(c)] == ["E030", "E030", "E032", "E038"]


def test_stream_bound_by_a_failed_statement_and_again_later_stays_silent(
    tmp_path: Path,
) -> None:
    # Line 5 binds `words` but fails; line 6 reads it, line 7 binds it again: the
    # read is no "read before bound" mistake, since the failed line came first.
    text = HEAD + "words = lines | map str.lower |\n"
    text += "words | sink text.print\n"
    text += "words = lines | map str.upper\n"
    text += "words | sink text.print\n"
    c = check(tmp_path, text)
    assert [code for code, _, _ in found(c)] == ["E031"]


def test_no_sink_and_warnings_are_not_reported_after_a_syntax_error(
    tmp_path: Path,
) -> None:
    # The statement that failed may hold the sink, and may use every parameter.
    text = HEAD + "lines | map fns.one | sink text.print(\n"
    c = check(tmp_path, text)
    assert [d.code for d in c.diagnostics] == ["E038"]


def test_nothing_is_checked_when_the_header_fails(tmp_path: Path) -> None:
    text = "flow t(path: str = )\nuse text\nlines = source text.lines(path)\n"
    text += "lines | map str.lowr | sink text.print\n"
    c = check(tmp_path, text)
    assert [d.code for d in c.diagnostics] == ["E030"]


def test_parse_partial_names_what_failed_statements_bind() -> None:
    text = "flow t()\nuse python a.b as c\nuse python d.e\nuse python x.y as\n"
    text += "s = 1 2\ndef f(x) = x |\nq | map g [on_error = dead_letter(dl)] [\n"
    partial = parse_partial(text, "t.flow")
    assert partial.module is not None and partial.module.header is not None
    assert [u.bound for u in partial.module.uses] == ["c", "e"]
    assert partial.lost == Lost(
        streams=frozenset({"s", "dl"}),
        fragments=frozenset({"f"}),
        modules=frozenset({"python", "y"}),
        header=False,
        use=True,
    )


def test_end_of_line_where_more_was_expected(tmp_path: Path) -> None:
    c = check(tmp_path, HEAD + "use python other as\nlines | sink text.print\n")
    assert found(c) == [
        ("E030", "5:20", "expected a name after `as`; found the end of the line")
    ]

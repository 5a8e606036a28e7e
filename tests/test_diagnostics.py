"""Rendering diagnostics: the source line and caret, also for very long lines."""

from __future__ import annotations

from reflow_lang.frontend.diagnostics import closest, did_you_mean, error, render_text
from reflow_lang.frontend.span import Span


def _render(line: str, column: int, end_column: int) -> str:
    span = Span("t.flow", 1, column, 1, end_column)
    found = error("E302", span, "`str` has no function `lowr`", "did you mean `lower`?")
    return render_text([found], {"t.flow": line + "\n"})


def test_render_short_line_whole() -> None:
    assert _render("a | map str.lowr | sink f", 9, 17) == (
        "t.flow:1:9: error[E302]: `str` has no function `lowr`\n"
        "   1 | a | map str.lowr | sink f\n"
        "     |         ^^^^^^^^\n"
        "  = hint: did you mean `lower`?\n"
    )


def test_render_long_line_shows_a_window_around_the_span() -> None:
    # A caret past the end of what is shown would point at nothing.
    line = "a = b" + " " * 5000 + "| map str.lowr"
    column = line.index("str") + 1
    assert _render(line, column, column + 8) == (
        f"t.flow:1:{column}: error[E302]: `str` has no function `lowr`\n"
        f"   1 | ...{' ' * 34}| map str.lowr\n"
        f"     | {' ' * 43}^^^^^^^^\n"
        "  = hint: did you mean `lower`?\n"
    )


def test_render_long_line_cut_after_a_span_near_its_start() -> None:
    line = "a | map str.lowr" + " " * 300 + "| sink f"
    assert _render(line, 9, 17) == (
        "t.flow:1:9: error[E302]: `str` has no function `lowr`\n"
        f"   1 | a | map str.lowr{' ' * 184}...\n"
        "     |         ^^^^^^^^\n"
        "  = hint: did you mean `lower`?\n"
    )


def test_closest_and_did_you_mean_agree() -> None:
    assert closest("pth", ["path", "n"]) == "path"
    assert did_you_mean("pth", ["path", "n"]) == "did you mean `path`?"
    assert closest("zzz", ["path", "n"]) is None
    assert did_you_mean("zzz", ["path", "n"]) is None

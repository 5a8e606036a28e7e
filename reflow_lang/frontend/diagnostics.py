"""Diagnostics: the one type every front-end problem is reported as, and its renderer."""

from __future__ import annotations

import difflib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum

from reflow_lang.frontend.span import Span


class Severity(StrEnum):
    ERROR = "error"
    WARNING = "warning"


@dataclass(frozen=True, slots=True)
class Diagnostic:
    """A problem found in a `.flow` file.

    Attributes:
        code: a stable code such as `E101`; docs/diagnostics.md explains each.
        severity: `error` fails the check; `warning` only with `--strict`.
        span: where the problem is.
        message: what is wrong, lowercase, names in backticks.
        hint: what to do about it, or `None`.
    """

    code: str
    severity: Severity
    span: Span
    message: str
    hint: str | None = None

    def to_dict(self) -> dict[str, object]:
        return {
            "code": self.code,
            "severity": self.severity.value,
            "file": self.span.file,
            "line": self.span.line,
            "column": self.span.column,
            "end_line": self.span.end_line,
            "end_column": self.span.end_column,
            "message": self.message,
            "hint": self.hint,
        }


def error(code: str, span: Span, message: str, hint: str | None = None) -> Diagnostic:
    return Diagnostic(code, Severity.ERROR, span, message, hint)


def warning(code: str, span: Span, message: str, hint: str | None = None) -> Diagnostic:
    return Diagnostic(code, Severity.WARNING, span, message, hint)


def did_you_mean(name: str, candidates: Iterable[str]) -> str | None:
    """A hint naming the closest candidate to a misspelt `name`, if one is close."""
    match = closest(name, candidates)
    return None if match is None else f"did you mean `{match}`?"


def closest(name: str, candidates: Iterable[str]) -> str | None:
    """The candidate closest to a misspelt `name`, if one is close enough to suggest."""
    matches = difflib.get_close_matches(name, sorted(set(candidates)), n=1, cutoff=0.6)
    return matches[0] if matches else None


def sort_key(diagnostic: Diagnostic) -> tuple[str, int, int, str]:
    span = diagnostic.span
    return (span.file, span.line, span.column, diagnostic.code)


def render_text(
    diagnostics: Sequence[Diagnostic], sources: dict[str, str], color: bool = False
) -> str:
    """Renders diagnostics as `file:line:col: error[CODE]: message`, the line, a caret, the hint.

    Args:
        diagnostics: what to render, in the order given.
        sources: the text of each file, by the name its spans use.
        color: wrap the severity, caret and hint in ANSI colours.
    """
    return "".join(_render_one(d, sources.get(d.span.file), color) for d in diagnostics)


def render_json(diagnostics: Sequence[Diagnostic]) -> str:
    return json.dumps([d.to_dict() for d in diagnostics], indent=2) + "\n"


_COLORS = {Severity.ERROR: "\x1b[1;31m", Severity.WARNING: "\x1b[1;33m"}
_BOLD, _CYAN, _RESET = "\x1b[1m", "\x1b[36m", "\x1b[0m"


def _render_one(diagnostic: Diagnostic, source: str | None, color: bool) -> str:
    span = diagnostic.span
    severity = f"{diagnostic.severity.value}[{diagnostic.code}]"
    if color:
        severity = f"{_COLORS[diagnostic.severity]}{severity}{_RESET}"
    out = [f"{span}: {severity}: {diagnostic.message}\n"]

    line = _source_line(source, span.line)
    if line is not None:
        line, column, width = _window(line, span.column, _caret_width(span, line))
        caret = " " * (column - 1) + "^" * width
        if color:
            caret = f"{_COLORS[diagnostic.severity]}{caret}{_RESET}"
        gutter = f"{span.line:>4} | "
        out.append(f"{gutter}{line}\n{' ' * (len(gutter) - 2)}| {caret}\n")

    if diagnostic.hint:
        hint = f"hint: {diagnostic.hint}"
        out.append(f"  = {_CYAN}{hint}{_RESET}\n" if color else f"  = {hint}\n")
    return "".join(out)


def _source_line(source: str | None, number: int) -> str | None:
    if source is None:
        return None
    # Lines as spans count them; `splitlines` would also break at `\f` or `\u2028`.
    lines = source.split("\n")
    if lines[-1] == "":
        lines.pop()
    if not 1 <= number <= len(lines):
        return None
    # Tabs would shift the caret.
    return lines[number - 1].rstrip("\r").replace("\t", " ")


# A longer source line is shown as a window of this many characters around the span.
_SHOWN = 200
# How much of the line before the span the window keeps.
_BEFORE = 40
_CUT = "..."


def _window(line: str, column: int, width: int) -> tuple[str, int, int]:
    """The part of `line` to show, and the caret's column and width in it."""
    if len(line) <= _SHOWN:
        return line, column, width
    start = 0 if column + width <= _SHOWN else column - 1 - _BEFORE
    shown = line[start : start + _SHOWN]
    prefix = _CUT if start > 0 else ""
    suffix = _CUT if start + _SHOWN < len(line) else ""
    column = column - start + len(prefix)
    width = max(1, min(width, len(shown) + len(prefix) - column + 1))
    return prefix + shown + suffix, column, width


def _caret_width(span: Span, line: str) -> int:
    if span.end_line != span.line:
        return max(1, len(line.rstrip()) - span.column + 1)
    return max(1, min(span.end_column, len(line) + 1) - span.column)

"""Helpers for the checker and compiler tests: compile a flow written inline.

`check(tmp_path, text, modules={...})` writes the Python modules beside a `t.flow`
file in `tmp_path` and compiles the text as that file, so that `use python` finds
them. Module files are named per test directory, so each test imports its own.
"""

from __future__ import annotations

import textwrap
from collections.abc import Mapping
from pathlib import Path

from reflow_lang.frontend.api import Compilation, compile_source
from reflow_lang.frontend.diagnostics import Diagnostic, Severity

# A user module most tests can use: functions of every shape a stage needs.
FNS = """
def one(event):
    return event

def two(event, n):
    return event

def add(total, event):
    return total + 1

def parts(parts):
    return len(parts)

def out(batch):
    return None

def key(event):
    return event

def other_key(event):
    return event

def src(path):
    return []

def rsrc(path, start: int = 0):
    return []

async def aone(event):
    return event

async def agen(event):
    yield event

async def akey(event):
    return event

def kw(event, *, must):
    return event

def posrc(path, start, /):
    return []

value = 3
"""


def check(
    tmp_path: Path,
    text: str,
    params: Mapping[str, str] | None = None,
    modules: Mapping[str, str] | None = None,
) -> Compilation:
    """Compiles `text` (dedented) as `tmp_path/t.flow`, with `fns.py` beside it."""
    files = {"fns": FNS, **(modules or {})}
    for name, body in files.items():
        (tmp_path / f"{name}.py").write_text(textwrap.dedent(body))
    flow = tmp_path / "t.flow"
    source = textwrap.dedent(text).lstrip("\n")
    flow.write_text(source)
    return compile_source(source, str(flow), params)


def _chosen(compilation: Compilation, warnings: bool) -> list[Diagnostic]:
    return [
        d for d in compilation.diagnostics if warnings or d.severity is Severity.ERROR
    ]


def found(
    compilation: Compilation, warnings: bool = False
) -> list[tuple[str, str, str]]:
    """Each error (and warning, if asked) as (code, `line:col`, message)."""
    return [
        (d.code, f"{d.span.line}:{d.span.column}", d.message)
        for d in _chosen(compilation, warnings)
    ]


def codes(compilation: Compilation, warnings: bool = False) -> list[str]:
    return [d.code for d in _chosen(compilation, warnings)]


def hints(compilation: Compilation, warnings: bool = False) -> list[str | None]:
    return [d.hint for d in _chosen(compilation, warnings)]

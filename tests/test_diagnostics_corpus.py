"""The corpus of bad flows: every diagnostic code, rendered, and each with its fix.

`tests/bad/CODE-what.flow` is a flow that must report `CODE`; its rendered
diagnostics, as text and as JSON, are snapshot-tested. `tests/bad/fixed/` holds the
same file repaired, which must report no error and not `CODE`. A first line
`# params: name=value ...` gives the `-p` values to compile with.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from syrupy.assertion import SnapshotAssertion

from reflow_lang.frontend.api import Compilation, compile_file
from reflow_lang.frontend.codes import all_codes, diagnostics_markdown
from reflow_lang.frontend.diagnostics import render_json, render_text

ROOT = Path(__file__).resolve().parent.parent
BAD = ROOT / "tests" / "bad"
FILES = sorted(BAD.glob("*.flow"))
_PARAMS = re.compile(r"^# params: (.*)$", re.MULTILINE)


def _compile(path: Path) -> Compilation:
    text = path.read_text()
    match = _PARAMS.search(text)
    params = dict(p.split("=", 1) for p in match.group(1).split()) if match else {}
    return compile_file(str(path.relative_to(ROOT)), params)


def _code(path: Path) -> str:
    return path.name.split("-")[0]


@pytest.fixture(autouse=True)
def _at_root(monkeypatch: pytest.MonkeyPatch) -> None:
    # Spans name files relative to the repository, so snapshots do not depend on it.
    monkeypatch.chdir(ROOT)


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.stem)
def test_bad_file_reports_its_code(path: Path, snapshot: SnapshotAssertion) -> None:
    compiled = _compile(path)
    assert _code(path) in [d.code for d in compiled.diagnostics]
    sources = {compiled.file: compiled.source or ""}
    assert render_text(compiled.diagnostics, sources) == snapshot(name="text")
    assert render_json(compiled.diagnostics) == snapshot(name="json")


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.stem)
def test_fixed_file_is_clean_of_its_code(path: Path) -> None:
    compiled = _compile(BAD / "fixed" / path.name)
    assert compiled.errors == ()
    assert _code(path) not in [d.code for d in compiled.diagnostics]


def test_every_checker_code_has_a_bad_file() -> None:
    # The syntax family (E0xx) has its own corpus in tests/syntax, kept by the parser.
    covered = {_code(path) for path in FILES}
    missing = [c for c in all_codes() if not c.startswith("E0") and c not in covered]
    assert missing == []


def test_every_bad_file_names_a_known_code() -> None:
    codes = all_codes()
    assert [p.name for p in FILES if _code(p) not in codes] == []


def test_diagnostics_doc_matches_the_registry() -> None:
    doc = (ROOT / "docs" / "diagnostics.md").read_text()
    assert doc == diagnostics_markdown()

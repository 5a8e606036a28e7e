"""Snapshots of `reflowc compile --emit ast|ir|plan` and `reflowc graph`, per example.

Each output is one text file under `tests/__snapshots__/test_snapshots/`, so that a
change to the compiler shows as a readable diff. Regenerate them after an intended
change with `pytest tests/test_snapshots.py --snapshot-update`, and read the diff.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from syrupy.assertion import SnapshotAssertion
from syrupy.extensions.single_file import SingleFileSnapshotExtension, WriteMode

from reflow_lang.cli import main

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = sorted(path.name for path in (ROOT / "examples").glob("*.flow"))

COMMANDS = {
    "ast": ["compile", "--emit", "ast"],
    "ir": ["compile", "--emit", "ir"],
    "plan": ["compile", "--emit", "plan"],
    "tree": ["graph", "--format", "tree"],
    "mermaid": ["graph", "--format", "mermaid"],
    "dot": ["graph", "--format", "dot"],
}


class TextSnapshot(SingleFileSnapshotExtension):
    """One UTF-8 text file per snapshot."""

    _write_mode = WriteMode.TEXT
    file_extension = "txt"


@pytest.fixture
def text_snapshot(snapshot: SnapshotAssertion) -> SnapshotAssertion:
    return snapshot.use_extension(TextSnapshot)


def test_there_are_examples() -> None:
    assert len(EXAMPLES) >= 5


@pytest.mark.parametrize("output", sorted(COMMANDS))
@pytest.mark.parametrize("example", EXAMPLES)
def test_example_output_matches_snapshot(
    example: str,
    output: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    text_snapshot: SnapshotAssertion,
) -> None:
    # Paths as a user at the repository root types them; the checkout's own location
    # (which differs between machines) is masked where an output names it.
    monkeypatch.chdir(ROOT)
    monkeypatch.delenv("NO_COLOR", raising=False)

    status = main([*COMMANDS[output], f"examples/{example}", "--color", "never"])

    captured = capsys.readouterr()
    assert (status, captured.err) == (0, "")
    assert captured.out.replace(str(ROOT), "<repo>") == text_snapshot

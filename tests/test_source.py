"""Tests of `read_source`: a file's text, or diagnostics, and never an exception."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from reflow_lang.frontend import source
from reflow_lang.frontend.diagnostics import Diagnostic
from reflow_lang.frontend.source import MAX_BYTES, read_source
from reflow_lang.frontend.span import Span

FLOW = 'flow f()\nuse text\nx = source text.lines("a") | sink text.print\n'


def only_problem(path: Path | str) -> Diagnostic:
    text, diagnostics = read_source(str(path))
    assert text is None
    assert len(diagnostics) == 1
    return diagnostics[0]


def test_read_source_returns_the_text(tmp_path: Path) -> None:
    path = tmp_path / "ok.flow"
    path.write_text(FLOW, encoding="utf-8")
    assert read_source(str(path)) == (FLOW, [])


def test_read_source_keeps_non_ascii_text(tmp_path: Path) -> None:
    path = tmp_path / "ok.flow"
    path.write_text('# café ✓\nx | sink f("é")\n', encoding="utf-8")
    assert read_source(str(path)) == ('# café ✓\nx | sink f("é")\n', [])


def test_read_source_drops_a_byte_order_mark(tmp_path: Path) -> None:
    path = tmp_path / "bom.flow"
    path.write_bytes(b"\xef\xbb\xbf" + FLOW.encode())
    assert read_source(str(path)) == (FLOW, [])


def test_e001_missing_file(tmp_path: Path) -> None:
    path = str(tmp_path / "nope.flow")
    found = only_problem(path)
    assert (found.code, found.span) == ("E001", Span.point(path))
    assert found.message == f"no such file: `{path}`"
    assert found.hint == "check the path"


def test_e001_missing_relative_file_names_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    found = only_problem("nope.flow")
    assert found.hint == (
        f"check the path; it is relative to the working directory `{tmp_path}`"
    )


def test_e001_missing_file_suggests_a_close_one(tmp_path: Path) -> None:
    (tmp_path / "wordcount.flow").write_text("flow f()\n")
    (tmp_path / "wordcont.txt").write_text("not a flow\n")
    path = str(tmp_path / "wordcont.flow")
    found = only_problem(path)
    assert found.hint == f"did you mean `{tmp_path / 'wordcount.flow'}`?"


def test_e001_path_through_a_file(tmp_path: Path) -> None:
    (tmp_path / "plain").write_text("x")
    assert only_problem(tmp_path / "plain" / "a.flow").code == "E001"


def test_e002_directory(tmp_path: Path) -> None:
    found = only_problem(tmp_path)
    assert found.code == "E002"
    assert found.message == f"`{tmp_path}` is a directory, not a flow file"


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this platform")
def test_e002_fifo_is_refused_without_blocking(tmp_path: Path) -> None:
    path = tmp_path / "pipe.flow"
    os.mkfifo(path)
    found = only_problem(path)
    assert found.code == "E002"
    assert found.message == f"`{path}` is not a regular file"


def test_e003_unreadable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "secret.flow"
    path.write_text(FLOW)

    def refuse(*args: object, **kwargs: object) -> None:
        raise PermissionError(13, "Permission denied")

    # Running as root ignores file modes, so the refusal is simulated.
    monkeypatch.setattr(source, "open", refuse, raising=False)
    found = only_problem(path)
    assert found.code == "E003"
    assert found.message == f"cannot read `{path}`: Permission denied"
    assert found.hint == "check the file's permissions"


def test_e003_path_with_a_nul_character() -> None:
    found = only_problem("bad\0name.flow")
    assert found.code == "E003"
    assert found.message == "cannot read `bad\0name.flow`: embedded null byte"


def test_e004_invalid_utf8_points_at_the_byte(tmp_path: Path) -> None:
    path = tmp_path / "latin1.flow"
    path.write_bytes('flow f()\n# é ok\nx = "caf'.encode() + b"\xe9" + b'"\n')
    found = only_problem(path)
    assert (found.code, found.span) == ("E004", Span(str(path), 3, 9, 3, 10))
    assert found.message == "the file is not valid UTF-8: byte 0xe9 cannot be decoded"
    assert found.hint == "save the file as UTF-8"


def test_e004_truncated_sequence_at_the_end(tmp_path: Path) -> None:
    path = tmp_path / "cut.flow"
    path.write_bytes(b"flow f()\nx\xe2\x9c")
    found = only_problem(path)
    assert (found.code, found.span.line, found.span.column) == ("E004", 2, 2)


def test_e005_nul_byte(tmp_path: Path) -> None:
    path = tmp_path / "nul.flow"
    path.write_bytes(b"flow f()\nab\0c\n")
    found = only_problem(path)
    assert (found.code, found.span) == ("E005", Span(str(path), 2, 3, 2, 4))
    assert found.message == "the file contains a NUL byte; a flow file is text"


@pytest.mark.parametrize("content", [b"", b"   \n\n\t\r\n"])
def test_e006_empty_file(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "empty.flow"
    path.write_bytes(content)
    found = only_problem(path)
    assert (found.code, found.span) == ("E006", Span.point(str(path)))
    assert found.message == (
        "empty file: a flow needs a `flow` header and a library a `use` or `def`"
    )


def test_e007_too_large(tmp_path: Path) -> None:
    path = tmp_path / "huge.flow"
    with open(path, "wb") as handle:
        handle.truncate(10 * MAX_BYTES)  # a sparse 10 MiB file: instant
    found = only_problem(path)
    assert found.code == "E007"
    assert found.message == (
        f"`{path}` is {10 * MAX_BYTES} bytes; "
        f"a flow file may be at most {MAX_BYTES} bytes"
    )


def test_e007_limit_is_inclusive(tmp_path: Path) -> None:
    path = tmp_path / "big.flow"
    path.write_bytes(b"#" * (MAX_BYTES - 1) + b"\n")
    text, diagnostics = read_source(str(path))
    assert diagnostics == [] and text is not None and len(text) == MAX_BYTES


def test_read_source_reads_lone_carriage_returns_as_line_ends(tmp_path: Path) -> None:
    # Classic Mac line ends: editors show one line per `\r`, and so do spans.
    path = tmp_path / "t.flow"
    path.write_bytes(b"flow f()\ruse text\r\nx | sink f\r")
    assert read_source(str(path)) == ("flow f()\nuse text\r\nx | sink f\n", [])

"""Tests of the standard library: the doctests of every module, then unit tests."""

from __future__ import annotations

import doctest
import importlib
import inspect
import io
import re
import threading
import unicodedata
from pathlib import Path
from typing import Any

import pytest
import reflow_lang.stdlib
from hypothesis import given, settings
from hypothesis import strategies as st
from reflow_lang.stdlib import catalogue, json, text

STDLIB_MODULES = [
    "reflow_lang.stdlib",
    "reflow_lang.stdlib.text",
    "reflow_lang.stdlib.json",
]


@pytest.mark.parametrize("name", STDLIB_MODULES)
def test_doctests_pass(name: str) -> None:
    module = importlib.import_module(name)
    result = doctest.testmod(module, verbose=False, report=True)

    assert result.attempted > 0
    assert result.failed == 0


# -- text.lines ---------------------------------------------------------------


def test_lines_strips_line_endings(tmp_path: Path) -> None:
    path = tmp_path / "in.txt"
    path.write_bytes(b"one\ntwo\r\nthree\rfour\n\nlast without newline")

    found = list(text.lines(str(path)))

    assert found == ["one", "two", "three", "four", "", "last without newline"]


def test_lines_start_skips_that_many_lines(tmp_path: Path) -> None:
    path = tmp_path / "in.txt"
    path.write_text("a\nb\nc\n")

    assert list(text.lines(str(path), start=2)) == ["c"]
    assert list(text.lines(str(path), start=3)) == []
    assert list(text.lines(str(path), start=10)) == []


def test_lines_empty_file_gives_nothing(tmp_path: Path) -> None:
    path = tmp_path / "empty.txt"
    path.write_text("")

    assert list(text.lines(str(path))) == []


def test_lines_dash_reads_stdin(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO("x\ny\nz\n"))

    assert list(text.lines("-", start=1)) == ["y", "z"]


def test_lines_missing_file_raises_when_iterated(tmp_path: Path) -> None:
    lines = text.lines(str(tmp_path / "nope.txt"))

    with pytest.raises(FileNotFoundError):
        next(lines)


@settings(max_examples=50, deadline=None)
@given(
    st.lists(
        st.text(
            alphabet=st.characters(
                blacklist_categories=("Cs",), blacklist_characters="\r\n"
            )
        )
    )
)
def test_lines_round_trip_any_lines(tmp_path_factory: Any, rows: list[str]) -> None:
    path = tmp_path_factory.mktemp("lines") / "in.txt"
    path.write_text("".join(row + "\n" for row in rows), encoding="utf-8")

    assert list(text.lines(str(path))) == rows
    for start in range(len(rows) + 1):
        assert list(text.lines(str(path), start=start)) == rows[start:]


def test_lines_accepts_start_so_it_is_rewindable() -> None:
    for source in (text.lines, json.read):
        parameter = inspect.signature(source).parameters["start"]
        assert parameter.default == 0


# -- text.words ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("", []),
        ("   ", []),
        ("Hamlet.", ["Hamlet"]),
        ("To be, or not to be", ["To", "be", "or", "not", "to", "be"]),
        ("don't o'er ne\u2019er", ["don't", "o'er", "ne\u2019er"]),
        ("'tis the lords' hall", ["tis", "the", "lords", "hall"]),
        ("well-known--gone", ["well", "known", "gone"]),
        ("act 3, scene 2", ["act", "scene"]),
        ("snake_case x2y", ["snake", "case", "x", "y"]),
        ("naïve Ægir straße", ["naïve", "Ægir", "straße"]),
        ("cafe\u0301 x\u00b2 \u00bd \u216b", ["caf\u00e9", "x"]),
        ("'' ' a''b", ["a", "b"]),
    ],
)
def test_words_splits_by_the_documented_rule(line: str, expected: list[str]) -> None:
    assert text.words(line) == expected


def _reference_words(line: str) -> list[str]:
    # The documented rule, one character at a time.
    found: list[str] = []
    word = apostrophes = ""
    for char in unicodedata.normalize("NFC", line) + " ":
        if char.isalpha():
            if word and apostrophes:
                if len(apostrophes) == 1:
                    word += apostrophes
                else:
                    found.append(word)
                    word = ""
            word += char
            apostrophes = ""
        elif char in "'\u2019":
            apostrophes += char
        else:
            if word:
                found.append(word)
            word = apostrophes = ""
    return found


_TRICKY = st.sampled_from(
    list("ab Z'\u2019-_1\u00b2\u00bc\u216b\u00e9e\u0301\u00df\u4e00.\t")
)


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=_TRICKY | st.characters()))
def test_words_matches_the_documented_rule(line: str) -> None:
    assert text.words(line) == _reference_words(line)


@settings(max_examples=100, deadline=None)
@given(st.text(alphabet=st.characters(max_codepoint=127)))
def test_words_ascii_fast_paths_match_the_rule(line: str) -> None:
    assert text.words(line) == _reference_words(line)


# -- the sinks -----------------------------------------------------------------


def test_print_writes_one_line_per_event(capsys: pytest.CaptureFixture[str]) -> None:
    assert text.print(["a", 1, ("w", 2)]) is None

    assert capsys.readouterr().out == "a\n1\n('w', 2)\n"


def test_write_lines_keeps_file_open_and_flushes_each_batch(tmp_path: Path) -> None:
    out = tmp_path / "out.txt"

    text.write_lines(["alpha", "beta"], str(out))
    after_first = out.read_text()
    text.write_lines([3], str(out))
    after_second = out.read_text()
    text.write_lines.end(str(out))

    assert after_first == "alpha\nbeta\n"
    assert after_second == "alpha\nbeta\n3\n"
    assert out.read_text() == "alpha\nbeta\n3\n"


def test_write_lines_truncates_on_first_use_in_process(tmp_path: Path) -> None:
    out = tmp_path / "out.txt"
    out.write_text("old content\n")

    text.write_lines(["new"], str(out))
    text.write_lines.end(str(out))
    text.write_lines(["newer"], str(out))
    text.write_lines.end(str(out))

    assert out.read_text() == "newer\n"


def test_write_lines_end_of_a_sink_that_got_nothing_leaves_an_empty_file(
    tmp_path: Path,
) -> None:
    # An earlier run's output must not pass for this run's.
    out = tmp_path / "stale.txt"
    out.write_text("yesterday\n")

    text.write_lines.end(str(out))

    assert out.read_text() == ""


def test_write_lines_end_twice_keeps_what_was_written(tmp_path: Path) -> None:
    out = tmp_path / "out.txt"

    text.write_lines(["kept"], str(out))
    text.write_lines.end(str(out))
    text.write_lines.end(str(out))

    assert out.read_text() == "kept\n"


def test_write_lines_dash_writes_stdout(capsys: pytest.CaptureFixture[str]) -> None:
    text.write_lines(["x", "y"], "-")
    text.write_lines.end("-")

    assert capsys.readouterr().out == "x\ny\n"


def test_write_tsv_writes_fields_and_escapes(tmp_path: Path) -> None:
    out = tmp_path / "counts.tsv"
    batch: list[Any] = [
        ("the", 1143),
        ["a", "b", 3.5],
        "alone",
        ("tab\there", "new\nline", "back\\slash", "cr\r"),
        (),
    ]

    text.write_tsv(batch, str(out))
    text.write_tsv.end(str(out))

    assert out.read_bytes() == (
        b"the\t1143\na\tb\t3.5\nalone\ntab\\there\tnew\\nline\tback\\\\slash\tcr\\r\n\n"
    )


def test_write_tsv_concurrent_batches_never_interleave(tmp_path: Path) -> None:
    out = str(tmp_path / "many.tsv")
    batches = [[(worker, i) for i in range(200)] for worker in range(4)]
    threads = [
        threading.Thread(target=text.write_tsv, args=(b, out)) for b in batches * 5
    ]

    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    text.write_tsv.end(out)

    rows = Path(out).read_text().splitlines()
    chunks = [rows[i : i + 200] for i in range(0, len(rows), 200)]
    writers = sorted(chunk[0].split("\t")[0] for chunk in chunks)
    assert len(rows) == 4 * 200 * 5
    assert writers == [str(w) for w in range(4) for _ in range(5)]
    for chunk in chunks:
        worker = chunk[0].split("\t")[0]
        assert chunk == [f"{worker}\t{i}" for i in range(200)]


def test_write_lines_unencodable_batch_writes_nothing(tmp_path: Path) -> None:
    out = tmp_path / "out.txt"

    text.write_lines(["before"], str(out))
    with pytest.raises(UnicodeEncodeError):
        text.write_lines(["fine", "lone \ud800"], str(out))
    text.write_lines(["after"], str(out))
    text.write_lines.end(str(out))

    assert out.read_text() == "before\nafter\n"


def test_file_sinks_share_end_with_their_args() -> None:
    for sink in (text.write_lines, text.write_tsv, json.write):
        parameters = list(inspect.signature(sink).parameters)
        end = getattr(sink, "end")  # noqa: B009 (set at run time; mypy cannot see it)
        checkpoint = getattr(sink, "checkpoint")  # noqa: B009 (likewise)
        restore = getattr(sink, "restore")  # noqa: B009 (likewise)
        assert list(inspect.signature(end).parameters) == parameters[1:] == ["path"]
        assert list(inspect.signature(checkpoint).parameters) == ["path"]
        assert list(inspect.signature(restore).parameters) == ["size", "path"]


def test_file_sink_checkpoint_is_the_size_after_each_batch(tmp_path: Path) -> None:
    out = str(tmp_path / "out.txt")

    assert text.write_lines.checkpoint(out) == 0  # never opened
    text.write_lines(["alpha", "beta"], out)
    first = text.write_lines.checkpoint(out)
    text.write_lines(["ü"], out)
    second = text.write_lines.checkpoint(out)
    text.write_lines.end(out)

    assert (first, second) == (11, 14)  # bytes: `ü` takes two
    assert text.write_lines.checkpoint("-") is None


def test_file_sink_restore_truncates_then_appends(tmp_path: Path) -> None:
    out = tmp_path / "out.tsv"
    text.write_tsv([("a", 1)], str(out))
    saved = text.write_tsv.checkpoint(str(out))
    text.write_tsv([("b", 2)], str(out))  # written, never acknowledged

    text.write_tsv.restore(saved, str(out))  # as a restarted sink does
    text.write_tsv([("b", 2), ("c", 3)], str(out))
    text.write_tsv.end(str(out))

    assert out.read_text() == "a\t1\nb\t2\nc\t3\n"


def test_file_sink_restored_in_a_new_process_does_not_truncate(
    tmp_path: Path,
) -> None:
    out = tmp_path / "out.jsonl"
    out.write_text('{"n": 1}\n{"n": 2}\n')  # what the process before wrote

    json.write.restore(9, str(out))  # its checkpoint: after the first line
    json.write([{"n": 2}], str(out))
    json.write.end(str(out))

    assert out.read_text() == '{"n": 1}\n{"n": 2}\n'


def test_file_sink_restore_refuses_a_shorter_file(tmp_path: Path) -> None:
    out = tmp_path / "out.txt"
    out.write_text("abc")

    message = f"cannot restore `{out}` to its checkpoint of 10 bytes; it holds only 3"
    with pytest.raises(ValueError, match=re.escape(message)):
        text.write_lines.restore(10, str(out))
    assert out.read_text() == "abc"


def test_file_sink_restore_of_stdout_does_nothing(
    capsys: pytest.CaptureFixture[str],
) -> None:
    text.write_lines.restore(3, "-")
    text.write_lines(["x"], "-")

    assert capsys.readouterr().out == "x\n"


# -- json ----------------------------------------------------------------------


def test_json_read_skips_blank_lines_and_counts_values(tmp_path: Path) -> None:
    path = tmp_path / "in.jsonl"
    path.write_text('{"a": 1}\n\n   \n[1, 2]\n"s"\nnull\n')

    assert list(json.read(str(path))) == [{"a": 1}, [1, 2], "s", None]
    assert list(json.read(str(path), start=2)) == ["s", None]


def test_json_read_bad_line_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text('{"a": 1}\n\n{"a": 2}  nope\n')
    values = json.read(str(path))

    assert next(values) == {"a": 1}
    with pytest.raises(ValueError) as caught:
        next(values)

    assert str(caught.value) == f"{path}:3: not a JSON value: Extra data at column 11"


def test_json_read_two_values_on_a_line_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "two.jsonl"
    path.write_text("1 2\n")

    with pytest.raises(ValueError, match=re.escape(f"{path}:1: not a JSON value: ")):
        list(json.read(str(path)))


def test_json_read_dash_reads_stdin(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO('1\n{"b": true}\n'))

    assert list(json.read("-")) == [1, {"b": True}]


def test_json_write_writes_one_value_per_line(tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"

    json.write([{"word": "naïve", "n": 2}, ("pair", None), 1.5], str(out))
    json.write([[]], str(out))
    json.write.end(str(out))

    assert out.read_text(encoding="utf-8") == (
        '{"word": "naïve", "n": 2}\n["pair", null]\n1.5\n[]\n'
    )


def test_json_write_unencodable_batch_writes_nothing(tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"

    with pytest.raises(TypeError) as caught:
        json.write([1, {2, 3}], str(out))
    json.write([4], str(out))
    json.write.end(str(out))

    expected = "cannot write a `set` event as JSON; Object of type set is not JSON "
    assert str(caught.value) == expected + "serializable"
    assert out.read_text() == "4\n"


def test_json_write_escapes_lone_surrogates(tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"

    json.write([{"k": "naïve \ud800"}, "é"], str(out))
    json.write.end(str(out))

    assert out.read_text(encoding="utf-8") == '{"k": "na\\u00efve \\ud800"}\n"é"\n'
    assert list(json.read(str(out))) == [{"k": "naïve \ud800"}, "é"]


_JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4)
    ),
    max_leaves=12,
)


@settings(max_examples=50, deadline=None)
@given(st.lists(_JSON, max_size=8))
def test_json_write_then_read_round_trips(
    tmp_path_factory: Any, values: list[Any]
) -> None:
    out = str(tmp_path_factory.mktemp("json") / "values.jsonl")

    json.write(values, out)
    json.write.end(out)

    assert list(json.read(out)) == values


# -- catalogue ------------------------------------------------------------------


def test_catalogue_lists_every_public_function() -> None:
    rows = [(e.module, e.name, e.role) for e in catalogue()]

    assert rows == [
        ("text", "lines", "source"),
        ("text", "print", "sink"),
        ("text", "words", "function"),
        ("text", "write_lines", "sink"),
        ("text", "write_tsv", "sink"),
        ("json", "read", "source"),
        ("json", "write", "sink"),
    ]


def test_catalogue_rows_unpack_as_five_tuples() -> None:
    module, name, role, signature, summary = catalogue()[0]

    assert (module, name, role) == ("text", "lines", "source")
    assert signature == "lines(path: str, start: int = 0)"
    assert (
        summary == "Yields the lines of a UTF-8 text file, without their line ending."
    )


def test_catalogue_sources_are_rewindable_and_sinks_take_a_batch() -> None:
    for entry in catalogue():
        module = importlib.import_module(f"reflow_lang.stdlib.{entry.module}")
        parameters = list(inspect.signature(getattr(module, entry.name)).parameters)
        if entry.role == "source":
            assert "start" in parameters, entry
        if entry.role == "sink":
            assert parameters[0] == "batch", entry
        assert entry.summary, entry
    assert reflow_lang.stdlib.MODULES == ("text", "json")

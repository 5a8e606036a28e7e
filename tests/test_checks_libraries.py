"""Libraries: `use NAME` of a `.flow` file of fragments beside the flow (E204, E205)."""

from __future__ import annotations

from pathlib import Path

from frontend_helpers import check, codes, found

LIBRARY = """\
use text
use python fns as f
def words(s) = s | flat_map text.words | map str.lower
def loud(s) = s | map f.one
"""

FLOW = """\
flow t()
use text
use words
lines = source text.lines("in.txt")
lines | words | loud | sink text.print
"""


def test_library_fragments_resolve_through_the_library_modules(tmp_path: Path) -> None:
    (tmp_path / "words.flow").write_text(LIBRARY)
    c = check(tmp_path, FLOW)
    assert c.diagnostics == ()
    assert c.plan is not None
    loud = c.plan.task("line5/loud/map").function
    assert loud is not None
    assert (loud.module, loud.name, loud.display) == ("fns", "one", "f.one")
    assert c.ir is not None
    assert str(c.ir.uses[-1]) == f"use words = words from {tmp_path / 'words.flow'}"


def test_library_in_a_folder(tmp_path: Path) -> None:
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "words.flow").write_text(
        "use text\ndef words(s) = s | flat_map text.words\n"
    )
    text = FLOW.replace("use words", "use lib.words").replace(" | loud", "")
    assert check(tmp_path, text).diagnostics == ()


def test_errors_inside_a_library_point_into_its_file(tmp_path: Path) -> None:
    library = tmp_path / "words.flow"
    library.write_text(LIBRARY.replace("f.one", "f.nope"))
    c = check(tmp_path, FLOW)
    assert [(d.code, d.span.file, d.span.line) for d in c.diagnostics] == [
        ("E302", str(library), 4)
    ]


def test_a_flow_is_not_a_library(tmp_path: Path) -> None:
    (tmp_path / "words.flow").write_text("flow other()\n" + LIBRARY)
    c = check(tmp_path, FLOW)
    assert found(c) == [
        (
            "E204",
            "3:5",
            f"`{tmp_path / 'words.flow'}` is a flow, not a library; "
            "a library holds only `use` and `def`",
        )
    ]


def test_library_with_syntax_errors(tmp_path: Path) -> None:
    (tmp_path / "words.flow").write_text("use text\ndef words(s) = s | | map len\n")
    c = check(tmp_path, FLOW.replace(" | loud", ""))
    in_flow = [d for d in c.errors if d.span.file == str(tmp_path / "t.flow")]
    in_library = [d for d in c.errors if d.span.file == str(tmp_path / "words.flow")]
    assert [(d.code, d.message) for d in in_flow] == [
        (
            "E204",
            f"library `words` ({tmp_path / 'words.flow'}) cannot be read or parsed",
        )
    ]
    assert in_library and all(d.code.startswith("E0") for d in in_library)


def test_libraries_using_each_other(tmp_path: Path) -> None:
    (tmp_path / "a.flow").write_text("use b\ndef fa(s) = s | fb\n")
    (tmp_path / "b.flow").write_text("use a\ndef fb(s) = s\n")
    text = FLOW.replace("use words", "use a").replace("words | loud", "fa")
    c = check(tmp_path, text)
    chain = f"{tmp_path / 't.flow'} -> {tmp_path / 'a.flow'} -> {tmp_path / 'b.flow'}"
    assert found(c) == [("E205", "1:5", f"library `a` uses itself through {chain}")]


def test_fragment_of_a_library_clashing_with_a_def(tmp_path: Path) -> None:
    (tmp_path / "words.flow").write_text(LIBRARY)
    text = FLOW.replace("lines = ", "def loud(s) = s | map str.upper\nlines = ")
    c = check(tmp_path, text)
    assert found(c) == [
        ("E102", "3:1", "fragment `loud` of library `words` is already bound at 4:5")
    ]


def test_unused_library_is_a_warning(tmp_path: Path) -> None:
    (tmp_path / "words.flow").write_text(LIBRARY)
    c = check(tmp_path, FLOW.replace("words | loud", "map str.lower"))
    assert found(c, warnings=True) == [("W201", "3:1", "module `words` is never used")]


def test_standard_library_name_wins_over_a_library_file(tmp_path: Path) -> None:
    (tmp_path / "text.flow").write_text("def words(s) = s\n")
    c = check(tmp_path, FLOW.replace("use words\n", "").replace(" | loud", ""))
    assert codes(c) == ["E105"]

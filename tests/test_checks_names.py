"""E1xx: unknown, duplicate and early names, fragment cycles and misuse."""

from __future__ import annotations

from pathlib import Path

from frontend_helpers import check, codes, found, hints

HEAD = """\
flow t(path: str = "in.txt")
use text
use python fns
lines = source text.lines(path)
"""


def test_unknown_stream_suggests_a_close_name(tmp_path: Path) -> None:
    c = check(tmp_path, HEAD + "lnes | sink text.print\n")
    assert found(c) == [("E101", "5:1", "unknown stream `lnes`")]
    assert hints(c) == ["did you mean `lines`?"]


def test_unknown_stream_without_a_close_name_says_how_to_bind(tmp_path: Path) -> None:
    c = check(tmp_path, HEAD + "lines | sink text.print\nzzz | sink text.print\n")
    assert found(c) == [("E101", "6:1", "unknown stream `zzz`")]
    assert hints(c) == ["bind it first with `NAME = CHAIN`"]


def test_unknown_stream_silences_its_chain(tmp_path: Path) -> None:
    # The chain's later stages have no known input: no order error may follow.
    text = (
        HEAD
        + "lines | sink text.print\n"
        + "nope | map fns.one | sink text.print [order = total]\n"
    )
    assert codes(check(tmp_path, text)) == ["E101"]


def test_stream_read_before_bound(tmp_path: Path) -> None:
    text = HEAD + "early | sink text.print\nearly = lines | map fns.one\n"
    c = check(tmp_path, text)
    assert found(c) == [
        ("E103", "5:1", "stream `early` is read before it is bound at 6:1")
    ]


def test_stream_bound_twice(tmp_path: Path) -> None:
    text = HEAD + "lines = source text.lines(path)\nlines | sink text.print\n"
    c = check(tmp_path, text)
    assert found(c) == [("E102", "5:1", "stream `lines` is already bound at 4:1")]


def test_dead_letter_name_clashing_with_a_stream(tmp_path: Path) -> None:
    text = (
        HEAD + "lines | map fns.one [on_error = dead_letter(lines)] | sink text.print\n"
    )
    c = check(tmp_path, text)
    assert found(c) == [("E102", "5:33", "stream `lines` is already bound at 4:1")]


def test_fragment_defined_twice(tmp_path: Path) -> None:
    text = (
        HEAD
        + "def w(s) = s | map fns.one\ndef w(s) = s | map fns.one\n"
        + "lines | w | sink text.print\n"
    )
    c = check(tmp_path, text)
    assert found(c) == [("E102", "6:5", "fragment `w` is already bound at 5:5")]


def test_fragment_cycle_reported_once(tmp_path: Path) -> None:
    text = (
        HEAD
        + "def a(s) = s | b\ndef b(s) = s | a\n"
        + "lines | a | sink text.print\nlines | b | sink text.print\n"
    )
    c = check(tmp_path, text)
    assert found(c) == [("E104", "6:16", "fragment `a` uses itself: `a` -> `b` -> `a`")]


def test_fragment_using_itself_directly(tmp_path: Path) -> None:
    text = HEAD + "def a(s) = s | map fns.one | a\nlines | a | sink text.print\n"
    assert found(check(tmp_path, text)) == [
        ("E104", "5:30", "fragment `a` uses itself: `a` -> `a`")
    ]


def test_unknown_stage_keyword_suggests_the_keyword(tmp_path: Path) -> None:
    c = check(tmp_path, HEAD + "lines | mapp | sink text.print\n")
    assert found(c) == [("E105", "5:9", "unknown stage or fragment `mapp`")]
    assert hints(c) == ["did you mean `map`?"]


def test_fragment_with_options_is_misuse(tmp_path: Path) -> None:
    text = (
        HEAD + "def w(s) = s | map fns.one\nlines | w [workers = 2] | sink text.print\n"
    )
    c = check(tmp_path, text)
    assert found(c) == [
        (
            "E106",
            "6:9",
            "fragment `w` takes no arguments or options when used as a stage",
        )
    ]


def test_fragment_must_start_with_its_parameter(tmp_path: Path) -> None:
    text = HEAD + "def w(s) = lines | map fns.one\nlines | w | sink text.print\n"
    c = check(tmp_path, text)
    assert found(c) == [
        ("E106", "5:12", "fragment `w` must start with its parameter `s`")
    ]


def test_unknown_name_in_arguments(tmp_path: Path) -> None:
    c = check(tmp_path, HEAD + "lines | map fns.two(pth) | sink text.print\n")
    assert found(c) == [
        (
            "E107",
            "5:21",
            "unknown name `pth` in an argument; "
            "arguments are literals or flow parameters",
        )
    ]
    assert hints(c) == ["did you mean `path`?"]


def test_library_file_with_a_chain(tmp_path: Path) -> None:
    text = 'use text\ndef w(s) = s | flat_map text.words\nx = source text.lines("a")\n'
    c = check(tmp_path, text)
    assert found(c) == [
        (
            "E108",
            "3:1",
            "a file without a `flow` header is a library; "
            "it may hold only `use` and `def`",
        )
    ]


def test_library_file_checks_its_fragments(tmp_path: Path) -> None:
    c = check(tmp_path, "use text\ndef w(s) = s | flat_map text.wrds\n")
    assert found(c) == [("E302", "2:25", "`text` has no function `wrds`")]
    assert c.plan is None and c.ir is None


def test_clean_library_has_no_diagnostics(tmp_path: Path) -> None:
    c = check(tmp_path, "use text\ndef w(s) = s | flat_map text.words\n")
    assert c.diagnostics == () and c.ok


def test_unused_fragment_is_a_warning_and_still_checked(tmp_path: Path) -> None:
    text = HEAD + "def w(s) = s | map fns.nope\nlines | sink text.print\n"
    assert found(check(tmp_path, text), warnings=True) == [
        ("W101", "5:5", "fragment `w` is never used"),
        ("E302", "5:20", "`fns` has no function `nope`"),
    ]


def test_fragment_used_twice_reports_its_error_once(tmp_path: Path) -> None:
    text = (
        HEAD
        + "def w(s) = s | map fns.nope\n"
        + "lines | w | sink text.print\nlines | w | sink text.print\n"
    )
    assert codes(check(tmp_path, text)) == ["E302"]


def test_clean_names(tmp_path: Path) -> None:
    text = HEAD + "def w(s) = s | map fns.one\na = lines | w\na | w | sink text.print\n"
    assert check(tmp_path, text).diagnostics == ()


def test_unused_fragment_warning_alone(tmp_path: Path) -> None:
    text = HEAD + "def w(s) = s | map fns.one\nlines | map fns.one | sink text.print\n"
    assert found(check(tmp_path, text), warnings=True) == [
        ("W101", "5:5", "fragment `w` is never used")
    ]


def test_misspelt_fragment_silences_unused_fragment_warnings(tmp_path: Path) -> None:
    text = HEAD + "def loud(s) = s | map fns.one\nlines | lowd | sink text.print\n"
    c = check(tmp_path, text)
    assert codes(c, warnings=True) == ["E105"]
    assert hints(c) == ["did you mean `loud`?"]


def test_fragments_in_a_cycle_are_checked_once_and_not_called_unused(
    tmp_path: Path,
) -> None:
    text = (
        HEAD
        + "def up(s) = s | map fns.nope | down\ndef down(s) = s | up\n"
        + "lines | up | sink text.print\n"
    )
    assert codes(check(tmp_path, text), warnings=True) == ["E302", "E104"]


def test_fragment_read_as_a_stream(tmp_path: Path) -> None:
    text = 'flow t()\nuse text\nlines = source text.lines("a")\n'
    text += "def words(s) = s | flat_map text.words\n"
    text += "lines | words | sink text.print\nwords | sink text.print\n"
    c = check(tmp_path, text)
    assert found(c) == [("E101", "6:1", "`words` is a fragment, not a stream")]
    assert hints(c) == ["use it as a stage, after a stream: `STREAM | words`"]


def test_fragments_nested_too_deeply(tmp_path: Path) -> None:
    # Expanding recurses once per level: 3000 levels would exhaust Python's stack.
    lines = ["def f0(s) = s | map str.lower"]
    lines += [f"def f{i}(s) = s | f{i - 1}" for i in range(1, 3000)]
    text = HEAD + "\n".join(lines) + "\nlines | f2999 | sink text.print\n"
    c = check(tmp_path, text)
    assert found(c) == [
        (
            "E109",
            "2973:20",
            "fragments nest more than 32 deep here: "
            "`f2999` -> `f2998` -> ... -> `f2968` -> `f2967`",
        )
    ]
    assert hints(c) == [
        "use fewer levels of fragments; write some stages out in the chain"
    ]

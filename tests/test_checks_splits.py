"""E6xx: each rejoin closes the nearest open flat_map; not across merges or counts."""

from __future__ import annotations

from pathlib import Path

from frontend_helpers import check, found

HEAD = """\
flow t()
use text
use python fns
lines = source text.lines("in.txt")
"""


def stages(tmp_path: Path, text: str) -> dict[str, tuple[str | None, str | None]]:
    c = check(tmp_path, HEAD + text)
    assert c.diagnostics == ()
    assert c.ir is not None
    return {s.name: (s.split, s.closes) for s in c.ir.stages}


def test_rejoin_without_a_split(tmp_path: Path) -> None:
    c = check(tmp_path, HEAD + "lines | rejoin fns.parts | sink text.print\n")
    assert found(c) == [("E601", "5:9", "`line5/rejoin` has no open split to close")]


def test_second_rejoin_has_nothing_left_to_close(tmp_path: Path) -> None:
    text = "lines | flat_map text.words | rejoin fns.parts | rejoin fns.parts "
    text += "| sink fns.out\n"
    assert found(check(tmp_path, HEAD + text)) == [
        ("E601", "5:50", "`line5/rejoin#2` has no open split to close")
    ]


def test_rejoin_across_a_merge(tmp_path: Path) -> None:
    text = (
        "w = lines | flat_map text.words\n"
        "m = merge(w, lines) | rejoin fns.parts\nm | sink text.print\n"
    )
    assert found(check(tmp_path, HEAD + text)) == [
        (
            "E602",
            "6:23",
            "`m/rejoin` cannot close the split of `w/flat_map` across the merge "
            "`m/merge` at 6:5",
        )
    ]


def test_rejoin_across_a_count(tmp_path: Path) -> None:
    text = "lines | flat_map text.words | count | rejoin fns.parts | sink text.print\n"
    assert found(check(tmp_path, HEAD + text)) == [
        (
            "E602",
            "5:39",
            "`line5/rejoin` cannot close the split of `line5/flat_map` "
            "across the count `line5/count` at 5:31",
        )
    ]


def test_nested_splits_close_innermost_first(tmp_path: Path) -> None:
    text = (
        "lines | flat_map text.words | flat_map fns.one | map fns.one "
        "| rejoin fns.parts | filter fns.one | rejoin fns.parts | sink text.print\n"
    )
    assert stages(tmp_path, text) == {
        "lines": (None, None),
        "line5/flat_map": (None, None),
        "line5/flat_map#2": ("line5/flat_map", None),
        "line5/map": ("line5/flat_map#2", None),
        "line5/rejoin": ("line5/flat_map", "line5/flat_map#2"),
        "line5/filter": ("line5/flat_map", None),
        "line5/rejoin#2": (None, "line5/flat_map"),
        "line5/sink": (None, None),
    }


def test_split_stays_open_across_bound_streams(tmp_path: Path) -> None:
    text = (
        "parts = lines | flat_map text.words\nparts | rejoin fns.parts | sink fns.out\n"
    )
    assert stages(tmp_path, text)["line6/rejoin"] == (None, "parts/flat_map")

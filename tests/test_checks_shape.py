"""E5xx: sinks end chains, unbound chains end in sinks, streams are read."""

from __future__ import annotations

from pathlib import Path

from frontend_helpers import check, codes, found, hints

HEAD = """\
flow t()
use text
use python fns
lines = source text.lines("in.txt")
"""


def test_flow_without_a_sink(tmp_path: Path) -> None:
    c = check(tmp_path, HEAD + "words = lines | map fns.one\nwords | count\n")
    assert ("E501", "1:1", "flow `t` has no sink, so it has no effect") in found(c)


def test_stage_after_a_sink(tmp_path: Path) -> None:
    c = check(tmp_path, HEAD + "lines | sink text.print | map fns.one\n")
    assert found(c) == [
        ("E502", "5:27", "nothing can follow a sink; `line5/sink` ends this chain")
    ]


def test_stage_after_a_sink_inside_a_fragment(tmp_path: Path) -> None:
    text = HEAD + "def show(s) = s | sink text.print\nlines | show | map fns.one\n"
    assert found(check(tmp_path, text)) == [
        ("E502", "6:16", "nothing can follow a sink; `line6/show/sink` ends this chain")
    ]


def test_unbound_chain_without_a_sink(tmp_path: Path) -> None:
    c = check(tmp_path, HEAD + "lines | sink text.print\nlines | map fns.one\n")
    assert found(c) == [
        ("E503", "6:9", "this chain is not bound to a name and does not end in a sink")
    ]
    assert hints(c) == [
        "bind it with `NAME = ...` for later chains, or end it with `| sink F(...)`"
    ]


def test_bare_stream_statement(tmp_path: Path) -> None:
    c = check(tmp_path, HEAD + "lines | sink text.print\nlines\n")
    assert codes(c) == ["E503"]


def test_binding_a_chain_that_ends_in_a_sink(tmp_path: Path) -> None:
    c = check(tmp_path, HEAD + "done = lines | sink text.print\n")
    assert found(c) == [
        (
            "E505",
            "5:1",
            "`done` is bound to a chain that ends in a sink, which produces no stream",
        )
    ]


def test_unread_dead_letter_stream_is_an_error(tmp_path: Path) -> None:
    text = (
        HEAD + "lines | map fns.one [on_error = dead_letter(bad)] | sink text.print\n"
    )
    assert found(check(tmp_path, text)) == [
        (
            "E504",
            "5:33",
            "dead-letter stream `bad` is never read, so failed events are lost",
        )
    ]


def test_unread_stream_is_a_warning(tmp_path: Path) -> None:
    text = HEAD + "lines | sink text.print\nspare = lines | map fns.one\n"
    c = check(tmp_path, text)
    assert found(c, warnings=True) == [("W501", "6:1", "stream `spare` is never read")]
    assert c.ok and c.plan is not None


def test_stream_read_by_a_chain_that_failed_is_not_unread(tmp_path: Path) -> None:
    text = HEAD + "words = lines | map fns.one\nwords | nosuch | sink text.print\n"
    assert codes(check(tmp_path, text), warnings=True) == ["E105"]


def test_fan_out_reads_every_stream(tmp_path: Path) -> None:
    text = HEAD + "lines | sink text.print\nlines | count | sink fns.out\n"
    c = check(tmp_path, text)
    assert c.diagnostics == ()
    assert c.plan is not None
    assert c.plan.queue("lines").consumers == ("line5/sink", "line6/count")


def test_misspelt_stream_silences_unread_warnings(tmp_path: Path) -> None:
    # `lnes` was meant to read `lines`: calling `lines` unread would be a cascade.
    c = check(tmp_path, HEAD + "lnes | map fns.one | sink text.print\n")
    assert codes(c, warnings=True) == ["E101"]


def test_merge_or_join_reading_one_stream_twice(tmp_path: Path) -> None:
    # A task reads each input queue once: a stream named twice would hang the job.
    text = 'flow t()\nuse text\nlines = source text.lines("a")\nb = lines\n'
    text += "merge(lines, b) | sink text.print\n"
    text += "join lines by self, lines by self | sink text.print\n"
    c = check(tmp_path, text)
    assert found(c) == [
        (
            "E506",
            "5:14",
            "`merge` reads one stream twice: `b` is the stream `lines` under another "
            "name; each input must be another stream",
        ),
        (
            "E506",
            "6:21",
            "`join` reads the stream `lines` twice; each input must be another stream",
        ),
    ]
    assert hints(c) == [
        "list each stream once",
        "to join `lines` with itself, read a copy of it through a stage first, "
        "e.g. `copy = lines | key_by K`",
    ]

"""E7xx: order is a type: streams' orders, and where a stage asks for too much."""

from __future__ import annotations

from pathlib import Path

import pytest
from frontend_helpers import check, found, hints
from hypothesis import given, settings
from hypothesis import strategies as st

HEAD = """\
flow t()
use text
use python fns
lines = source text.lines("in.txt")
"""


def orders(tmp_path: Path, text: str) -> dict[str, str]:
    c = check(tmp_path, HEAD + text)
    assert c.diagnostics == ()
    assert c.ir is not None
    return {s.name: str(s.order) for s in c.ir.stages}


def test_sink_asking_total_after_order_none(tmp_path: Path) -> None:
    text = (
        "words = lines | flat_map text.words\n"
        "    | map fns.one [workers = 4, order = none]\n"
        "words | sink text.print [order = total]\n"
    )
    c = check(tmp_path, HEAD + text)
    assert found(c) == [
        (
            "E705",
            "7:34",
            "sink `line7/sink` asks for `total` order but its input has only `none`; "
            "the order was lost at `words/map` (6:41)",
        )
    ]
    assert hints(c) == [
        "remove `order = none` from `words/map` at 6:41, or remove this `order`"
    ]


def test_stage_asking_total_after_partial(tmp_path: Path) -> None:
    text = (
        "lines | flat_map text.words | map fns.one [order = partial] "
        "| map fns.one [order = total] | sink text.print\n"
    )
    c = check(tmp_path, HEAD + text)
    assert found(c) == [
        (
            "E701",
            "5:84",
            "`line5/map#2` asks for `total` order but its input has only `partial`; "
            "the order was lost at `line5/map` (5:52)",
        )
    ]
    assert hints(c) == [
        "remove `order = partial` from `line5/map` at 5:52, or ask for `partial` here"
    ]


def test_partial_needs_an_open_split(tmp_path: Path) -> None:
    c = check(
        tmp_path, HEAD + "lines | map fns.one [order = partial] | sink text.print\n"
    )
    assert found(c) == [
        (
            "E702",
            "5:30",
            "`line5/map` asks for `partial` order but lies inside no split",
        )
    ]


def test_partial_on_the_flat_map_itself(tmp_path: Path) -> None:
    text = "lines | flat_map text.words [order = partial] | sink text.print\n"
    c = check(tmp_path, HEAD + text)
    assert found(c) == [
        (
            "E702",
            "5:38",
            "`line5/flat_map` asks for `partial` order but lies inside no split",
        )
    ]
    assert hints(c) == [
        "a `flat_map` emits its parts in split order; put `order = partial` on the "
        "stages after it"
    ]


def test_partial_needs_a_total_split_input(tmp_path: Path) -> None:
    text = (
        "lines | map fns.one [order = none] | flat_map text.words "
        "| map fns.one [order = partial] | rejoin fns.parts | sink text.print\n"
    )
    c = check(tmp_path, HEAD + text)
    assert found(c) == [
        (
            "E703",
            "5:81",
            "`line5/map#2` asks for `partial` order but the input of its split "
            "`line5/flat_map` is `none`, not `total`",
        )
    ]


def test_keyed_on_a_stream_keyed_by_another_key(tmp_path: Path) -> None:
    text = (
        "k = lines | map fns.one [order = keyed(fns.key)]\n"
        "k | map fns.one [order = keyed(fns.other_key)] | sink text.print\n"
    )
    c = check(tmp_path, HEAD + text)
    assert found(c) == [
        (
            "E704",
            "6:26",
            "`line6/map` asks for `keyed(fns.other_key)` "
            "but its input is keyed by `fns.key`",
        )
    ]


def test_merge_interleaves_and_says_how_to_keep_order(tmp_path: Path) -> None:
    text = 'other = source text.lines("b")\nm = merge(lines, other)\n'
    text += "m | sink text.print [order = total]\n"
    c = check(tmp_path, HEAD + text)
    assert found(c) == [
        (
            "E705",
            "7:30",
            "sink `line7/sink` asks for `total` order but its input has only `none`; "
            "the order was lost at `m` (6:5)",
        )
    ]
    assert hints(c) == [
        "the merge `m` at 6:5 interleaves its inputs; key every input by the same key "
        "and ask for `keyed(K)`, or remove this `order`"
    ]


def test_orders_of_a_split_and_rejoin(tmp_path: Path) -> None:
    text = (
        "lines | flat_map text.words | map fns.one [workers = 3, order = partial] "
        "| rejoin fns.parts | sink text.print [order = total]\n"
    )
    assert orders(tmp_path, text) == {
        "lines": "total",
        "line5/flat_map": "total",
        "line5/map": "partial",
        "line5/rejoin": "total",
        "line5/sink": "total",
    }


def test_merge_of_streams_keyed_alike_is_keyed(tmp_path: Path) -> None:
    text = (
        "a = lines | key_by fns.key\nb = lines | map fns.one [order = keyed(fns.key)]\n"
        "merge(a, b) | map fns.one [order = keyed(fns.key)] | sink text.print\n"
        "join a by fns.key, b by fns.key | count | sink fns.out\n"
    )
    assert orders(tmp_path, text) == {
        "lines": "total",
        "a/key_by": "total",
        "b/map": "keyed(fns.key)",
        "line7/merge": "keyed(fns.key)",
        "line7/map": "keyed(fns.key)",
        "line7/sink": "keyed(fns.key)",
        "line8/join": "keyed(fns.key)",
        "line8/count": "total",
        "line8/sink": "total",
    }


def test_dead_letter_stream_has_no_order(tmp_path: Path) -> None:
    text = (
        "lines | map fns.one [on_error = dead_letter(bad)] | sink text.print\n"
        "bad | sink text.print [order = total]\n"
    )
    c = check(tmp_path, HEAD + text)
    assert hints(c) == ["a dead-letter stream has no order; remove this `order`"]


def test_one_order_error_does_not_cascade(tmp_path: Path) -> None:
    text = (
        "lines | map fns.one [order = none] | map fns.one [order = total] "
        "| map fns.one [order = total] | sink text.print [order = total]\n"
    )
    assert [code for code, _, _ in found(check(tmp_path, HEAD + text))] == ["E701"]


# The lattice, as a reference model over chains of `map` stages, each asking for
# one of these orders (or nothing).
_ASKS = [None, "total", "none", "keyed(fns.key)", 'keyed("f")']


def _reference(asks: list[str | None]) -> list[int]:
    have, errors = "total", []
    for index, ask in enumerate(asks):
        if ask is None:
            continue
        if not (ask == "none" or have == "total" or ask == have):
            errors.append(index)
        have = ask
    return errors


@settings(max_examples=40, deadline=None)
@given(st.lists(st.sampled_from(_ASKS), min_size=1, max_size=6))
def test_order_errors_match_the_lattice(
    tmp_path_factory: pytest.TempPathFactory, asks: list[str | None]
) -> None:
    tmp_path = tmp_path_factory.mktemp("lattice")
    stages = " | ".join(
        "map fns.one" + ("" if ask is None else f" [order = {ask}]") for ask in asks
    )
    c = check(tmp_path, HEAD + f"lines | {stages} | sink text.print\n")
    names = ["line5/map" if i == 0 else f"line5/map#{i + 1}" for i in range(len(asks))]
    reported = [d.message.split("`")[1] for d in c.errors]
    assert reported == [names[i] for i in _reference(asks)]

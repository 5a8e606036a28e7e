"""E3xx: functions exist, are callable and accept what their stage passes them."""

from __future__ import annotations

from pathlib import Path

import pytest
from frontend_helpers import FNS, check, codes, found, hints

HEAD = """\
flow t(path: str = "in.txt", n: int = 2)
use text
use python fns
lines = source text.lines(path)
"""


def chain(tmp_path: Path, stages: str) -> list[tuple[str, str, str]]:
    return found(check(tmp_path, HEAD + f"lines | {stages} | sink text.print\n"))


def test_unknown_module_in_a_function_name(tmp_path: Path) -> None:
    c = check(tmp_path, HEAD + "lines | map tex.words | sink text.print\n")
    assert found(c) == [("E301", "5:13", "unknown module `tex` in `tex.words`")]
    assert hints(c) == ["did you mean `text`?"]


def test_unknown_builtin_suggests_a_close_one(tmp_path: Path) -> None:
    c = check(tmp_path, HEAD + "lines | map lenn | sink text.print\n")
    assert found(c) == [("E301", "5:13", "unknown function `lenn`")]
    assert hints(c) == ["did you mean `len`?"]


def test_missing_function_of_a_module(tmp_path: Path) -> None:
    c = check(tmp_path, HEAD + "lines | flat_map text.wrds | sink text.print\n")
    assert found(c) == [("E302", "5:18", "`text` has no function `wrds`")]
    assert hints(c) == ["did you mean `words`?"]


def test_missing_method_of_a_builtin_type(tmp_path: Path) -> None:
    c = check(tmp_path, HEAD + "lines | map str.lowr | sink text.print\n")
    assert found(c) == [("E302", "5:13", "`str` has no function `lowr`")]
    assert hints(c) == ["did you mean `lower`?"]


def test_value_that_is_not_callable(tmp_path: Path) -> None:
    assert chain(tmp_path, "map fns.value") == [
        ("E303", "5:13", "`fns.value` is a value of type `int`, not a function")
    ]


def test_module_used_as_a_function(tmp_path: Path) -> None:
    assert chain(tmp_path, "map fns") == [
        ("E303", "5:13", "`fns` is a module, not a function")
    ]


@pytest.mark.parametrize(
    ("stages", "column", "message"),
    [
        (
            "map fns.two",
            13,
            "`fns.two` takes 2 positional arguments but `map` passes 1: the event",
        ),
        (
            "map fns.one(1, n)",
            13,
            "`fns.one` takes 1 positional argument but `map` passes 3: "
            "the event and 2 arguments from the flow",
        ),
        (
            "reduce fns.one",
            16,
            "`fns.one` takes 1 positional argument but `reduce` passes 2: "
            "the accumulator and the event",
        ),
        (
            "map fns.kw",
            13,
            "`fns.kw` requires the keyword argument `must`, which no stage passes",
        ),
    ],
)
def test_arity_against_the_signature(
    tmp_path: Path, stages: str, column: int, message: str
) -> None:
    assert chain(tmp_path, stages) == [("E304", f"5:{column}", message)]


def test_sink_receives_the_batch(tmp_path: Path) -> None:
    text = HEAD + "lines | sink fns.two\n"
    assert found(check(tmp_path, text)) == [
        (
            "E304",
            "5:14",
            "`fns.two` takes 2 positional arguments but `sink` passes 1: the batch",
        )
    ]


def test_source_receives_only_the_flow_arguments(tmp_path: Path) -> None:
    text = HEAD + "x = source fns.src()\nx | sink text.print\nlines | sink text.print\n"
    assert found(check(tmp_path, text)) == [
        (
            "E304",
            "5:12",
            "`fns.src` takes 1 positional argument "
            "but the source passes 0: no arguments",
        )
    ]


def test_every_implicit_argument_counts_and_fits(tmp_path: Path) -> None:
    stages = (
        "map fns.two(n) | filter fns.one | key_by fns.key | flat_map text.words "
        "| rejoin fns.parts | reduce fns.add [initial = 0]"
    )
    text = HEAD + f"lines | {stages} | sink fns.out\n"
    assert check(tmp_path, text).diagnostics == ()


def test_async_functions_are_allowed_in_stages(tmp_path: Path) -> None:
    assert chain(tmp_path, "map fns.aone | flat_map fns.agen") == []


def test_async_generator_where_one_result_is_needed(tmp_path: Path) -> None:
    assert chain(tmp_path, "map fns.agen") == [
        (
            "E305",
            "5:13",
            "`fns.agen` is an async generator; `map` needs one result per call",
        )
    ]


def test_async_key_function(tmp_path: Path) -> None:
    assert chain(tmp_path, "count [by = fns.akey]") == [
        ("E305", "5:21", "key function `fns.akey` is async; keys are computed inline")
    ]


def test_argument_that_is_not_a_literal(tmp_path: Path) -> None:
    c = check(tmp_path, HEAD + "lines | map fns.two(len(1)) | sink text.print\n")
    assert found(c) == [
        ("E306", "5:21", "an argument must be a literal or a flow parameter")
    ]


def test_source_with_positional_only_start(tmp_path: Path) -> None:
    text = (
        HEAD
        + "x = source fns.posrc(path, 0)\nx | sink text.print\n"
        + "lines | sink text.print\n"
    )
    assert found(check(tmp_path, text)) == [
        ("E307", "5:12", "source `fns.posrc` has a positional-only `start` parameter")
    ]


def test_independent_function_errors_are_all_reported(tmp_path: Path) -> None:
    c = check(
        tmp_path,
        HEAD + "lines | map tex.a | map fns.nope | map lenn | sink text.print\n",
    )
    assert codes(c) == ["E301", "E302", "E301"]


def test_resolved_function_facts(tmp_path: Path) -> None:
    text = HEAD + "x = source fns.rsrc(path)\nx | map fns.aone | sink text.print\n"
    text += "lines | sink text.print\n"
    c = check(tmp_path, text)
    assert c.ir is not None
    by_name = {stage.name: stage for stage in c.ir.stages}
    source, mapped = by_name["x"].function, by_name["line6/map"].function
    assert source is not None and mapped is not None
    assert (source.rewindable, source.is_async) == (True, False)
    assert (mapped.rewindable, mapped.is_async) == (False, True)
    assert (mapped.module, mapped.name, mapped.path) == (
        "fns",
        "aone",
        str(tmp_path / "fns.py"),
    )


def test_source_argument_that_lands_on_start(tmp_path: Path) -> None:
    # The runtime opens a rewindable source with `start=`; a flow argument in that
    # place would make every call fail with "multiple values for argument 'start'".
    text = HEAD + "x = source fns.rsrc(path, 3)\nx | sink text.print\n"
    c = check(tmp_path, text + "lines | sink text.print\n")
    assert found(c) == [
        (
            "E304",
            "5:12",
            "argument 2 of the source `fns.rsrc` lands on its `start` parameter, "
            "which the runtime sets to rewind the source",
        )
    ]
    assert hints(c) == ["remove that argument; the runtime passes `start` by keyword"]


def test_unknown_name_suggests_the_module_function_of_that_name(tmp_path: Path) -> None:
    # `user` looks like the builtin `super`, but the flow's own module has `user`.
    c = check(
        tmp_path,
        HEAD + "lines | map fns.one [order = keyed(user)] | sink text.print\n",
        modules={"fns": FNS + "\ndef user(event):\n    return event\n"},
    )
    assert found(c) == [("E301", "5:36", "unknown function `user`")]
    assert hints(c) == ["did you mean `fns.user`?"]


def test_unknown_key_says_how_keys_are_written(tmp_path: Path) -> None:
    c = check(tmp_path, HEAD + "lines | count [by = usr_id] | sink text.print\n")
    assert found(c) == [("E301", "5:21", "unknown function `usr_id`")]
    assert hints(c) == [
        "a key is a function (`m.usr_id` from a module bound with `use`), a quoted "
        'field name (`"usr_id"`) or `self`'
    ]


def test_misspelt_module_is_not_also_unused(tmp_path: Path) -> None:
    text = 'flow t(path: str = "in.txt")\nuse text\nuse python fns as f\n'
    text += "lines = source text.lines(path)\nlines | map ff.one | sink text.print\n"
    c = check(tmp_path, text)
    assert found(c, warnings=True) == [
        ("E301", "5:13", "unknown module `ff` in `ff.one`")
    ]
    assert hints(c) == ["did you mean `f`?"]


def test_missing_function_with_no_close_name_says_where_to_look(tmp_path: Path) -> None:
    c = check(
        tmp_path, HEAD + "lines | map text.zzzzz | map fns.qqqqq | sink text.print\n"
    )
    assert found(c) == [
        ("E302", "5:13", "`text` has no function `zzzzz`"),
        ("E302", "5:30", "`fns` has no function `qqqqq`"),
    ]
    assert hints(c) == [
        "`reflowc stdlib text` lists its functions",
        "check the spelling against the functions `fns` defines",
    ]

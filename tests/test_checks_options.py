"""E4xx: option keys per stage kind, value types and ranges, duplicates."""

from __future__ import annotations

from pathlib import Path

import pytest
from frontend_helpers import check, found, hints

HEAD = """\
flow t()
use text
use python fns
lines = source text.lines("in.txt")
"""


def errors(tmp_path: Path, stage: str) -> list[tuple[str, str, str]]:
    return found(check(tmp_path, HEAD + f"lines | {stage} | sink text.print\n"))


def test_option_of_another_stage_kind(tmp_path: Path) -> None:
    c = check(
        tmp_path, HEAD + "lines | map fns.one [expansion = 2] | sink text.print\n"
    )
    assert found(c) == [
        (
            "E401",
            "5:22",
            "option `expansion` does not apply to `map`; it applies to `flat_map`",
        )
    ]
    assert hints(c) == [
        "`map` takes `workers`, `order`, `batch`, `capacity`, `on_error`, `timeout`"
    ]


def test_misspelt_option_suggests_the_key(tmp_path: Path) -> None:
    c = check(tmp_path, HEAD + "lines | map fns.one [wrkers = 2] | sink text.print\n")
    assert found(c) == [("E401", "5:22", "unknown option `wrkers` for `map`")]
    assert hints(c) == ["did you mean `workers`?"]


def test_source_takes_no_workers(tmp_path: Path) -> None:
    text = 'flow t()\nuse text\nx = source text.lines("a") [workers = 2]\n'
    text += "x | sink text.print\n"
    assert found(check(tmp_path, text)) == [
        (
            "E401",
            "3:29",
            "option `workers` does not apply to `source`; it applies to "
            "`map`, `flat_map`, `filter`, `key_by`, `rejoin`",
        )
    ]


def _value_column(options: str) -> int:
    """The column of the option's value (of N in `retry(N)`) in the stage."""
    start = len("lines | flat_map text.words [") + 1
    if "retry(0)" in options:
        return start + options.index("(") + 1
    return start + options.index("=") + 2


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ("workers = 1.5", "option `workers` must be an integer"),
        ('batch = "x"', "option `batch` must be an integer"),
        (
            "timeout = 5",
            "option `timeout` must be a duration such as `250ms`, `5s` or `2m`",
        ),
        (
            "order = sorted",
            "option `order` must be `total`, `partial`, `keyed(K)` or `none`",
        ),
        (
            "on_error = explode",
            "option `on_error` must be one of `fail`, `skip`, `retry(N)`, "
            "`dead_letter(NAME)`",
        ),
        (
            'on_error = retry("x")',
            "option `on_error` must be `retry(N)` with an integer N",
        ),
        (
            'on_error = dead_letter("x")',
            "option `on_error` must be `dead_letter(NAME)` "
            "with the name of a new stream",
        ),
    ],
)
def test_value_of_the_wrong_type(tmp_path: Path, options: str, message: str) -> None:
    assert errors(tmp_path, f"flat_map text.words [{options}]") == [
        ("E402", f"5:{_value_column(options)}", message)
    ]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ("workers = 0", "option `workers` must be at least 1; found 0"),
        ("batch = -1", "option `batch` must be at least 1; found -1"),
        ("capacity = 0", "option `capacity` must be at least 1; found 0"),
        ("expansion = 0", "option `expansion` must be greater than 0; found 0"),
        ("timeout = 0s", "option `timeout` must be longer than 0s; found 0s"),
        ("on_error = retry(0)", "`retry(N)` needs N of at least 1; found 0"),
    ],
)
def test_value_out_of_range(tmp_path: Path, options: str, message: str) -> None:
    assert errors(tmp_path, f"flat_map text.words [{options}]") == [
        ("E403", f"5:{_value_column(options)}", message)
    ]


def test_option_given_twice(tmp_path: Path) -> None:
    assert errors(tmp_path, "map fns.one [workers = 2, workers = 3]") == [
        ("E404", "5:35", "option `workers` is already given at 5:22")
    ]


def test_every_option_typed_and_defaulted(tmp_path: Path) -> None:
    text = HEAD + (
        "x = lines | flat_map text.words [workers = 3, batch = 64, capacity = 16, "
        "timeout = 250ms, on_error = retry(2), expansion = 12]\n"
        "x | map fns.one [on_error = dead_letter(bad), order = none] "
        "| sink text.print\n"
        "bad | count | sink text.print\n"
    )
    c = check(tmp_path, text)
    assert c.diagnostics == ()
    assert c.ir is not None
    stages = {stage.name: stage for stage in c.ir.stages}
    options = stages["x/flat_map"].options
    assert (options.workers, options.batch, options.capacity) == (3, 64, 16)
    assert (options.timeout, options.expansion) == (0.25, 12.0)
    assert options.on_error is not None and str(options.on_error) == "retry(2)"
    mapped = stages["line6/map"].options
    assert (mapped.workers, mapped.batch, mapped.timeout, mapped.expansion) == (
        1,
        None,
        None,
        None,
    )
    assert mapped.on_error is not None and mapped.on_error.dead_letter == "bad"


def test_join_defaults_to_inner(tmp_path: Path) -> None:
    text = HEAD + 'other = source text.lines("b")\n'
    text += 'j = join lines by self, other by "id"\nj | sink fns.out\n'
    c = check(tmp_path, text)
    assert c.diagnostics == ()
    assert c.ir is not None and c.ir.stages[-2].options.how == "inner"


def test_option_values_may_be_flow_parameters(tmp_path: Path) -> None:
    text = (
        "flow t(n: int = 3, wait: duration = 2s)\nuse text\n"
        'lines = source text.lines("in.txt")\n'
        "lines | map str.lower [workers = n, timeout = wait] | sink text.print\n"
    )
    c = check(tmp_path, text, params={"n": "5"})
    assert c.diagnostics == ()
    assert c.plan is not None
    task = c.plan.task("line4/map")
    assert (task.workers, task.timeout) == (5, 2.0)


def test_parameter_of_the_wrong_type_in_an_option(tmp_path: Path) -> None:
    text = (
        "flow t(n: int = 3)\nuse text\n"
        'lines = source text.lines("in.txt")\n'
        "lines | map str.lower [timeout = n] | sink text.print\n"
    )
    assert found(check(tmp_path, text)) == [
        (
            "E402",
            "4:34",
            "option `timeout` must be a duration such as `250ms`, `5s` or `2m`",
        )
    ]


def test_option_words_win_over_parameter_names(tmp_path: Path) -> None:
    text = (
        'flow t(none: str = "x")\nuse text\n'
        "lines = source text.lines(none)\n"
        "lines | map str.lower [order = none] | sink text.print\n"
    )
    c = check(tmp_path, text)
    assert c.diagnostics == ()
    assert c.ir is not None and str(c.ir.stages[1].options.order) == "none"


@pytest.mark.parametrize(
    ("options", "message", "hint"),
    [
        (
            "order = keyed",
            "option `order` must be `total`, `partial`, `keyed(K)` or `none`",
            'name the key in brackets: `keyed(F)` with a function, `keyed("field")` '
            "or `keyed(self)`",
        ),
        (
            "on_error = retry",
            "option `on_error` must be one of `fail`, `skip`, `retry(N)`, "
            "`dead_letter(NAME)`",
            "`retry` takes an argument: `retry(N)`, e.g. `retry(3)`",
        ),
        (
            "on_error = dead_letter",
            "option `on_error` must be one of `fail`, `skip`, `retry(N)`, "
            "`dead_letter(NAME)`",
            "`dead_letter` takes an argument: `dead_letter(NAME)`, "
            "e.g. `dead_letter(failed)`",
        ),
        (
            "timeout = 5",
            "option `timeout` must be a duration such as `250ms`, `5s` or `2m`",
            "write a number and a unit (`ms`, `s`, `m` or `h`), e.g. `timeout = 5s`",
        ),
        (
            "workers = 1.5",
            "option `workers` must be an integer",
            "write a whole number, e.g. `workers = 4`",
        ),
    ],
)
def test_wrong_value_hint_says_how_to_write_it(
    tmp_path: Path, options: str, message: str, hint: str
) -> None:
    # A hint that repeats the word the user wrote (`did you mean `keyed`?`) does not
    # help; each says how the value is written instead.
    c = check(tmp_path, HEAD + f"lines | map fns.one [{options}] | sink text.print\n")
    assert [(d.message, d.hint) for d in c.errors] == [(message, hint)]


@pytest.mark.parametrize(
    ("options", "message", "hint"),
    [
        (
            'order = "total"',
            "option `order` must be `total`, `partial`, `keyed(K)` or `none`",
            "write it without quotes: `total`",
        ),
        (
            'on_error = "skip"',
            "option `on_error` must be one of `fail`, `skip`, `retry(N)`, "
            "`dead_letter(NAME)`",
            "write it without quotes: `skip`",
        ),
    ],
)
def test_word_written_as_a_string(
    tmp_path: Path, options: str, message: str, hint: str
) -> None:
    c = check(tmp_path, HEAD + f"lines | map fns.one [{options}] | sink text.print\n")
    assert [(d.message, d.hint) for d in c.errors] == [(message, hint)]


def test_join_kind_written_as_a_string(tmp_path: Path) -> None:
    text = HEAD + 'other = source text.lines("b")\n'
    text += 'j = join lines by self, other by self [how = "left"]\n'
    c = check(tmp_path, text + "j | sink text.print\n")
    assert [(d.message, d.hint) for d in c.errors] == [
        (
            "option `how` must be one of `inner`, `left`, `outer`",
            "write it without quotes: `left`",
        )
    ]


def test_value_out_of_range_says_what_to_give(tmp_path: Path) -> None:
    c = check(
        tmp_path,
        HEAD + "lines | map fns.one [workers = 0, timeout = 0s] | sink fns.out\n",
    )
    assert hints(c) == [
        "give `workers` a value at least 1",
        "give `timeout` a value longer than 0s",
    ]

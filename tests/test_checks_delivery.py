"""E8xx: delivery, flow parameters, their defaults, `-p` values and header options."""

from __future__ import annotations

from pathlib import Path

import pytest
from frontend_helpers import check, codes, found, hints

from reflow_lang.frontend.checks.delivery import parse_duration, parse_param_value

BODY = """\
use text
use python fns
lines = source text.lines(path)
lines | map fns.two(n) | sink text.print
"""


def flow(header: str) -> str:
    return header + "\n" + BODY


def test_exactly_once_needs_rewindable_sources(tmp_path: Path) -> None:
    text = (
        'flow t(path: str = "a") [delivery = exactly_once]\nuse text\nuse python fns\n'
        "x = source fns.src(path)\nx | sink text.print\n"
    )
    c = check(tmp_path, text)
    assert found(c) == [
        (
            "E801",
            "4:12",
            "`delivery = exactly_once` needs every source to rewind; "
            "`fns.src` has no `start` parameter",
        )
    ]


def test_exactly_once_with_rewindable_sources(tmp_path: Path) -> None:
    c = check(
        tmp_path, flow('flow t(path: str = "a", n: int = 1) [delivery = exactly_once]')
    )
    assert c.diagnostics == ()
    assert c.plan is not None and c.plan.delivery == "exactly_once"
    assert c.plan.task("lines").rewindable


def test_default_of_the_wrong_type(tmp_path: Path) -> None:
    c = check(tmp_path, flow('flow t(path: str = "a", n: int = "two")'))
    assert found(c) == [("E802", "1:34", "the default of `n` must be an integer")]
    assert hints(c) == ["`n` is declared `int`"]


def test_given_value_of_the_wrong_type(tmp_path: Path) -> None:
    c = check(
        tmp_path, flow('flow t(path: str = "a", n: int = 1)'), params={"n": "many"}
    )
    assert found(c) == [
        ("E803", "1:25", "`-p n=many` is not an integer; `n` is declared `int`")
    ]


def test_unknown_given_parameter(tmp_path: Path) -> None:
    c = check(
        tmp_path, flow('flow t(path: str = "a", n: int = 1)'), params={"pth": "3"}
    )
    assert found(c) == [
        (
            "E804",
            "1:1",
            "unknown parameter `pth` given with `-p`; "
            "the flow's parameters: `n`, `path`",
        )
    ]
    assert hints(c) == ["did you mean `path`?"]


def test_header_option_unknown_or_invalid(tmp_path: Path) -> None:
    header = 'flow t(path: str = "a", n: int = 1) [delivery = exactly_twice, speed = 3]'
    c = check(tmp_path, flow(header))
    assert found(c) == [
        (
            "E805",
            "1:49",
            "`delivery` must be one of `at_most_once`, `at_least_once`, `exactly_once`",
        ),
        ("E805", "1:64", "unknown flow option `speed`"),
    ]
    assert hints(c)[0] == "did you mean `exactly_once`?"


def test_parameter_without_a_value(tmp_path: Path) -> None:
    c = check(tmp_path, flow("flow t(path: str, n: int = 1)"))
    assert found(c) == [
        ("E807", "1:8", "parameter `path` has no default and no value was given")
    ]


def test_given_value_fills_a_parameter_without_default(tmp_path: Path) -> None:
    c = check(
        tmp_path,
        flow("flow t(path: str, n: int = 1)"),
        params={"path": "x.txt", "n": "7"},
    )
    assert c.diagnostics == ()
    assert c.plan is not None
    assert c.plan.parameters == (("path", "x.txt"), ("n", 7))
    function = c.plan.task("line5/map").function
    assert function is not None and function.args == (7,)


def test_unused_parameter_is_a_warning(tmp_path: Path) -> None:
    c = check(tmp_path, flow('flow t(path: str = "a", n: int = 1, spare: bool = true)'))
    assert found(c, warnings=True) == [
        ("W801", "1:37", "parameter `spare` is never used")
    ]
    assert c.ok


def test_parameter_declared_twice(tmp_path: Path) -> None:
    c = check(tmp_path, flow('flow t(path: str = "a", n: int = 1, n: int = 2)'))
    assert codes(c) == ["E102"]


@pytest.mark.parametrize(
    ("type_", "text", "value"),
    [
        ("int", "42", 42),
        ("float", "2.5", 2.5),
        ("bool", "true", True),
        ("bool", "false", False),
        ("duration", "250ms", 0.25),
        ("duration", "2m", 120.0),
        ("path", "out/x.tsv", "out/x.tsv"),
        ("str", "", ""),
    ],
)
def test_param_values_are_typed(type_: str, text: str, value: object) -> None:
    assert parse_param_value(type_, text) == value


@pytest.mark.parametrize(
    ("type_", "text"),
    [
        ("int", "4.5"),
        ("bool", "yes"),
        ("duration", "5"),
        ("float", "x"),
        # A plan holds no `nan` or `inf`: its JSON could not carry them.
        ("float", "nan"),
        ("float", "-inf"),
        ("float", "1e999"),
        ("duration", "9" * 400 + "s"),
    ],
)
def test_param_values_of_the_wrong_type_raise(type_: str, text: str) -> None:
    with pytest.raises(ValueError):
        parse_param_value(type_, text)


def test_parse_duration() -> None:
    assert [parse_duration(t) for t in ("1h", "1.5s", "s", "5 s")] == [
        3600.0,
        1.5,
        None,
        None,
    ]


def test_header_option_given_twice(tmp_path: Path) -> None:
    header = (
        'flow t(path: str = "a", n: int = 1) [delivery = exactly_once, delivery = x]'
    )
    c = check(tmp_path, flow(header))
    assert found(c) == [("E805", "1:63", "flow option `delivery` is given twice")]
    assert hints(c) == ["remove one of them"]


@pytest.mark.parametrize(
    ("declared", "given", "message", "hint"),
    [
        (
            "n: int = 1",
            "n=x",
            "`-p n=x` is not an integer; `n` is declared `int`",
            "give an integer, e.g. `-p n=4`",
        ),
        (
            "n: bool = true",
            "n=yes",
            "`-p n=yes` is not `true` or `false`; `n` is declared `bool`",
            "give `true` or `false`, e.g. `-p n=true`",
        ),
        (
            "n: duration = 1s",
            "n=5",
            "`-p n=5` is not a duration such as `250ms`, `5s` or `2m`; "
            "`n` is declared `duration`",
            "give a duration such as `250ms`, `5s` or `2m`, e.g. `-p n=5s`",
        ),
    ],
)
def test_given_value_of_the_wrong_type_says_what_to_give(
    tmp_path: Path, declared: str, given: str, message: str, hint: str
) -> None:
    text = f'flow t(path: str = "a", {declared})\nuse text\n'
    text += "lines = source text.lines(path)\nlines | sink text.print\n"
    name, value = given.split("=")
    c = check(tmp_path, text, params={name: value})
    assert [(d.message, d.hint) for d in c.errors] == [(message, hint)]


def test_misspelt_parameter_is_not_also_unused(tmp_path: Path) -> None:
    # One mistake, one message: the parameter the hint names is the one meant.
    text = 'flow t(path: str = "a", nworkers: int = 2)\nuse text\n'
    text += "lines = source text.lines(pth)\n"
    text += "lines | map str.lower [workers = nworker] | sink text.print\n"
    c = check(tmp_path, text)
    assert found(c, warnings=True) == [
        (
            "E107",
            "3:27",
            "unknown name `pth` in an argument; arguments are literals or flow "
            "parameters",
        ),
        (
            "E107",
            "4:34",
            "unknown name `nworker` in the value of `workers`; it is a literal or a "
            "flow parameter",
        ),
    ]
    assert hints(c) == ["did you mean `path`?", "did you mean `nworkers`?"]


def test_parameter_far_from_an_unknown_name_is_still_unused(tmp_path: Path) -> None:
    text = 'flow t(path: str = "a", n: int = 2)\nuse text\n'
    text += (
        "lines = source text.lines(path)\nlines | map fns.two(zzz) | sink text.print\n"
    )
    c = check(tmp_path, text.replace("use text\n", "use text\nuse python fns\n"))
    assert codes(c, warnings=True) == ["W801", "E107"]


def test_long_given_value_is_shortened_in_the_message(tmp_path: Path) -> None:
    text = 'flow t(path: str = "a", n: float = 1.0)\nuse text\n'
    text += "lines = source text.lines(path)\nlines | sink text.print\n"
    c = check(tmp_path, text, params={"n": "x" * 100})
    assert [d.message for d in c.errors] == [
        f"`-p n={'x' * 37}...` is not a number; `n` is declared `float`"
    ]


def test_delivery_written_as_a_string(tmp_path: Path) -> None:
    c = check(tmp_path, flow('flow t(path: str = "a", n: int = 1) [delivery = "x"]'))
    assert hints(c) == [None]
    c = check(
        tmp_path,
        flow('flow t(path: str = "a", n: int = 1) [delivery = "at_most_once"]'),
    )
    assert hints(c) == ["write it without quotes: `at_most_once`"]

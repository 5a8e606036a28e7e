"""E2xx: `use` resolution: stdlib modules, Python modules beside the flow or."""

from __future__ import annotations

from pathlib import Path

import pytest
from frontend_helpers import check, codes, found, hints

TAIL = 'lines = source text.lines("in.txt")\nlines | sink text.print\n'


def test_unknown_stdlib_module_suggests_a_close_one(tmp_path: Path) -> None:
    c = check(tmp_path, "flow t()\nuse text\nuse jsn\n" + TAIL)
    assert found(c) == [("E201", "3:5", "no standard-library module `jsn`")]
    assert hints(c) == ["did you mean `json`?"]


def test_unknown_stdlib_module_points_to_use_python(tmp_path: Path) -> None:
    c = check(tmp_path, "flow t()\nuse text\nuse collections\n" + TAIL)
    assert hints(c) == [
        "for a Python module write `use python collections`; "
        "for a library, put `collections.flow` beside the flow file"
    ]


def test_python_module_not_found(tmp_path: Path) -> None:
    c = check(tmp_path, "flow t()\nuse text\nuse python nowhere_to_be_found\n" + TAIL)
    assert found(c) == [
        (
            "E202",
            "3:12",
            "python module `nowhere_to_be_found` not found next to the flow file "
            "or on `sys.path`",
        )
    ]
    assert hints(c) == [
        f"put `nowhere_to_be_found.py` in `{tmp_path}` or install the package"
    ]


def test_module_failing_to_import_reports_its_exception(tmp_path: Path) -> None:
    modules = {"broken": "import math\nX = 1 / 0\n"}
    text = "flow t()\nuse text\nuse python broken\n" + TAIL
    c = check(tmp_path, text, modules=modules)
    assert found(c) == [
        (
            "E203",
            "3:12",
            "module `broken` fails to import: ZeroDivisionError: division by zero",
        )
    ]


def test_module_calling_exit_on_import_is_reported(tmp_path: Path) -> None:
    modules = {"quits": "import sys\nsys.exit(3)\n"}
    c = check(
        tmp_path, "flow t()\nuse text\nuse python quits\n" + TAIL, modules=modules
    )
    assert found(c) == [
        ("E203", "3:12", "module `quits` fails to import: SystemExit: 3")
    ]


def test_functions_of_a_failed_module_stay_silent(tmp_path: Path) -> None:
    modules = {"broken": "X = 1 / 0\n"}
    text = (
        "flow t()\nuse text\nuse python broken as b\n"
        'lines = source text.lines("x")\nlines | map b.anything | sink b.out\n'
    )
    assert codes(check(tmp_path, text, modules=modules)) == ["E203"]


def test_python_module_from_sys_path_and_alias(tmp_path: Path) -> None:
    text = (
        "flow t()\nuse text\nuse python os.path as p\n"
        'lines = source text.lines("x")\nlines | map p.basename | sink text.print\n'
    )
    c = check(tmp_path, text)
    assert c.diagnostics == ()
    assert c.plan is not None
    function = c.plan.task("line5/map").function
    assert function is not None
    assert (function.module, function.name, function.path) == (
        "os.path",
        "basename",
        None,
    )


def test_module_beside_the_flow_wins_over_sys_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    site = tmp_path / "site"
    site.mkdir()
    (site / "shadowed_fns.py").write_text("def far(event):\n    return event\n")
    monkeypatch.syspath_prepend(str(site))
    modules = {"shadowed_fns": "def near(event):\n    return event\n"}
    text = (
        "flow t()\nuse text\nuse python shadowed_fns as s\n"
        'lines = source text.lines("x")\nlines | map s.near | sink text.print\n'
    )
    c = check(tmp_path, text, modules=modules)
    assert c.diagnostics == ()
    assert c.ir is not None
    assert c.ir.uses[1].path == str(tmp_path / "shadowed_fns.py")


def test_module_bound_twice(tmp_path: Path) -> None:
    c = check(tmp_path, "flow t()\nuse text\nuse json as text\n" + TAIL)
    assert found(c) == [("E102", "3:1", "module `text` is already bound at 2:1")]


def test_unused_module_is_a_warning(tmp_path: Path) -> None:
    c = check(tmp_path, "flow t()\nuse text\nuse json\n" + TAIL)
    assert found(c, warnings=True) == [("W201", "3:1", "module `json` is never used")]
    assert c.ok and c.plan is not None


def test_module_printing_on_import_leaves_stdout_alone(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # `reflowc compile --emit plan` writes the plan on stdout; a module that prints
    # while it is imported must not corrupt it.
    text = 'flow t()\nuse text\nuse python chatty\nx = source text.lines("a")\n'
    text += "x | map chatty.one | sink text.print\n"
    chatty = 'print("loading chatty")\n\ndef one(event):\n    return event\n'
    c = check(tmp_path, text, modules={"chatty": chatty})
    assert c.errors == ()
    captured = capsys.readouterr()
    assert (captured.out, captured.err) == ("", "loading chatty\n")


def test_names_through_a_misspelt_use_stay_silent(tmp_path: Path) -> None:
    # `use txet` is the one mistake; `text.lines` and `text.print` follow from it.
    text = 'flow t()\nuse txet\nlines = source text.lines("a")\n'
    text += "lines | map str.lower | sink text.print\n"
    c = check(tmp_path, text)
    assert found(c, warnings=True) == [
        ("E201", "2:5", "no standard-library module `txet`")
    ]
    assert hints(c) == ["did you mean `text`?"]


def test_unknown_module_far_from_a_failed_use_is_reported(tmp_path: Path) -> None:
    text = 'flow t()\nuse txet\nuse text\nlines = source text.lines("a")\n'
    text += "lines | map zz.lower | sink text.print\n"
    c = check(tmp_path, text)
    assert codes(c) == ["E201", "E301"]

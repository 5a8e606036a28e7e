"""Tests of `reflowc` (`reflow_lang.cli`), called in-process as `main([...])`.

Each test asserts the exit status and what went to stdout and stderr. Flows that
need particular behaviour are written into `tmp_path`, next to their Python module.
"""

from __future__ import annotations

import io
import json
import logging
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from reflow_lang.stdlib import catalogue
from syrupy.assertion import SnapshotAssertion

from reflow_lang.cli import main
from reflow_lang.cli.output import Output, use_color
from reflow_lang.cli.running import exit_status, watching
from reflow_lang.frontend.api import compile_file
from reflow_lang.frontend.graph import to_tree
from reflow_lang.plan import Plan
from reflow_lang.runtime.cluster import ProcessFailure
from reflow_lang.runtime.statistics import JobResult, JobStatistics

ROOT = Path(__file__).resolve().parent.parent
WORDCOUNT = "examples/wordcount.flow"

# A flow over a small text file, to a file sink, with a Python module beside it.
NUMBERS_FLOW = """\
flow numbers(path: path = "numbers.txt", out: path = "out.txt")

use text
use python {module} as m

lines = source text.lines(path)
lines | map m.{function} | sink text.write_lines(out)
"""

NUMBERS_MODULE = '''\
"""Functions of the test flows."""


def double(line):
    return str(2 * int(line))


def explode(line):
    if line == "3":
        raise ValueError("no 3")
    return line
'''


@pytest.fixture(autouse=True)
def _at_root(monkeypatch: pytest.MonkeyPatch) -> None:
    # The examples name their data relative to the repository root, as a user would.
    monkeypatch.chdir(ROOT)
    monkeypatch.setenv("COLUMNS", "100")
    monkeypatch.delenv("NO_COLOR", raising=False)


def _numbers_flow(tmp_path: Path, function: str) -> Path:
    module = f"cli_numbers_{function}"
    (tmp_path / f"{module}.py").write_text(NUMBERS_MODULE)
    (tmp_path / "numbers.txt").write_text("1\n2\n3\n4\n")
    flow = tmp_path / "numbers.flow"
    flow.write_text(NUMBERS_FLOW.format(module=module, function=function))
    return flow


def _write(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return str(path)


def _params(tmp_path: Path) -> list[str]:
    return [
        "-p",
        f"path={tmp_path / 'numbers.txt'}",
        "-p",
        f"out={tmp_path / 'out.txt'}",
    ]


# --- the parser and help ------------------------------------------------------------


@pytest.mark.parametrize(
    "command",
    ["", "check", "compile", "graph", "run", "serve", "worker", "keys", "stdlib"],
)
def test_help_matches_snapshot(
    command: str, capsys: pytest.CaptureFixture[str], snapshot: SnapshotAssertion
) -> None:
    status = main([command, "--help"] if command else ["--help"])

    assert status == 0
    assert capsys.readouterr().out == snapshot


def test_main_without_a_command_is_a_usage_error(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main([]) == 2
    assert capsys.readouterr().err.endswith(
        "reflowc: error: the following arguments are required: COMMAND\n"
    )


def test_check_without_files_is_a_usage_error(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["check"]) == 2
    assert capsys.readouterr().err.endswith(
        "reflowc check: error: the following arguments are required: FILE\n"
    )


@pytest.mark.parametrize("bad", ["min_len", "=4", "min len=4", "9x=1"])
def test_malformed_param_is_a_usage_error(
    bad: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["check", WORDCOUNT, "-p", bad]) == 2
    assert capsys.readouterr().err.splitlines()[-1] == (
        "reflowc check: error: argument -p/--param: expected `NAME=VALUE` with NAME a "
        f"parameter name; got `{bad}`"
    )


def test_param_given_twice_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", WORDCOUNT, "-p", "min_len=3", "-p", "min_len=4"]) == 2
    assert capsys.readouterr().err.splitlines()[-1] == (
        "reflowc check: error: parameter `min_len` is given twice (`-p min_len=...`); "
        "give it once"
    )


def test_unknown_color_choice_is_a_usage_error(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["check", "--color", "sometimes", WORDCOUNT]) == 2
    assert "argument --color: invalid choice: 'sometimes'" in capsys.readouterr().err


# --- check ------------------------------------------------------------------------


def test_check_clean_example_prints_only_the_summary(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["check", WORDCOUNT]) == 0

    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == "0 errors, 0 warnings in 1 file\n"


def test_check_quiet_prints_nothing_when_clean(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["check", "-q", WORDCOUNT]) == 0
    assert capsys.readouterr() == ("", "")


def test_check_reports_every_file_and_counts_them(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    broken = _write(tmp_path, "broken.flow", "flow broken()\n\nx = nowhere | sink\n")

    assert main(["check", WORDCOUNT, broken]) == 1

    err = capsys.readouterr().err
    assert err.startswith(f"{broken}:3:")
    assert err.endswith("in 2 files\n")
    assert re.search(r"^[1-9]\d* errors?, \d+ warnings? in 2 files$", err, re.M)


def test_check_missing_file_is_a_diagnostic_not_a_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = str(tmp_path / "missing.flow")

    assert main(["check", missing]) == 1

    err = capsys.readouterr().err
    assert err.startswith(f"{missing}:1:1: error[E")
    assert "Traceback" not in err
    assert err.endswith("1 error, 0 warnings in 1 file\n")


def test_check_directory_is_a_diagnostic(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["check", str(tmp_path)]) == 1

    err = capsys.readouterr().err
    assert err.startswith(f"{tmp_path}:1:1: error[E")
    assert err.endswith("1 error, 0 warnings in 1 file\n")


def test_check_warnings_pass_unless_strict(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    flow = _write(
        tmp_path,
        "warn.flow",
        """\
        flow warn(unused: int = 1)

        use text

        lines = source text.lines("x.txt")
        lines | sink text.print
        """,
    )

    assert main(["check", flow]) == 0
    lenient = capsys.readouterr().err
    assert main(["check", "--strict", flow]) == 1
    strict = capsys.readouterr().err

    assert lenient == strict
    assert re.search(r"^.*warn\.flow:1:\d+: warning\[W\d+\]: ", lenient, re.M)
    assert lenient.endswith("0 errors, 1 warning in 1 file\n")


def test_check_json_goes_to_stdout_as_one_array(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = str(tmp_path / "missing.flow")

    assert main(["check", "--format", "json", WORDCOUNT, missing]) == 1

    captured = capsys.readouterr()
    assert captured.err == ""
    [diagnostic] = json.loads(captured.out)
    assert diagnostic["file"] == missing
    assert diagnostic["severity"] == "error"
    assert set(diagnostic) == {
        "code",
        "severity",
        "file",
        "line",
        "column",
        "end_line",
        "end_column",
        "message",
        "hint",
    }


def test_check_colour_on_request_only(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = str(tmp_path / "missing.flow")

    main(["check", missing])
    plain = capsys.readouterr().err
    main(["check", "--color", "always", missing])
    coloured = capsys.readouterr().err

    assert "\x1b[" not in plain
    assert "\x1b[1;31merror" in coloured


def test_check_applies_params_to_the_flow(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", WORDCOUNT, "-p", "min_len=6"]) == 0
    assert main(["check", WORDCOUNT, "-p", "min_len=six"]) == 1
    assert main(["check", WORDCOUNT, "-p", "no_such=1"]) == 1

    err = capsys.readouterr().err
    assert err.count("1 error, 0 warnings in 1 file\n") == 2


# --- compile ----------------------------------------------------------------------


def test_compile_plan_is_the_plan_as_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["compile", WORDCOUNT, "--emit", "plan"]) == 0

    out = capsys.readouterr().out
    assert Plan.from_json(out) == compile_file(WORDCOUNT).plan


def test_compile_with_errors_emits_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    broken = _write(tmp_path, "broken.flow", "flow broken()\n\nx = nowhere | sink\n")

    for emit in ("ast", "ir", "plan"):
        assert main(["compile", broken, "--emit", emit]) == 1
        captured = capsys.readouterr()
        assert captured.out == ""
        assert captured.err.startswith(f"{broken}:3:")


def test_compile_without_emit_is_a_usage_error(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["compile", WORDCOUNT]) == 2
    assert capsys.readouterr().err.endswith(
        "reflowc compile: error: the following arguments are required: --emit\n"
    )


def test_compile_library_has_an_ast_but_no_plan(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    library = _write(
        tmp_path, "lib.flow", "use text\n\ndef words(s) = s | flat_map text.words\n"
    )

    assert main(["compile", library, "--emit", "ast"]) == 0
    assert capsys.readouterr().out != ""
    assert main(["compile", library, "--emit", "plan"]) == 1
    assert capsys.readouterr() == (
        "",
        f"reflowc: error: {library} is a library (it has no `flow` header): "
        "no plan to emit\n",
    )


# --- graph ------------------------------------------------------------------------


def test_graph_off_a_terminal_is_the_plain_tree(
    capsys: pytest.CaptureFixture[str],
) -> None:
    plan = compile_file(WORDCOUNT).plan
    assert plan is not None

    assert main(["graph", WORDCOUNT]) == 0
    assert capsys.readouterr() == (to_tree(plan), "")


@pytest.mark.parametrize(
    ("form", "start"), [("mermaid", "%% flow"), ("dot", "digraph")]
)
def test_graph_formats(
    form: str, start: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["graph", WORDCOUNT, "--format", form]) == 0
    assert capsys.readouterr().out.startswith(start)


def test_graph_in_colour_keeps_the_tree_text(
    capsys: pytest.CaptureFixture[str],
) -> None:
    plan = compile_file(WORDCOUNT).plan
    assert plan is not None

    assert main(["graph", "--color", "always", WORDCOUNT]) == 0

    out = capsys.readouterr().out
    assert "\x1b[" in out
    plain = re.sub(r"\x1b\[[0-9;]*m", "", out)
    assert [line.rstrip() for line in plain.splitlines()] == to_tree(plan).splitlines()


# --- stdlib -----------------------------------------------------------------------


def test_stdlib_lists_every_function(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["stdlib"]) == 0

    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == len(catalogue())
    assert lines[0].split()[:2] == ["text.lines(path:", "str,"]
    assert re.fullmatch(
        r"text\.lines\(path: str, start: int = 0\) +source +Yields .*", lines[0]
    )


def test_stdlib_one_module(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["stdlib", "json"]) == 0

    lines = capsys.readouterr().out.splitlines()
    assert [line.split("(")[0] for line in lines] == ["json.read", "json.write"]


def test_stdlib_unknown_module_is_a_usage_error(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["stdlib", "csv"]) == 2
    assert capsys.readouterr().err.splitlines()[-1] == (
        "reflowc stdlib: error: no standard-library module `csv`; the modules are "
        "`text`, `json`"
    )


# --- run --------------------------------------------------------------------------


def test_run_writes_output_and_a_summary(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    flow = _numbers_flow(tmp_path, "double")

    assert main(["run", str(flow), *_params(tmp_path)]) == 0

    assert (tmp_path / "out.txt").read_text() == "2\n4\n6\n8\n"
    err = capsys.readouterr().err
    title, header, _, *rows = err.splitlines()
    assert re.fullmatch(r"flow numbers: finished in \d+\.\d\ds", title)
    assert header.split() == [
        "stage",
        "kind",
        "order",
        "in",
        "out",
        "mean/s",
        "queue",
        "held",
        "errors",
    ]
    assert [row.split()[:5] for row in rows] == [
        ["lines", "source", "total", "4", "4"],
        ["line7/map", "map", "total", "4", "4"],
        ["line7/sink", "sink", "total", "4", "4"],
    ]


def test_run_quiet_says_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    flow = _numbers_flow(tmp_path, "double")

    assert main(["run", "-q", str(flow), *_params(tmp_path)]) == 0
    assert capsys.readouterr() == ("", "")


def test_run_failure_names_stage_function_event_and_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    flow = _numbers_flow(tmp_path, "explode")

    assert main(["run", "-q", str(flow), *_params(tmp_path)]) == 1

    # The runtime may log the failure too; the command's own message is one line.
    err = capsys.readouterr().err
    [line] = [line for line in err.splitlines() if line.startswith("reflowc:")]
    assert re.fullmatch(
        r"reflowc: error: flow `numbers` failed: stage `\S+` failed: `m\.explode` "
        r"raised ValueError: no 3; event .+",
        line,
    )


def test_run_failure_traceback_only_with_debug(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    flow = _numbers_flow(tmp_path, "explode")

    assert main(["run", str(flow), *_params(tmp_path)]) == 1
    plain = capsys.readouterr().err
    assert main(["run", "--debug", str(flow), *_params(tmp_path)]) == 1
    debug = capsys.readouterr().err

    assert "Traceback" not in plain
    assert plain.endswith("(run with --debug for the Python traceback)\n")
    assert "Traceback (most recent call last):" in debug
    assert 'raise ValueError("no 3")' in debug


def test_run_with_errors_does_not_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    broken = _write(tmp_path, "broken.flow", "flow broken()\n\nx = nowhere | sink\n")

    assert main(["run", broken]) == 1
    assert capsys.readouterr().err.startswith(f"{broken}:3:")


INTERRUPTING_MODULE = """\
import os
import signal


def forever(path):
    # Sends the process a Ctrl-C after 100 events, then would go on forever.
    number = 0
    while True:
        if number == 100:
            os.kill(os.getpid(), signal.SIGINT)
        yield number
        number += 1
"""


def test_run_ctrl_c_drains_and_exits_130(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "cli_forever.py").write_text(INTERRUPTING_MODULE)
    flow = _write(
        tmp_path,
        "endless.flow",
        """\
        flow endless(out: path = "endless.txt")

        use text
        use python cli_forever as f

        numbers = source f.forever(out)
        numbers | sink text.write_lines(out)
        """,
    )
    out = tmp_path / "endless.txt"

    assert main(["run", flow, "-p", f"out={out}"]) == 130

    written = out.read_text().splitlines()
    assert len(written) >= 100
    assert written == [str(number) for number in range(len(written))]
    title = capsys.readouterr().err.splitlines()[0]
    assert re.fullmatch(r"flow endless: interrupted and drained in \S+", title)


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize(
    ("quiet", "tty", "view"),
    [(True, True, None), (False, False, "ProgressLines"), (False, True, "LiveView")],
)
def test_run_watches_with_live_view_on_a_terminal_else_progress_lines(
    quiet: bool, tty: bool, view: str | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("sys.stderr", _Terminal() if tty else io.StringIO())
    out = Output.open("never", quiet=quiet)

    with watching(out) as on_tick:
        owner = getattr(on_tick, "__self__", None)
        assert (None if owner is None else type(owner).__name__) == view


def test_run_live_view_prints_what_goes_to_stderr_above_its_table(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A worker's lines, which the supervisor of `--processes` writes on stderr.
    terminal = _Terminal()
    monkeypatch.setattr("sys.stderr", terminal)
    out = Output.open("never")

    with watching(out) as on_tick:
        assert on_tick is not None
        on_tick(JobStatistics("f", 1.0, ()))
        print("WARNING [worker f/m] x: a line", file=sys.stderr)
        on_tick(JobStatistics("f", 2.0, ()))

    drawn = terminal.getvalue()
    # On a line of its own, once the table is cleared (`ESC [2K`), not glued to it.
    assert "\x1b[2KWARNING [worker f/m] x: a line\n" in drawn
    assert sys.stderr is terminal


def _result(*, ok: bool, interrupted: bool = False, aborted: bool = False) -> JobResult:
    return JobResult(ok, interrupted, aborted, None, JobStatistics("f", 1.0, ()))


@pytest.mark.parametrize(
    ("result", "status"),
    [
        (_result(ok=True), 0),
        (_result(ok=True, interrupted=True), 130),
        (_result(ok=False, interrupted=True, aborted=True), 130),
        (_result(ok=False), 1),
    ],
)
def test_exit_status_of_a_job(
    result: JobResult, status: int, capsys: pytest.CaptureFixture[str]
) -> None:
    out = Output.open("never")
    assert exit_status(result, out, debug=False) == status


@pytest.mark.parametrize(
    ("traceback", "debug", "said"),
    [
        ("Traceback (most recent call last):\nValueError: no\n", True, "{tb}"),
        ("Traceback (most recent call last):\nValueError: no\n", False, "{hint}"),
        (None, True, ""),
        (None, False, ""),
    ],
)
def test_exit_status_shows_a_workers_traceback_with_debug(
    traceback: str | None,
    debug: bool,
    said: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    error = ProcessFailure("stage `m` failed", traceback)
    result = JobResult(False, False, False, error, JobStatistics("f", 1.0, ()))

    assert exit_status(result, Output.open("never"), debug=debug) == 1

    hint = "(run with --debug for the Python traceback)\n"
    assert capsys.readouterr().err == (
        "reflowc: error: flow `f` failed: stage `m` failed\n"
        + said.format(tb=traceback, hint=hint)
    )


# --- colour, logging and internal errors --------------------------------------------


class _Stream:
    def __init__(self, tty: bool) -> None:
        self._tty = tty

    def isatty(self) -> bool:
        return self._tty


@pytest.mark.parametrize(
    ("choice", "tty", "environ", "expected"),
    [
        ("auto", True, {}, True),
        ("auto", False, {}, False),
        ("auto", True, {"NO_COLOR": "1"}, False),
        ("auto", True, {"NO_COLOR": ""}, True),
        ("always", False, {"NO_COLOR": "1"}, True),
        ("never", True, {}, False),
    ],
)
def test_use_color(
    choice: str, tty: bool, environ: dict[str, str], expected: bool
) -> None:
    assert use_color(choice, _Stream(tty), environ) is expected  # type: ignore[arg-type]


def test_internal_error_is_one_line_unless_verbose(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def broken(path: str, params: object = None) -> None:
        msg = "the front end broke"
        raise RuntimeError(msg)

    monkeypatch.setattr("reflow_lang.cli.commands.compile_file", broken)

    assert main(["check", WORDCOUNT]) == 1
    assert capsys.readouterr().err == (
        "reflowc: error: internal error: the front end broke\n"
        "(run with -v for the traceback)\n"
    )
    assert main(["check", "-v", WORDCOUNT]) == 1
    err = capsys.readouterr().err
    assert err.startswith("reflowc: error: internal error: the front end broke\n")
    assert "Traceback (most recent call last):" in err


def test_logging_is_set_up_for_the_command_and_removed_after(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    root = logging.getLogger()
    before = (list(root.handlers), root.level)

    def logging_check(path: str, params: object = None) -> object:
        logging.getLogger("reflow_lang.test").info("checking %s", path)
        return compile_file(path)

    monkeypatch.setattr("reflow_lang.cli.commands.compile_file", logging_check)

    assert main(["check", "-q", WORDCOUNT]) == 0
    assert capsys.readouterr().err == ""
    assert main(["check", "-v", WORDCOUNT]) == 0
    assert capsys.readouterr().err.startswith(
        f"INFO reflow_lang.test: checking {WORDCOUNT}\n"
    )
    assert (list(root.handlers), root.level) == before


def test_run_into_a_closed_pipe_ends_quietly_like_unix_tools(tmp_path: Path) -> None:
    # The flow writes about 130 kB, twice a pipe's buffer, so a write after the reader
    # has gone is certain whatever the scheduling.
    flow = tmp_path / "every_word.flow"
    flow.write_text(
        "flow every_word(path: path)\n"
        "use text\n"
        'source text.lines(path) | flat_map text.words | sink text.write_lines("-")\n'
    )
    text = Path(__file__).parent.parent / "examples" / "data" / "as_you_like_it.txt"
    command = [sys.executable, "-m", "reflow_lang.cli", "run", str(flow)]

    with subprocess.Popen(
        [*command, "-p", f"path={text}"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    ) as process:
        assert process.stdout is not None and process.stderr is not None
        first = process.stdout.readline()
        process.stdout.close()
        errors = process.stderr.read()

    assert first == b"AS\n"
    assert process.returncode == 141
    assert errors == b""

"""The supervisor's pieces without processes, and its stall warning with them."""

from __future__ import annotations

import asyncio
import logging
import shutil
import sys
import textwrap
import threading
from asyncio import unix_events
from pathlib import Path
from typing import Any

import pytest

from reflow_lang.cli import main
from reflow_lang.frontend.api import compile_file
from reflow_lang.plan import Plan
from reflow_lang.runtime.cluster import ProcessFailure, Supervisor
from reflow_lang.runtime.cluster.roles import (
    Report,
    crash_line,
    failure_line,
    parse_crash,
    parse_failure,
    parse_statistics,
)
from reflow_lang.runtime.cluster.supervisor import stall_message
from reflow_lang.runtime.queue import QueueStatistics

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]

# Seconds any one job here may take before the test fails.
DEADLINE = 60.0


def _queue(
    name: str, depth: int, tail: int, *committed: tuple[str, int]
) -> QueueStatistics:
    return QueueStatistics(name, 4, depth, 1, committed, tail)


def test_stall_message_names_full_queues_and_consumers_behind() -> None:
    queues = {
        "a": _queue("a", 4, 10, ("m", 6)),
        "b": _queue("b", 1, 3, ("s", 3), ("t", 2)),
    }

    message = stall_message("f", 31.2, queues, ["m", "t"])

    assert message == (
        "flow `f` has made no progress for 31.2s; full queues: `a` (4/4); consumers "
        "behind: `m` on `a` (at 6 of 10), `t` on `b` (at 2 of 3); workers still "
        "running: `m`, `t`"
    )


def test_failure_line_round_trips_and_other_lines_are_not_failures() -> None:
    line = failure_line("stage `m` failed: `f.g` raised ValueError: {no}", "Tr\nace")

    assert parse_failure(line) == Report(
        "stage `m` failed: `f.g` raised ValueError: {no}", "Tr\nace"
    )
    assert parse_failure(failure_line("no traceback")) == Report("no traceback")
    assert parse_failure('{"endpoint": "tcp://127.0.0.1:1"}') is None
    assert parse_failure("{not json") is None
    assert parse_failure("WARNING x: y") is None
    assert parse_crash(line) is None


def test_crash_line_says_what_was_raised_with_its_traceback() -> None:
    try:
        key = "k"
        raise KeyError(key)
    except KeyError as exc:
        line = crash_line(exc)

    crash = parse_crash(line)

    assert crash is not None
    assert crash.message == "KeyError: 'k'"
    assert crash.traceback is not None
    assert crash.traceback.startswith("Traceback (most recent call last):\n")
    assert crash.traceback.endswith("    raise KeyError(key)\nKeyError: 'k'\n")
    assert parse_failure(line) is None


def test_statistics_line_is_read_back() -> None:
    data = {"queues": [["q", 8, 3, 2, [["m", 2]], 5, True, 1, [["m", 1]]]]}

    assert parse_statistics(data) == {
        "q": QueueStatistics("q", 8, 3, 2, (("m", 2),), 5, True, 1, (("m", 1),))
    }


async def test_supervisor_warns_of_a_stall_and_keeps_waiting(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    shutil.copy(HERE / "procfns.py", tmp_path / "procfns.py")
    flow = tmp_path / "stall.flow"
    flow.write_text(
        textwrap.dedent(
            f"""\
            flow stall(out: path = "{tmp_path / "out.txt"}")

            use text
            use python procfns as f

            numbers = source f.numbers(5000)
            numbers
                | map f.held_until_released("{tmp_path}") [batch = 16]
                | sink text.write_lines(out)
            """
        )
    )
    plan = compile_file(str(flow), {}).plan
    assert plan is not None
    caplog.set_level(logging.WARNING, logger="reflow_lang.runtime.cluster")
    supervisor = Supervisor(plan, stall_after=0.3)

    job = asyncio.create_task(supervisor.run())
    while not any("no progress" in r.getMessage() for r in caplog.records):
        assert not job.done(), job.result()
        await asyncio.sleep(0.05)
    (tmp_path / "release").write_text("")
    result = await asyncio.wait_for(job, 60)

    assert result.ok, result.error
    warning = next(
        r.getMessage() for r in caplog.records if "no progress" in r.getMessage()
    )
    assert warning.startswith("flow `stall` has made no progress for ")
    assert warning.endswith(
        "; full queues: `numbers` (2048/2048); consumers behind: `line7/map` on "
        "`numbers` (at 0 of 2048); workers still running: `numbers`, `line7/map`, "
        "`line7/sink`"
    )
    assert (tmp_path / "out.txt").read_text().split() == [str(n) for n in range(5000)]


@pytest.mark.parametrize(
    ("stage", "hint"),
    [
        ("no", "its stages: `l`, `line4/sink`"),
        ("line4/snk", "did you mean `line4/sink`?"),
    ],
)
def test_worker_with_an_unknown_stage_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], stage: str, hint: str
) -> None:
    flow = tmp_path / "tiny.flow"
    flow.write_text(
        'flow tiny\nuse text\nl = source text.lines("x")\nl | sink text.print\n'
    )

    status = main(
        ["worker", str(flow), "--connect", "tcp://127.0.0.1:1", "--stage", stage]
    )

    assert status == 2
    assert capsys.readouterr().err.splitlines()[-1] == (
        f"reflowc worker: error: flow `tiny` has no stage `{stage}`; {hint}"
    )


def _plan(tmp_path: Path, body: str) -> Plan:
    shutil.copy(HERE / "procfns.py", tmp_path / "procfns.py")
    flow = tmp_path / "procs.flow"
    header = f"""\
        flow procs(out: path = "{tmp_path / "out.txt"}")

        use text
        use python procfns as f
        """
    flow.write_text(textwrap.dedent(header) + textwrap.dedent(body))
    plan = compile_file(str(flow), {}).plan
    assert plan is not None
    return plan


def _state(pid: int) -> str:
    # A process's state as `ps` shows it (`Z`: ended, not yet reaped); `-` if gone.
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return "-"
    return stat.rsplit(")", 1)[1].split()[0]


async def test_supervisor_double_ctrl_c_leaves_the_reaping_to_asyncio(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    # asyncio's watcher reaps each child from a thread of its own; here it reaps
    # only once both Ctrl-Cs were handled: the schedule in which a supervisor that
    # reaped (`Popen.poll`, under `send_signal` and `kill`) made asyncio warn of an
    # "Unknown child process pid" and report it ended with status 255.
    reap = threading.Event()
    waitpid = unix_events.ThreadedChildWatcher._do_waitpid

    def late(self: Any, *args: Any) -> None:
        reap.wait(DEADLINE)
        waitpid(self, *args)

    monkeypatch.setattr(unix_events.ThreadedChildWatcher, "_do_waitpid", late)
    caplog.set_level(logging.WARNING, logger="asyncio")
    plan = _plan(
        tmp_path,
        """\
        numbers = source f.numbers(10)
        numbers | sink text.write_lines(out)
        """,
    )
    supervisor = Supervisor(plan)

    job = asyncio.create_task(supervisor.run())
    source = supervisor.units[0]
    while source.process is None or _state(source.process.pid) != "Z":
        assert not job.done()
        await asyncio.sleep(0.02)  # until the source's worker has ended, unreaped
    supervisor.stop()
    supervisor.abort()
    reap.set()
    result = await asyncio.wait_for(job, DEADLINE)

    assert [r.getMessage() for r in caplog.records if r.name == "asyncio"] == []
    assert (result.aborted, result.error) == (True, None)
    assert source.process.returncode == 0
    assert [unit.process.returncode for unit in supervisor.units if unit.process]
    assert all(_state(u.process.pid) == "-" for u in supervisor.units if u.process)


async def test_supervisor_ctrl_c_while_a_source_starts_stops_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    plan = _plan(
        tmp_path,
        f"""\
        numbers = source f.slow_numbers("{tmp_path}")
        numbers | sink text.write_lines(out)
        """,
    )
    supervisor = Supervisor(plan)
    spawn = Supervisor._spawn

    async def ctrl_c_meanwhile(
        self: Supervisor, role: str, *args: str, **options: Any
    ) -> asyncio.subprocess.Process:
        process = await spawn(self, role, *args, **options)
        if "numbers" in args:
            self.stop()  # before `_start` knows the source's new process
        return process

    monkeypatch.setattr(Supervisor, "_spawn", ctrl_c_meanwhile)

    result = await asyncio.wait_for(supervisor.run(), DEADLINE)

    assert (result.interrupted, result.aborted, result.error) == (True, False, None)
    assert not (tmp_path / "release").exists()  # it ended because it was stopped


CRASHING = """\
import sys

import reflow_lang.runtime.cluster.__main__ as entry


async def crash(*args, **options):
    raise RuntimeError("boom")


# Run as `python -m reflow_lang.runtime.cluster ROLE ...`: the map's worker crashes.
argv = sys.argv[3:]
if "line6/map" in argv:
    entry.run_worker = crash
sys.exit(entry.main(argv))
"""


async def test_supervisor_keeps_a_crashed_workers_traceback(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "crashing.py").write_text(CRASHING)
    python = tmp_path / "python"
    python.write_text(
        f'#!/bin/sh\nPYTHONPATH="{ROOT}" exec "{sys.executable}" '
        f'"{tmp_path / "crashing.py"}" "$@"\n'
    )
    python.chmod(0o755)
    plan = _plan(
        tmp_path,
        """\
        numbers = source f.numbers(10)
        numbers | map f.no_three | sink text.write_lines(out)
        """,
    )
    caplog.set_level(logging.WARNING, logger="reflow_lang.runtime.cluster")

    result = await Supervisor(plan, restarts=1, python=str(python), debug=True).run()

    [warning] = [
        r.getMessage() for r in caplog.records if "restarting" in r.getMessage()
    ]
    head, _, traceback = warning.partition("\n")
    assert head == (
        "worker `line6/map` raised RuntimeError: boom (exit status 1); restarting it "
        "(1 of 1)"
    )
    assert traceback.startswith("Traceback (most recent call last):\n")
    assert traceback.endswith('    raise RuntimeError("boom")\nRuntimeError: boom')
    assert isinstance(result.error, ProcessFailure)
    assert str(result.error) == (
        "the worker of stage `line6/map` ended (exit status 1) after 1 restart, the "
        "most allowed (--restarts 1); its last words on stderr: RuntimeError: boom"
    )
    assert result.error.traceback == traceback + "\n"


async def test_supervisor_without_its_interpreter_fails_with_a_message(
    tmp_path: Path,
) -> None:
    plan = _plan(
        tmp_path,
        """\
        numbers = source f.numbers(10)
        numbers | sink text.write_lines(out)
        """,
    )
    python = tmp_path / "no-python"

    result = await Supervisor(plan, python=str(python)).run()

    assert isinstance(result.error, ProcessFailure)
    assert str(result.error) == (
        f"cannot start a process of flow `procs`: [Errno 2] No such file or "
        f"directory: '{python}'"
    )
    assert not result.ok

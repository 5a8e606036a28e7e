"""The supervisor's pieces without processes, and its stall warning with them."""

from __future__ import annotations

import asyncio
import logging
import shutil
import textwrap
from pathlib import Path

import pytest

from reflow_lang.cli import main
from reflow_lang.frontend.api import compile_file
from reflow_lang.runtime.cluster import Supervisor
from reflow_lang.runtime.cluster.roles import (
    failure_line,
    parse_failure,
    parse_statistics,
)
from reflow_lang.runtime.cluster.supervisor import stall_message
from reflow_lang.runtime.queue import QueueStatistics

HERE = Path(__file__).resolve().parent


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
    line = failure_line("stage `m` failed: `f.g` raised ValueError: {no}")

    assert parse_failure(line) == "stage `m` failed: `f.g` raised ValueError: {no}"
    assert parse_failure('{"endpoint": "tcp://127.0.0.1:1"}') is None
    assert parse_failure("{not json") is None
    assert parse_failure("WARNING x: y") is None


def test_statistics_line_is_read_back() -> None:
    data = {"queues": [["q", 8, 3, 2, [["m", 2]], 5, True]]}

    assert parse_statistics(data) == {
        "q": QueueStatistics("q", 8, 3, 2, (("m", 2),), 5, ended=True)
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

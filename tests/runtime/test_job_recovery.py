"""Recovery at the level of a `Job`, as a worker process runs it (`recover=True`).

A job dies when a user function raises `Died` (a `BaseException`, which no error
policy catches and which escapes `Job.run` as a killed process would vanish); a new
job with `recover=True` on the same queues then attaches, restores and resumes,
the way a restarted worker process does.

These run in one mode: they hand `Job` this process's queues (`MemoryQueue`s, or a
`QueueServer` on them) and kill the job in this process, to restart it on the same
queues. In process mode, worker processes that crash or are killed and are
restarted by the supervisor are `tests/cluster/test_processes.py` and
`tests/test_faults.py`.
"""

from __future__ import annotations

import asyncio
import textwrap
from pathlib import Path
from typing import Any

import pytest

from reflow_lang.frontend.api import compile_file
from reflow_lang.plan import Plan
from reflow_lang.runtime.job import Job, memory_queues
from reflow_lang.runtime.transport import Connection, QueueServer

FUNCTIONS = '''
"""Functions that can make the job die once, at the event `die_at.txt` names."""

import os

DIE_AT = os.path.join(os.path.dirname(__file__), "die_at.txt")


class Died(BaseException):
    """The process dies here."""


def checked(event):
    if os.path.exists(DIE_AT) and _read(DIE_AT) == event:
        os.remove(DIE_AT)  # a restarted process does not die again here
        raise Died(event)
    return event


def _read(path):
    with open(path) as file:
        return file.read()


def side(event):
    return event.split(",")[0]
'''


def _compile(directory: Path, flow: str, lines: list[str]) -> tuple[Plan, Path]:
    (directory / "dying.py").write_text(FUNCTIONS, encoding="utf-8")
    (directory / "in.txt").write_text("".join(f"{n}\n" for n in lines), "utf-8")
    path = directory / "job.flow"
    path.write_text(textwrap.dedent(flow), encoding="utf-8")
    out = directory / "out.txt"
    compiled = compile_file(
        str(path), {"path": str(directory / "in.txt"), "out": str(out)}
    )
    assert compiled.plan is not None, compiled.diagnostics
    return compiled.plan, out


async def _run_dying(plan: Plan, directory: Path, die_at: int) -> dict[str, Any]:
    (directory / "die_at.txt").write_text(str(die_at), encoding="utf-8")
    queues = memory_queues(plan)

    with pytest.raises(BaseException, match=str(die_at)) as died:
        await Job(plan, queues=queues, recover=True).run()

    assert type(died.value).__name__ == "Died"
    return dict(queues)


SIMPLE = """
flow simple(path: path, out: path) [delivery = exactly_once]
use text
use python dying
source text.lines(path) | map dying.checked [batch = 4] | sink text.write_lines(out)
"""


async def test_job_recovery_a_restarted_job_writes_every_event_once(
    tmp_path: Path,
) -> None:
    lines = [str(n) for n in range(100)]
    plan, out = _compile(tmp_path, SIMPLE, lines)
    queues = await _run_dying(plan, tmp_path, die_at=57)

    result = await Job(plan, queues=queues, recover=True).run()

    assert result.ok, result.error
    assert out.read_text(encoding="utf-8").splitlines() == lines


async def test_job_recovery_a_job_that_had_ended_runs_nothing(tmp_path: Path) -> None:
    lines = [str(n) for n in range(20)]
    plan, out = _compile(tmp_path, SIMPLE, lines)
    queues = memory_queues(plan)
    assert (await Job(plan, queues=queues, recover=True).run()).ok

    # A regression here hangs (workers wait for input that never comes): bounded.
    result = await asyncio.wait_for(Job(plan, queues=queues, recover=True).run(), 60)

    assert result.ok, result.error
    assert out.read_text(encoding="utf-8").splitlines() == lines


JOINED = """
flow joined(path: path, out: path) [delivery = exactly_once]
use text
use python dying
left = source text.lines(path) | map dying.checked [batch = 4]
right = source text.lines(path)
join left by dying.side, right by dying.side | sink text.write_lines(out)
"""


async def test_job_recovery_a_restarted_join_writes_every_pair_once(
    tmp_path: Path,
) -> None:
    lines = [str(n) for n in range(100)]
    plan, out = _compile(tmp_path, JOINED, lines)
    queues = await _run_dying(plan, tmp_path, die_at=57)

    result = await Job(plan, queues=queues, recover=True).run()

    assert result.ok, result.error
    written = out.read_text(encoding="utf-8").splitlines()
    assert sorted(written) == sorted(str((line, line)) for line in lines)


async def test_job_recovery_over_the_wire_a_job_that_had_ended_runs_nothing(
    tmp_path: Path,
) -> None:
    lines = [str(n) for n in range(20)]
    plan, out = _compile(tmp_path, SIMPLE, lines)
    server = QueueServer(memory_queues(plan), "tcp://127.0.0.1:0")
    await server.start()
    try:
        for _ in range(2):  # the second time, as workers restarted after the end
            async with Connection(server.endpoint, timeout=5.0) as connection:
                queues = {q.name: connection.queue(q.name) for q in plan.queues}
                job = Job(plan, queues=queues, recover=True)
                result = await asyncio.wait_for(job.run(), 60)
                assert result.ok, result.error
    finally:
        await server.stop()

    assert out.read_text(encoding="utf-8").splitlines() == lines

"""Statistics show the order each stage keeps and what it holds back to keep it.

The orders in a job's result are checked in both modes (the `mode` fixture). The
other tests stay local: they read a running `Job`'s statistics while a gate, an
`asyncio.Event` of this process's loop, holds an event back, and wait on its sink's
`OUT` list, counted in turns of that loop; in process mode the stage runs in
another process and reports no `held` (the supervisor's statistics give 0).
"""

from __future__ import annotations

import asyncio

from reflow_lang.frontend.api import compile_source
from reflow_lang.plan import Plan
from reflow_lang.runtime import Job, StageStatistics

from .helpers import FLOW, fns, run

HEADER = "flow order_test()\nuse python orderfns as f\nxs = source f.events()\n"


def _plan(body: str) -> Plan:
    compiled = compile_source(HEADER + body, FLOW)
    assert compiled.plan is not None, compiled.diagnostics
    return compiled.plan


def _stage(job: Job, kind: str) -> StageStatistics:
    (stage,) = [s for s in job.statistics().stages if s.kind == kind]
    return stage


async def _until(condition: object, turns: int = 10_000) -> None:
    # Counted turns of the loop, never wall-clock time: everything here runs on it.
    for _ in range(turns):
        if callable(condition) and condition():
            return
        await asyncio.sleep(0)
    msg = "the condition never came true"
    raise AssertionError(msg)


def _ended() -> int:
    return sum(1 for kind, _ in fns.LOG if kind == "end")


def _started() -> int:
    return sum(1 for kind, _ in fns.LOG if kind == "start")


async def test_a_slow_event_holds_back_a_bounded_reorder_buffer() -> None:
    fns.configure(range(200))
    fns.GATE = asyncio.Event()
    job = Job(_plan("xs | map f.gated [workers = 4, batch = 1] | sink f.collect\n"))
    running = asyncio.create_task(job.run())
    try:
        await _until(lambda: _ended() == 3)
        stage = _stage(job, "map")
        assert (stage.order, stage.workers, stage.held) == ("total", 4, 3)

        # However long event 0 takes, the stage takes no more than its workers.
        for _ in range(500):
            await asyncio.sleep(0)
        assert _started() == 4
        assert _stage(job, "map").held == 3
    finally:
        fns.GATE.set()
    result = await running
    assert result.ok
    assert _stage(job, "map").held == 0
    assert fns.OUT == list(range(200))


def test_statistics_name_each_stages_order(mode: str) -> None:
    fns.configure([(n % 3, n) for n in range(10)], parts={})
    result, _ = run(
        "xs = source f.events()\n"
        "xs | map f.work [workers = 2, order = keyed(f.key_of)] | sink f.collect\n"
        "xs | flat_map f.explode | map f.work [workers = 3, order = partial]"
        " | rejoin f.gather | sink f.collect\n",
        mode,
    )
    orders = {(s.kind, s.order) for s in result.statistics.stages}
    assert {
        ("map", "keyed(f.key_of)"),
        ("map", "partial"),
        ("rejoin", "total"),
    } <= orders


def test_statistics_count_events_not_the_traces_of_parents_without_parts(
    mode: str,
) -> None:
    # Parents with no parts leave a trace between the split and the rejoin, so
    # that the rejoin counts them; a trace is no event, in either mode.
    fns.configure(range(4), parts={})
    result, _ = run(
        "xs = source f.events()\n"
        "xs | flat_map f.explode [batch = 1] | rejoin f.gather | sink f.collect\n",
        mode,
    )

    counts = {s.kind: (s.events_in, s.events_out) for s in result.statistics.stages}
    assert counts["flat_map"] == (4, 0)
    assert counts["rejoin"] == (0, 4)


async def test_keyed_order_lets_other_keys_pass_a_waiting_one() -> None:
    events = [(0, 0)] + [(1, n) for n in range(1, 30)] + [(0, 30)]
    fns.configure(events)
    fns.GATE = asyncio.Event()
    job = Job(
        _plan(
            "xs | map f.gated_key [workers = 2, batch = 1, order = keyed(f.key_of)]"
            " | sink f.collect\n"
        )
    )
    running = asyncio.create_task(job.run())
    try:
        await _until(lambda: len(fns.OUT) == 29)
        assert fns.OUT == events[1:30]  # key 1 went on while key 0 waited
    finally:
        fns.GATE.set()
    assert (await running).ok
    assert fns.OUT[-2:] == [(0, 0), (0, 30)]

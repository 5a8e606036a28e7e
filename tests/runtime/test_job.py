"""Whole jobs: clean ends, stop and abort, bounded memory, statistics, the example.

The tests that run a job run it in both modes of the `mode` fixture (in this
process, and as worker processes around a queue server) with the same assertions.
These stay local, being about this process's objects:

- stop and abort through `Job.stop` and `Job.abort` (a sink calls them on the `Job`
  object) and Ctrl-C through the `run` helper: in process mode, Ctrl-C once
  (draining, leaving no process behind) and twice (killing at once) are tested
  in `tests/cluster/test_processes.py` and `tests/cluster/test_supervisor.py`;
- the memory bound, which a sink measures on the `Job`'s in-memory queues as it
  runs (in process mode the queues live in the queue server);
- `Job.statistics` unit-tested, and the `run` helper of `reflow_lang.runtime`;
- end-of-source never overtaking data, as a property over many plans: each
  example costs a job, so the property runs locally, and its corner cases run in
  both modes (`test_end_of_source_never_overtakes_data_in_corner_cases`).
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import signal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reflow_lang.loader import load_module
from reflow_lang.plan import FunctionRef, Key, Plan, Queue, Task
from reflow_lang.runtime import Job, StageStatistics, run
from reflow_lang.testing import collected, collector

from .plans import FNS, chain, fn, run_in, task

ROOT = Path(__file__).resolve().parents[2]


def fns() -> Any:
    return load_module("reflow_runtime_fns", FNS)


def numbers(count: int, **options: Any) -> Task:
    return task("src", "source", fn("numbers", count), rewindable=True, **options)


def with_sink(plan: Plan, function: FunctionRef, **options: Any) -> Plan:
    sink = dataclasses.replace(plan.tasks[-1], function=function, **options)
    return dataclasses.replace(plan, tasks=(*plan.tasks[:-1], sink))


async def test_only_event_filtered_out_ends_ok(mode: str) -> None:
    plan, key = chain(numbers(1), task("f", "filter", fn("never")))

    result = await run_in(mode, plan)

    assert result.ok
    assert collected(key) == ([], True)


async def test_empty_source_ends_ok(mode: str) -> None:
    plan, key = chain(numbers(0), task("m", "map", fn("double")))

    result = await run_in(mode, plan)

    assert result.ok and collected(key) == ([], True)


async def end_of_source_check(
    mode: str, count: int, capacity: int, batch: int, yields: int, workers: int
) -> None:
    """A chain of every stateless kind, ending in a sink that marks end-of-source
    behind the events: the marker comes last, after every event."""
    name = f"eos-{count}-{capacity}-{batch}-{yields}-{workers}"
    fns().forget(name)
    plan, _ = chain(
        numbers(count, batch=batch),
        task("a", "map", fn("yielding_add", yields), batch=batch, workers=workers),
        task("f", "filter", fn("is_even"), batch=batch),
        task("fm", "flat_map", fn("repeat_n"), batch=batch),
        capacity=capacity,
    )
    plan = with_sink(plan, fn("marking_sink", name), batch=batch)

    result = await run_in(mode, plan)

    expected = [n for n in range(count) if n % 2 == 0 for _ in range(n)]
    assert result.ok
    assert fns().noted(name) == [*expected, "<end>"]


@settings(max_examples=30, deadline=None)
@given(
    count=st.integers(0, 40),
    capacity=st.integers(1, 5),
    batch=st.integers(1, 6),
    yields=st.integers(0, 4),
    workers=st.integers(1, 3),
)
def test_end_of_source_never_overtakes_data(
    count: int, capacity: int, batch: int, yields: int, workers: int
) -> None:
    asyncio.run(end_of_source_check("local", count, capacity, batch, yields, workers))


@pytest.mark.parametrize(
    ("count", "capacity", "batch", "yields", "workers"),
    [
        (0, 1, 1, 0, 1),  # nothing but end-of-source
        (40, 1, 1, 4, 3),  # the smallest queues and batches, parallel workers
        (40, 5, 6, 2, 2),  # batches that end mid-split, a partial last batch
    ],
)
async def test_end_of_source_never_overtakes_data_in_corner_cases(
    mode: str, count: int, capacity: int, batch: int, yields: int, workers: int
) -> None:
    await end_of_source_check(mode, count, capacity, batch, yields, workers)


async def test_stop_drains_and_ends_cleanly() -> None:
    plan, _ = chain(
        task("src", "source", fn("endless")), task("m", "map", fn("double"))
    )
    plan = with_sink(plan, fn("stopping_sink", "stop", 500))
    job = Job(plan)
    fns().STATE["job"] = job

    result = await job.run()

    stages = {s.name: s for s in result.statistics.stages}
    assert result.ok and result.interrupted and not result.aborted
    kept = fns().STATE["stop"]
    assert kept == [n * 2 for n in range(len(kept))]
    assert len(kept) == stages["src"].events_out == stages["out"].events_out


async def test_abort_cancels_now() -> None:
    plan, _ = chain(task("src", "source", fn("endless")))
    plan = with_sink(plan, fn("aborting_sink", "abort"))
    job = Job(plan)
    fns().STATE["job"] = job

    result = await job.run()

    assert (result.ok, result.interrupted, result.aborted) == (False, True, True)
    assert result.error is None


async def test_slow_sink_keeps_memory_bounded() -> None:
    batch, capacity = 8, 16
    plan, _ = chain(
        numbers(3000, batch=batch),
        task("m", "map", fn("double"), batch=batch),
        task("f", "filter", fn("is_even"), batch=batch, workers=2),
        capacity=capacity,
    )
    plan = with_sink(plan, fn("watching_sink", "memory", 20), batch=batch)
    job = Job(plan)
    fns().STATE["job"] = job

    result = await job.run()

    workers = 3 + 1  # source, map, filter (two batches in flight), sink
    bound = capacity * len(plan.queues) + batch * (workers + 1)
    assert result.ok
    assert len(fns().STATE["memory"]) == 3000
    assert 0 < fns().STATE["memory/max"] <= bound


def test_statistics_are_immutable() -> None:
    plan, _ = chain(numbers(2))
    statistics = Job(plan).statistics()

    with pytest.raises(dataclasses.FrozenInstanceError):
        statistics.stages[0].events_in = 5  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        statistics.flow = "other"  # type: ignore[misc]
    assert isinstance(statistics.stages[0], StageStatistics)


async def test_statistics_report_queues_and_fusion(mode: str) -> None:
    plan, _ = chain(
        numbers(10), task("m", "map", fn("double")), task("f", "filter", fn("is_even"))
    )

    result = await run_in(mode, plan)

    stages = {s.name: s for s in result.statistics.stages}
    assert (stages["src"].queue_depth, stages["src"].queue_capacity) == (0, 8)
    assert (stages["m"].queue_depth, stages["m"].queue_capacity) == (None, None)
    assert (stages["f"].events_in, stages["f"].events_out) == (10, 10)
    assert (stages["out"].events_in, stages["out"].events_out) == (10, 10)


def test_run_helper_runs_in_new_loop_with_ticks() -> None:
    plan, key = chain(numbers(5), task("m", "map", fn("double")))
    ticks: list[Any] = []

    result = run(plan, on_tick=ticks.append, tick=0.01, handle_signals=False)

    assert result.ok
    assert collected(key) == ([0, 2, 4, 6, 8], True)
    assert ticks and ticks[0].flow == "test"


def test_run_helper_refuses_unsupported_plan_in_result() -> None:
    plan, _ = chain(numbers(1))
    broken = dataclasses.replace(
        plan,
        tasks=(dataclasses.replace(plan.tasks[0], kind="teleport"), *plan.tasks[1:]),
    )

    result = run(broken, handle_signals=False)

    assert not result.ok
    assert str(result.error) == "stage `src` at test:src has an unknown kind `teleport`"


async def test_wordcount_example_end_to_end(mode: str, tmp_path: Path) -> None:
    from reflow_lang.frontend.api import compile_file

    out = tmp_path / "counts.tsv"
    cwd = os.getcwd()
    os.chdir(ROOT)
    try:
        compilation = compile_file("examples/wordcount.flow", {"out": str(out)})
        assert compilation.plan is not None, compilation.diagnostics
        result = await run_in(mode, compilation.plan)
    finally:
        os.chdir(cwd)

    assert result.ok, result.error
    rows = [line.split("\t") for line in out.read_text().splitlines()]
    words = [word for word, _ in rows]
    assert words == sorted(words)
    assert all(len(word) >= 4 and word == word.lower() for word in words)
    text = (ROOT / "examples/data/as_you_like_it.txt").read_text().lower()
    assert dict(rows)["rosalind"] == str(expected_count(text, "rosalind"))


def expected_count(text: str, word: str) -> int:
    from reflow_lang.stdlib.text import words

    return sum(line_words.count(word) for line_words in map(words, text.splitlines()))


async def test_count_by_field_key(mode: str) -> None:
    plan, key = chain(
        task("src", "source", fn("records")),
        task("c", "count", by=Key("field", field="user")),
    )

    result = await run_in(mode, plan)

    assert result.ok and collected(key) == ([("ann", 2), ("bob", 1)], True)


async def test_merge_of_fan_out_diamond_ends(mode: str) -> None:
    sink, key = collector("diamond")
    plan = Plan(
        "diamond",
        "d.flow",
        "at_least_once",
        (),
        (
            task("src", "source", fn("numbers", 100), output="q", rewindable=True),
            task("a", "map", fn("double"), inputs=("q",), output="qa"),
            task("b", "filter", fn("is_even"), inputs=("q",), output="qb"),
            task("m", "merge", inputs=("qa", "qb"), output="qm"),
            task("out", "sink", sink, inputs=("qm",)),
        ),
        (
            Queue("q", "src", ("a", "b"), 2),
            Queue("qa", "a", ("m",), 1),
            Queue("qb", "b", ("m",), 1),
            Queue("qm", "m", ("out",), 2),
        ),
    )

    result = await run_in(mode, plan)

    values, ended = collected(key)
    assert result.ok and ended
    assert sorted(values) == sorted(
        [n * 2 for n in range(100)] + list(range(0, 100, 2))
    )


async def test_function_never_runs_twice_when_queues_are_full(mode: str) -> None:
    # The sink takes one event per offer, and these queues fill many times over.
    name = f"once-{mode}"
    plan, _ = chain(
        numbers(40, batch=7),
        task("m", "map", fn("counted_double", name), batch=7),
        task("f", "flat_map", fn("repeat_n"), batch=7, expansion=1.0),
        capacity=3,
    )
    plan = with_sink(plan, fn("slow_sink", f"{name}-sink"))

    result = await run_in(mode, plan)

    assert result.ok
    assert sorted(fns().noted(name)) == list(range(40))  # each event once
    assert fns().noted(f"{name}-sink") == [
        2 * n for n in range(40) for _ in range(2 * n)
    ]


async def test_stop_ends_a_source_blocked_in_its_thread() -> None:
    plan, _ = chain(task("src", "source", fn("blocking_source", 30), batch=4))
    # Events 28 and 29 may wait in the blocked read: a call cannot be interrupted.
    plan = with_sink(plan, fn("stopping_sink", "blocked", 28))
    job = Job(plan)
    fns().STATE["job"] = job

    try:
        result = await job.run()
    finally:
        fns().RELEASE.set()

    assert result.ok and result.interrupted
    kept = fns().STATE["blocked"]
    assert kept == list(range(len(kept))) and len(kept) in (28, 29, 30)


@pytest.mark.parametrize(("presses", "aborted"), [(1, False), (2, True)])
def test_run_helper_sigint_once_drains_twice_aborts(
    presses: int, aborted: bool
) -> None:
    plan, key = chain(task("src", "source", fn("endless_sync")))
    sent: list[int] = []

    def on_tick(statistics: Any) -> None:
        if not sent and statistics.stages[-1].events_out > 0:
            for _ in range(presses):
                os.kill(os.getpid(), signal.SIGINT)
            sent.append(presses)

    result = run(plan, on_tick=on_tick, tick=0.001)

    assert (result.interrupted, result.aborted, result.ok) == (
        True,
        aborted,
        not aborted,
    )
    values, ended = collected(key)
    assert values == list(range(len(values)))
    assert ended is not aborted

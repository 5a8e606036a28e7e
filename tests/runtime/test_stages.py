"""Every stage kind, end to end on hand-written plans, with exact outputs.

The tests that run a job run it in both modes of the `mode` fixture (in this
process, and as worker processes around a queue server) with the same assertions;
a fake sleep goes to a local job only (a worker process backs off for real, for
hundredths of a second here), and a failure's `__cause__` is checked locally (a
process-mode failure is the worker's message alone, see `plans.error_type`). These
stay local, being about this process's objects or its fake time:

- a sink refusing for long: the warning comes after `REFUSALS_WARNED` refusals,
  about 30 s of backoff on real time, so only a fake sleep can reach it (no
  process-mode counterpart);
- a flat_map's outputs copied once: it counts the copies made in this process;
- a worker waiting for room: it unit-tests a `Worker` on `MemoryQueue`s.
"""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

import pytest

from reflow_lang.errors import PlanError, StageError
from reflow_lang.loader import load_module
from reflow_lang.plan import ErrorPolicy, FunctionRef, Key, Plan, Queue
from reflow_lang.runtime.events import END_OF_SOURCE, Batch, Instruction, Offsets, size
from reflow_lang.runtime.ports import QueueInput, QueueOutput
from reflow_lang.runtime.queue import MemoryQueue
from reflow_lang.runtime.sink import REFUSALS_WARNED
from reflow_lang.runtime.steps import Passthrough
from reflow_lang.runtime.worker import Worker
from reflow_lang.testing import collected, collector, run_plan_async

from .plans import FNS, chain, error_type, fn, run_in, task


async def run_chain(mode: str, *tasks, capacity: int = 8) -> list:
    plan, key = chain(*tasks, capacity=capacity)
    result = await run_plan_async(plan, processes=mode == "processes")
    assert result.error is None
    assert result.ok
    values, ended = collected(key)
    assert ended
    return values


def numbers(count: int, **options) -> object:
    return task("src", "source", fn("numbers", count), rewindable=True, **options)


async def test_source_sync_rewindable(mode: str) -> None:
    assert await run_chain(mode, numbers(20)) == list(range(20))


async def test_source_not_rewindable(mode: str) -> None:
    assert await run_chain(mode, task("src", "source", fn("plain_numbers", 5))) == [
        0,
        1,
        2,
        3,
        4,
    ]


async def test_source_async(mode: str) -> None:
    values = await run_chain(mode, task("src", "source", fn("async_numbers", 300)))

    assert values == list(range(300))


async def test_map_sync_and_async(mode: str) -> None:
    values = await run_chain(
        mode,
        numbers(600),
        task("m1", "map", fn("double")),
        task("m2", "map", fn("async_double")),
        task("m3", "map", fn("add", 1)),
    )

    assert values == [n * 4 + 1 for n in range(600)]


async def test_map_builtin_method_runs(mode: str) -> None:
    values = await run_chain(
        mode,
        numbers(3),
        task("s", "map", FunctionRef("builtins", "str", display="str")),
        task(
            "u", "map", FunctionRef("builtins", "str.zfill", args=(3,), display="zfill")
        ),
    )

    assert values == ["000", "001", "002"]


async def test_filter_keeps_passing_events(mode: str) -> None:
    values = await run_chain(mode, numbers(100), task("f", "filter", fn("is_even")))

    assert values == list(range(0, 100, 2))


async def test_flat_map_splits_in_order(mode: str) -> None:
    values = await run_chain(mode, numbers(6), task("fm", "flat_map", fn("repeat_n")))

    assert values == [1, 2, 2, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 5]


async def test_flat_map_with_expansion_hint_and_small_queue(mode: str) -> None:
    values = await run_chain(
        mode,
        numbers(40),
        task("fm", "flat_map", fn("repeat_n"), expansion=20.0),
        capacity=3,
    )

    assert values == [n for n in range(40) for _ in range(n)]


async def test_key_by_then_count_by_key(mode: str) -> None:
    values = await run_chain(
        mode,
        numbers(11),
        task("k", "key_by", fn("parity")),
        task("c", "count", by=Key("function", function=fn("parity"))),
    )

    assert values == [("even", 6), ("odd", 5)]


async def test_count_by_self_in_key_order(mode: str) -> None:
    values = await run_chain(
        mode,
        numbers(5),
        task("fm", "flat_map", fn("repeat_n")),
        task("c", "count", by=Key("self")),
    )

    assert values == [(1, 1), (2, 2), (3, 3), (4, 4)]


async def test_count_without_key_is_one_group(mode: str) -> None:
    values = await run_chain(mode, numbers(7), task("c", "count"))

    assert values == [(None, 7)]


async def test_reduce_by_key_with_initial(mode: str) -> None:
    values = await run_chain(
        mode,
        numbers(10),
        task(
            "r",
            "reduce",
            fn("total"),
            by=Key("function", function=fn("parity")),
            initial=100,
        ),
    )

    assert values == [("even", 120), ("odd", 125)]


async def test_reduce_by_field(mode: str) -> None:
    values = await run_chain(
        mode,
        task("src", "source", fn("records")),
        task("r", "reduce", fn("add_amount"), by=Key("field", field="user"), initial=0),
    )

    assert values == [("ann", 4), ("bob", 2)]


async def test_count_of_empty_source_emits_nothing(mode: str) -> None:
    assert await run_chain(mode, numbers(0), task("c", "count", by=Key("self"))) == []


async def test_fused_chain_with_workers_keeps_order(mode: str) -> None:
    values = await run_chain(
        mode,
        numbers(2000, batch=16),
        task("m", "map", fn("jittery_double"), workers=4, batch=16),
        task("f", "filter", fn("is_even"), workers=4, batch=16),
        capacity=32,
    )

    assert values == [n * 2 for n in range(2000)]


async def test_merge_ends_when_every_input_ended(mode: str) -> None:
    a_sink, key = collector("merge")
    plan = Plan(
        "merged",
        "m.flow",
        "at_least_once",
        (),
        (
            task("a", "source", fn("numbers", 50), output="qa", rewindable=True),
            task("b", "source", fn("async_numbers", 30), output="qb"),
            task("m", "merge", inputs=("qa", "qb"), output="qm"),
            task("out", "sink", a_sink, inputs=("qm",)),
        ),
        (
            Queue("qa", "a", ("m",), 4),
            Queue("qb", "b", ("m",), 4),
            Queue("qm", "m", ("out",), 4),
        ),
    )

    result = await run_in(mode, plan)

    values, ended = collected(key)
    assert result.ok and ended
    assert sorted(values) == sorted([*range(50), *range(30)])
    assert [v for v in values if isinstance(v, int)] == values


async def test_fan_out_each_reader_sees_every_event(mode: str) -> None:
    first, first_key = collector("fan")
    second, second_key = collector("fan")
    plan = Plan(
        "fan",
        "f.flow",
        "at_least_once",
        (),
        (
            task("src", "source", fn("numbers", 300), output="q", rewindable=True),
            task("m", "map", fn("double"), inputs=("q",), output="qm"),
            task("one", "sink", first, inputs=("qm",)),
            task("two", "sink", second, inputs=("q",)),
        ),
        (Queue("q", "src", ("m", "two"), 8), Queue("qm", "m", ("one",), 8)),
    )

    result = await run_in(mode, plan)

    assert result.ok
    assert collected(first_key) == ([n * 2 for n in range(300)], True)
    assert collected(second_key) == (list(range(300)), True)


async def test_sink_partial_acceptance_is_offered_the_rest(mode: str) -> None:
    plan, _ = chain(numbers(50, batch=8), capacity=16)
    name = f"partial-{mode}"

    result = await run_in(mode, with_sink(plan, fn("half_sink", name)), sleep=no_wait)

    assert result.ok
    assert noted(name) == list(range(50))
    assert len(noted(f"{name}/calls")) > 50 // 8
    assert noted(f"{name}/ended") == ["end"]


async def test_sink_async_function(mode: str) -> None:
    plan, _ = chain(numbers(20))
    name = f"async-{mode}"

    result = await run_in(mode, with_sink(plan, fn("async_sink", name)))

    assert result.ok
    assert noted(name) == list(range(20))


def with_sink(plan: Plan, function) -> Plan:
    """The plan with its collecting sink replaced by `function`."""
    last = plan.tasks[-1]
    tasks = (*plan.tasks[:-1], dataclasses.replace(last, function=function))
    return dataclasses.replace(plan, tasks=tasks)


async def no_wait(delay: float) -> None:
    return None


def noted(name: str) -> list[Any]:
    """What the functions of `fns.py` noted under `name`, in either mode."""
    noted: list[Any] = load_module("reflow_runtime_fns", FNS).noted(name)
    return noted


async def test_missing_function_is_a_plan_error_in_the_result(mode: str) -> None:
    plan, _ = chain(numbers(3), task("m", "map", fn("no_such_function")))

    result = await run_in(mode, plan)

    assert not result.ok
    assert isinstance(result.error, error_type(mode, PlanError))
    assert str(result.error).startswith(
        "stage `m` cannot load `fns.no_such_function`: AttributeError:"
    )


@pytest.mark.parametrize(
    ("answer", "shown"), [(-1, "-1"), (9, "9"), ("all", "'all'"), (True, "True")]
)
async def test_sink_answer_out_of_range_fails_the_job(
    mode: str, answer: Any, shown: str
) -> None:
    plan, _ = chain(numbers(5, batch=8), capacity=16)

    result = await run_in(mode, with_sink(plan, fn("answering_sink", answer)))

    assert not result.ok
    assert isinstance(result.error, error_type(mode, StageError))
    assert str(result.error) == (
        "stage `out` failed: `fns.answering_sink` raised SinkAnswerError: "
        f"`fns.answering_sink` returned {shown}; a sink returns how many of the 5 "
        "events offered it accepted (an int from 0 to 5) or None for all; "
        "event ('src', 0): 0"
    )


async def test_sink_refusing_for_long_is_waited_for_with_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    plan, _ = chain(numbers(5, batch=8), capacity=16)
    delays: list[float] = []

    async def sleep(delay: float) -> None:
        delays.append(delay)

    refusals = REFUSALS_WARNED + 1
    result = await run_plan_async(
        with_sink(plan, fn("refusing_sink", "refusing", refusals)), sleep=sleep
    )

    assert result.ok
    assert noted("refusing") == list(range(5))
    assert delays[-1] == 1.0
    assert [r.getMessage() for r in caplog.records if r.name.endswith("sink")] == [
        f"sink `out` has accepted nothing of its last {REFUSALS_WARNED} offers; "
        "it is waited for (stop the job to give up)"
    ]


@pytest.mark.parametrize("kind", ["merge", "join"])
async def test_stage_reading_a_queue_twice_is_refused(mode: str, kind: str) -> None:
    sink, _ = collector("twice")
    keys = (Key("self"), Key("self")) if kind == "join" else ()
    plan = Plan(
        "twice",
        "t.flow",
        "at_least_once",
        (),
        (
            task("src", "source", fn("numbers", 3), output="q", rewindable=True),
            task("both", kind, inputs=("q", "q"), output="qb", join_keys=keys),
            task("out", "sink", sink, inputs=("qb",)),
        ),
        (Queue("q", "src", ("both", "both"), 8), Queue("qb", "both", ("out",), 8)),
    )

    with pytest.raises(PlanError) as refused:  # before any process starts
        await run_in(mode, plan)

    assert str(refused.value) == (
        "stage `both` at test:both reads the queue `q` twice; "
        "this runtime reads each queue once per stage"
    )


@pytest.mark.parametrize("policy", [ErrorPolicy(), ErrorPolicy("skip")])
async def test_sink_broken_pipe_fails_the_job_whatever_the_policy(
    mode: str, policy: ErrorPolicy
) -> None:
    plan, _ = chain(numbers(50, batch=8), capacity=16)
    name = f"pipe-{policy.kind}-{mode}"
    sink = dataclasses.replace(plan.tasks[-1], on_error=policy)
    plan = dataclasses.replace(plan, tasks=(*plan.tasks[:-1], sink))

    result = await run_in(mode, with_sink(plan, fn("closed_pipe_sink", name)))

    assert not result.ok
    assert isinstance(result.error, error_type(mode, StageError))
    assert str(result.error) == (
        "stage `out` failed: `fns.closed_pipe_sink` raised BrokenPipeError: "
        "[Errno 32] Broken pipe; event ('src', 0): 0"
    )
    if mode == "local":  # a process-mode failure is its message alone
        assert isinstance(result.error.__cause__, BrokenPipeError)
    assert len(noted(f"{name}/calls")) == 1


async def test_flat_map_huge_expansion_is_copied_once_on_delivery(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    parts = 50_000
    copied = 0
    original = Batch.slice

    def counting_slice(self: Batch, start: int, stop: int) -> Batch:
        nonlocal copied
        copied += stop - start
        return original(self, start, stop)

    monkeypatch.setattr(Batch, "slice", counting_slice)

    values = await run_chain(  # in this process: it counts this process's copies
        "local",
        task("src", "source", FunctionRef("builtins", "iter", args=([parts],))),
        task("f", "flat_map", FunctionRef("builtins", "range")),
        capacity=64,
    )

    assert values == list(range(parts))
    assert copied <= 2 * parts


async def test_worker_waits_for_room_rather_than_offering_a_sliver() -> None:
    # The output has room for 1 after the first batch: the second is held whole
    # until a batch's worth is free, not cut into a 1-event item and the rest.
    source = MemoryQueue("in", 16, ["w"])
    out = MemoryQueue("out", 8, ["next"])
    for start in (0, 4):
        source.put_nowait(
            Batch(list(range(start, start + 4)), Offsets("s", start, start + 4))
        )
    source.put_nowait(END_OF_SOURCE)
    out.put_nowait(Batch(["old"] * 3, Offsets("o", 0, 3)))
    worker = Worker(
        "w", QueueInput([source], "w"), Passthrough(None), QueueOutput(out), credit=8
    )
    running = asyncio.ensure_future(worker.run())

    first = await out.get("next", 8)
    while out.statistics().tail < 7:  # the first batch is in; the worker waits
        await asyncio.sleep(0)
    await out.ack("next", 3)
    sizes = [size(first)]
    while not isinstance(item := await out.get("next", 8), Instruction):
        sizes.append(size(item))
        await out.ack("next", sum(sizes))
    await running

    assert sizes == [3, 4, 4]

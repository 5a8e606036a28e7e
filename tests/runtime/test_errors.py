"""Every `on_error` policy, for every kind of user function, with exact outputs.

Every test runs a job in both modes of the `mode` fixture (in this process, and as
worker processes around a queue server) with the same assertions, except where a
mode cannot have them:

- fake sleeps and clocks cannot be handed to another process: a local job runs on
  them and the test asserts the delays; a process-mode job runs on real time, with
  delays and timeouts chosen so that the outcome does not depend on timing;
- a process-mode failure reaches the test as the worker's message alone (a
  `ProcessFailure`, see `plans.error_type`), so its `__cause__` is checked locally;
- a worker's log records reach the test as the lines it writes on stderr, which the
  supervisor passes on to ours (`warnings`).
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Any

import pytest

from reflow_lang.errors import StageError
from reflow_lang.loader import load_module
from reflow_lang.plan import ErrorPolicy, Key, Plan, Queue, Task
from reflow_lang.testing import collected, collector, run_flow_text

from .plans import FNS, chain, error_type, fn, run_in, task

SKIP = ErrorPolicy("skip")

# A sync call's timeout, and how long the slow call takes: five times as long, while
# the other calls return at once; in process mode these are real seconds.
TIMEOUT = 0.2
SLOW = 1.0


def fns() -> Any:
    return load_module("reflow_runtime_fns", FNS)


class Sleeps:
    """A fake sleep that records the delays asked for and returns at once."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)


def numbers(count: int, **options: Any) -> Task:
    return task("src", "source", fn("numbers", count), rewindable=True, **options)


async def run(mode: str, *tasks: Task, **job: Any) -> tuple[Any, list[Any]]:
    plan, key = chain(*tasks)
    result = await run_in(mode, plan, **job)
    return result, collected(key)[0]


def with_sink(plan: Plan, **changes: Any) -> Plan:
    """The plan with its collecting sink changed."""
    sink = dataclasses.replace(plan.tasks[-1], **changes)
    return dataclasses.replace(plan, tasks=(*plan.tasks[:-1], sink))


def warnings(
    mode: str,
    logger: str,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> list[str]:
    """The messages `logger` warned with: its records in this process; in process
    mode, the lines a worker wrote on stderr and the supervisor passed on to ours
    (`WARNING [worker FLOW/STAGE] LOGGER: MESSAGE`, the process named or not)."""
    if mode == "local":
        return [r.getMessage() for r in caplog.records if r.name == logger]
    line = re.compile(rf"WARNING (?:\[[^]]*\] )?{re.escape(logger)}: (.*)")
    found = map(line.fullmatch, capsys.readouterr().err.splitlines())
    return [match[1] for match in found if match is not None]


def stage(result: Any, name: str) -> Any:
    return next(s for s in result.statistics.stages if s.name == name)


@pytest.mark.parametrize("function", ["fail_on_3", "async_fail_on_3"])
async def test_fail_stops_job_with_stage_error(mode: str, function: str) -> None:
    result, _ = await run(mode, numbers(10), task("m", "map", fn(function)))

    assert not result.ok
    assert isinstance(result.error, error_type(mode, StageError))
    assert str(result.error) == (
        f"stage `m` failed: `fns.{function}` raised ValueError: three is bad: 3; "
        "event ('src', 3): 3"
    )
    if mode == "local":
        assert isinstance(result.error.__cause__, ValueError)
    assert stage(result, "m").errors == 1


@pytest.mark.parametrize("function", ["exit_on_3", "async_exit_on_3"])
async def test_sys_exit_in_a_function_fails_the_job_whatever_the_policy(
    mode: str, function: str
) -> None:
    # `SystemExit` is no `Exception`: no policy sees it, and it must not end the
    # process running the job (nor be taken for a crash and restarted).
    result, _ = await run(
        mode, numbers(10), task("m", "map", fn(function), on_error=SKIP)
    )

    assert not result.ok
    assert str(result.error) == (
        "stage `m` failed: a user function raised SystemExit('bad config'), which "
        "would end the process; a stage's function reports an error by raising an "
        "exception"
    )


@pytest.mark.parametrize("function", ["fail_on_3", "async_fail_on_3"])
async def test_skip_drops_and_counts(mode: str, function: str) -> None:
    result, values = await run(
        mode, numbers(10), task("m", "map", fn(function), on_error=SKIP)
    )

    assert result.ok
    assert values == [0, 1, 2, 4, 5, 6, 7, 8, 9]
    assert (stage(result, "m").skipped, stage(result, "m").errors) == (1, 1)


async def test_skip_in_every_batch_keeps_good_events(mode: str) -> None:
    result, values = await run(
        mode,
        numbers(40, batch=8),
        task("m", "map", fn("fail_on_multiples_of_4"), on_error=SKIP, batch=8),
    )

    assert result.ok
    assert values == [n for n in range(40) if n % 4]
    assert stage(result, "m").skipped == 10


async def test_skip_logs_the_first_events_then_only_counts(
    mode: str, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    logger = "reflow_lang.runtime.policy"
    caplog.set_level("WARNING", logger=logger)

    result, _ = await run(
        mode,
        numbers(60),
        task("m", "map", fn("fail_on_multiples_of_4"), on_error=SKIP),
    )

    assert stage(result, "m").skipped == 15
    messages = warnings(mode, logger, caplog, capsys)
    assert len(messages) == 11
    assert messages[0] == (
        "stage `m` skipped event ('src', 0): ValueError: 0 is a multiple of four"
    )
    assert messages[-1] == (
        "stage `m` has skipped 10 events; further ones are counted in the summary, "
        "not logged"
    )


async def test_skip_in_filter_flat_map_and_key_by(mode: str) -> None:
    result, values = await run(
        mode,
        numbers(6),
        task("f", "filter", fn("fail_on_3"), on_error=SKIP),
        task("fm", "flat_map", fn("words_or_fail"), on_error=SKIP),
        task("k", "key_by", fn("fail_on_3"), on_error=SKIP),
    )

    assert result.ok
    # 0 fails the filter (falsy); 3 fails it by raising; 2 fails the flat_map.
    assert values == [1, 1, 4, 4, 5, 5]
    assert [stage(result, n).skipped for n in ("f", "fm", "k")] == [1, 1, 0]


async def test_retry_succeeds_with_exponential_backoff(mode: str) -> None:
    sleeps = Sleeps()
    flaky = fn("flaky", 2, f"retry-ok-{mode}")

    result, values = await run(
        mode,
        numbers(3),
        task("m", "map", flaky, on_error=ErrorPolicy("retry", 3)),
        sleep=sleeps,
    )

    assert result.ok
    assert values == [0, 1, 2]
    if mode == "local":  # a worker process sleeps for real: 0.09 s in all
        assert sleeps.delays == [0.01, 0.02] * 3
    assert (stage(result, "m").retried, stage(result, "m").errors) == (6, 6)


async def test_retry_exhausted_fails_with_last_error(mode: str) -> None:
    sleeps = Sleeps()
    flaky = fn("flaky", 5, f"retry-fail-{mode}")

    result, _ = await run(
        mode,
        numbers(3),
        task("m", "map", flaky, on_error=ErrorPolicy("retry", 2)),
        sleep=sleeps,
    )

    assert isinstance(result.error, error_type(mode, StageError))
    assert str(result.error) == (
        "stage `m` failed: `fns.flaky` raised ConnectionError: attempt 3 at 0; "
        "event ('src', 0): 0"
    )
    assert (stage(result, "m").retried, stage(result, "m").errors) == (2, 3)
    if mode == "local":
        assert sleeps.delays == [0.01, 0.02]


async def test_dead_letter_sends_record_and_goes_on(mode: str) -> None:
    good, good_key = collector("dl")
    bad, bad_key = collector("dl")
    plan = Plan(
        "dl",
        "dl.flow",
        "at_least_once",
        (),
        (
            task("src", "source", fn("numbers", 6), output="q0", rewindable=True),
            task(
                "m",
                "map",
                fn("fail_on_3"),
                inputs=("q0",),
                output="q1",
                on_error=ErrorPolicy("dead_letter", dead_letter="bad"),
            ),
            task("good", "sink", good, inputs=("q1",)),
            task("bad", "sink", bad, inputs=("bad",)),
        ),
        (
            Queue("q0", "src", ("m",), 4),
            Queue("q1", "m", ("good",), 4),
            Queue("bad", "m", ("bad",), 1),
        ),
    )

    result = await run_in(mode, plan)

    assert result.ok
    assert collected(good_key) == ([0, 1, 2, 4, 5], True)
    assert collected(bad_key) == (
        [
            {
                "value": 3,
                "error": {"type": "ValueError", "message": "three is bad: 3"},
                "stage": "m",
                "id": ("src", 3),
            }
        ],
        True,
    )
    assert stage(result, "m").dead_lettered == 1


async def test_source_error_fail(mode: str) -> None:
    result, _ = await run(
        mode,
        task("src", "source", fn("failing_source", 10, 4), rewindable=True, batch=2),
    )

    assert isinstance(result.error, error_type(mode, StageError))
    assert str(result.error) == (
        "stage `src` failed: `fns.failing_source` raised OSError: cannot read 4; "
        "event ('src', 4): None"
    )


async def test_source_error_skip_rewinds_past_the_event(mode: str) -> None:
    result, values = await run(
        mode,
        task(
            "src",
            "source",
            fn("failing_source", 8, 4),
            rewindable=True,
            batch=3,
            on_error=SKIP,
        ),
    )

    assert result.ok
    assert values == [0, 1, 2, 3, 5, 6, 7]
    assert stage(result, "src").skipped == 1


async def test_sink_error_retried_per_event_then_skipped(mode: str) -> None:
    plan, _ = chain(numbers(8))
    name = f"picky-{mode}"
    plan = with_sink(plan, function=fn("picky_sink", name), on_error=SKIP)

    result = await run_in(mode, plan)

    assert result.ok
    assert fns().noted(name) == [0, 1, 2, 4, 5, 6, 7]
    assert stage(result, "out").skipped == 1


async def test_sink_end_hook_failure_fails_job(mode: str) -> None:
    plan, _ = chain(numbers(2))
    plan = with_sink(plan, function=fn("failing_end_sink"))

    result = await run_in(mode, plan)

    assert isinstance(result.error, error_type(mode, StageError))
    assert str(result.error) == (
        "stage `out` failed: `fns.failing_end_sink` raised OSError: cannot close; "
        "event None: None"
    )


async def test_reduce_error_skip_keeps_accumulator(mode: str) -> None:
    result, values = await run(
        mode,
        numbers(6),
        task("m", "map", fn("unhashable")),
        task("r", "reduce", fn("total"), initial=0, on_error=SKIP),
    )

    assert result.ok
    assert values == [(None, 14)]
    assert stage(result, "r").skipped == 1


async def test_count_unhashable_key_skipped(mode: str) -> None:
    result, values = await run(
        mode,
        numbers(4),
        task("m", "map", fn("unhashable")),
        task("c", "count", by=Key("self"), on_error=SKIP),
    )

    assert result.ok
    assert values == [(0, 1), (2, 1), (3, 1)]
    assert stage(result, "c").skipped == 1


def slow_on_3(mode: str, **options: Any) -> Task:
    """A map taking `SLOW` seconds for event 3: on the fake clock a local job runs
    on, or for real in a worker process."""
    slow = fn("slow_on_3", SLOW, mode == "processes")
    return task("m", "map", slow, timeout=TIMEOUT, **options)


async def test_timeout_of_sync_call_is_an_error(mode: str) -> None:
    result, values = await run(
        mode, numbers(6), slow_on_3(mode, on_error=SKIP), clock=fns().CLOCK
    )

    assert result.ok
    assert values == [0, 1, 2, 4, 5]
    assert stage(result, "m").skipped == 1


async def test_timeout_of_sync_call_fails_with_message(mode: str) -> None:
    result, _ = await run(mode, numbers(6), slow_on_3(mode), clock=fns().CLOCK)

    assert isinstance(result.error, error_type(mode, StageError))
    assert str(result.error) == (
        "stage `m` failed: `fns.slow_on_3` raised CallTimeout: call took longer than "
        f"the stage's timeout of {TIMEOUT:g}s; event ('src', 3): 3"
    )


async def test_timeout_of_async_call_never_returning(mode: str) -> None:
    result, _ = await run(
        mode, numbers(2), task("m", "map", fn("forever"), timeout=0.001)
    )

    assert isinstance(result.error, error_type(mode, StageError))
    assert re.fullmatch(
        re.escape(
            "stage `m` failed: `fns.forever` raised CallTimeout: call took longer "
        )
        + re.escape("than the stage's timeout of 0.001s; event ('src', 0): 0"),
        str(result.error),
    )


async def test_source_failing_to_start_fails_job(mode: str) -> None:
    result, _ = await run(
        mode, task("src", "source", fn("broken_source"), rewindable=True)
    )

    assert isinstance(result.error, error_type(mode, StageError))
    assert str(result.error) == (
        "stage `src` failed: `fns.broken_source` raised LookupError: no such table; "
        "event ('src', 0): None"
    )


async def test_sink_timeout_is_an_error(mode: str) -> None:
    plan, _ = chain(numbers(3))
    plan = with_sink(plan, function=fn("forever"), timeout=0.001, on_error=SKIP)

    result = await run_in(mode, plan)

    assert result.ok
    assert stage(result, "out").skipped == 3


def test_failing_join_key_is_named_in_the_error(mode: str, tmp_path: Path) -> None:
    (tmp_path / "keys.py").write_text(
        "def numbers(start: int = 0):\n"
        "    yield from [{'k': 1}, {'k': 2}][start:]\n"
        "def k(event):\n"
        "    return event['k']\n"
        "def missing(event):\n"
        "    return event['absent']\n"
    )
    flow = (
        "flow joined()\n"
        "use python keys as m\n"
        "a = source m.numbers()\n"
        "b = source m.numbers()\n"
        "join a by m.k, b by m.missing | sink m.k\n"
    )

    result, _ = run_flow_text(
        flow, file=str(tmp_path / "joined.flow"), processes=mode == "processes"
    )

    assert isinstance(result.error, error_type(mode, StageError))
    assert str(result.error).startswith(
        "stage `line5/join` failed: `join by m.k and m.missing` raised KeyError: 'absent'"
    )

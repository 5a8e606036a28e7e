"""Plans written by hand for the runtime tests (no front end involved), and how a
test runs one in either mode of the `mode` fixture."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from reflow_lang.errors import ReflowError
from reflow_lang.plan import FunctionRef, Plan, Queue, Task, Value
from reflow_lang.runtime import JobResult
from reflow_lang.runtime.cluster.supervisor import ProcessFailure
from reflow_lang.testing import collector, run_plan_async

FNS = str(Path(__file__).with_name("fns.py"))


def fn(name: str, *args: Value) -> FunctionRef:
    """A function of `fns.py`, loaded by path."""
    return FunctionRef("reflow_runtime_fns", name, FNS, tuple(args), f"fns.{name}")


def task(
    name: str, kind: str, function: FunctionRef | None = None, **options: Any
) -> Task:
    """A task not wired yet: `chain` gives it its queues."""
    return Task(name, kind, f"test:{name}", function, **options)  # type: ignore[arg-type]


def chain(*tasks: Task, capacity: int = 8, flow: str = "test") -> tuple[Plan, str]:
    """A linear plan of `tasks` ending in a collecting sink; answers the plan and the
    collector's key."""
    sink, key = collector(flow)
    wired: list[Task] = []
    queues: list[Queue] = []
    stages = [*tasks, task("out", "sink", sink)]
    for position, stage in enumerate(stages):
        inputs = (f"q{position - 1}",) if position else ()
        output = f"q{position}" if position < len(stages) - 1 else None
        wired.append(dataclasses.replace(stage, inputs=inputs, output=output))
        if output is not None:
            consumer = stages[position + 1].name
            queues.append(Queue(output, stage.name, (consumer,), capacity))
    plan = Plan(flow, f"{flow}.flow", "at_least_once", (), tuple(wired), tuple(queues))
    return plan, key


async def run_in(mode: str, plan: Plan, **job: Any) -> JobResult:
    """Runs `plan` in this process (`local`) or as worker processes (`processes`).

    `job` options (a fake `sleep` or `clock`) go to a local job only: a worker
    process cannot be handed this process's fakes, and runs on real time.
    """
    if mode == "processes":
        return await run_plan_async(plan, processes=True)
    return await run_plan_async(plan, **job)


def error_type(mode: str, local: type[ReflowError]) -> type[ReflowError]:
    """The type of a failed job's error: `local` in this process; in process mode
    the supervisor relays a worker's message alone, as a `ProcessFailure` (its
    `__cause__` stays in the worker)."""
    return local if mode == "local" else ProcessFailure

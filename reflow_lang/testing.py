"""Helpers for testing flows: in-memory sources and sinks, and run helpers.

`ListSource` and `ListSink` can be used from a flow through `use python` (make them
module attributes of the module the flow imports). `collect` is a sink that keeps
what it receives under a key, for plans written by hand. `run_plan` runs a plan to
completion; `run_flow_text` compiles a flow's text, replaces its sinks with
collectors and runs it, answering what each sink received.

This module sits outside `reflow_lang.runtime` because `run_flow_text` needs the
front end, which the runtime never imports.
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

from reflow_lang.errors import PlanError
from reflow_lang.plan import FunctionRef, Plan
from reflow_lang.runtime import Job, JobResult

__all__ = [
    "ListSink",
    "ListSource",
    "collect",
    "collected",
    "collector",
    "run_flow_text",
    "run_plan",
    "run_plan_async",
]

_lock = threading.Lock()
_collected: dict[str, list[Any]] = {}
_ended: set[str] = set()
_keys = itertools.count()


class ListSource:
    """A rewindable source of the given values: `source m.numbers` with
    `numbers = ListSource([1, 2, 3])` in module `m`."""

    def __init__(self, values: Iterable[Any]) -> None:
        self.values = list(values)

    def __call__(self, start: int = 0) -> Iterator[Any]:
        return iter(self.values[start:])


class ListSink:
    """A sink keeping every event it accepts, in `values`; `ended` once ended."""

    def __init__(self) -> None:
        self.values: list[Any] = []
        self.ended = False

    def __call__(self, batch: Sequence[Any]) -> None:
        self.values.extend(batch)

    def end(self) -> None:
        """Called by the runtime when end-of-source reaches the sink."""
        self.ended = True


def collect(batch: Sequence[Any], key: str) -> None:
    """A sink keeping its events under `key` (see `collected`)."""
    with _lock:
        _collected.setdefault(key, []).extend(batch)


def _end_collect(key: str) -> None:
    with _lock:
        _ended.add(key)


collect.end = _end_collect  # type: ignore[attr-defined]


def collector(prefix: str = "sink") -> tuple[FunctionRef, str]:
    """A fresh `collect` sink for a hand-written plan, and the key it collects under."""
    key = f"{prefix}-{next(_keys)}"
    with _lock:
        _collected[key] = []
    return FunctionRef(
        "reflow_lang.testing", "collect", args=(key,), display="collect"
    ), key


def collected(key: str) -> tuple[list[Any], bool]:
    """What the collector `key` received, and whether end-of-source reached it."""
    with _lock:
        return list(_collected.get(key, [])), key in _ended


async def run_plan_async(plan: Plan, **options: Any) -> JobResult:
    """Runs a plan in the running loop; `options` go to `Job` (`sleep`, `clock`)."""
    return await Job(plan, **options).run()


def run_plan(plan: Plan, **options: Any) -> JobResult:
    """Runs a plan in a new event loop; see `run_plan_async`."""
    return asyncio.run(run_plan_async(plan, **options))


def run_flow_text(
    text: str, params: Mapping[str, str] | None = None, *, file: str = "<test>.flow"
) -> tuple[JobResult, dict[str, list[Any]]]:
    """Compiles and runs a flow, its sinks replaced by collectors.

    Returns:
        The job's result, and what each sink task received, by task name.

    Raises:
        PlanError: the flow does not compile (the message lists the diagnostics).
    """
    from reflow_lang.frontend.api import compile_source

    compilation = compile_source(text, file, params)
    if compilation.plan is None:
        problems = "; ".join(d.message for d in compilation.diagnostics)
        msg = f"the flow does not compile: {problems}"
        raise PlanError(msg)

    plan, keys = _with_collectors(compilation.plan)
    result = run_plan(plan)
    return result, {task: collected(key)[0] for task, key in keys.items()}


def _with_collectors(plan: Plan) -> tuple[Plan, dict[str, str]]:
    keys: dict[str, str] = {}
    tasks = []
    for task in plan.tasks:
        if task.kind == "sink":
            function, keys[task.name] = collector(task.name)
            task = dataclasses.replace(task, function=function)
        tasks.append(task)
    return dataclasses.replace(plan, tasks=tuple(tasks)), keys

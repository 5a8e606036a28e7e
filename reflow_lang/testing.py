"""Helpers for testing flows: in-memory sources and sinks, and run helpers.

`ListSource` and `ListSink` can be used from a flow through `use python` (make them
module attributes of the module the flow imports). `collect` is a sink that keeps
what it receives under a key, for plans written by hand. `run_plan` runs a plan to
completion; `run_flow_text` compiles a flow's text, replaces its sinks with
collectors and runs it, answering what each sink received.

For order tests, `with_delays` wraps a plan's user functions in random delays seeded
by `set_delays` (the schedule is then a test's input), and `observing_queues` records
every item the in-memory queues accept, with its stamps.

This module sits outside `reflow_lang.runtime` because `run_flow_text` needs the
front end, which the runtime never imports.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import inspect
import itertools
import os
import random
import threading
import time
import urllib.parse
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

from reflow_lang.errors import PlanError
from reflow_lang.loader import resolve_function
from reflow_lang.plan import FunctionRef, Plan
from reflow_lang.runtime import Job, JobResult
from reflow_lang.runtime.cluster.supervisor import Supervisor
from reflow_lang.runtime.events import Batch, Instruction, Item
from reflow_lang.runtime.transport import wire

__all__ = [
    "ListSink",
    "ListSource",
    "Put",
    "collect",
    "collect_to_file",
    "collected",
    "collecting_in",
    "collector",
    "delayed",
    "delayed_async",
    "observing_queues",
    "run_flow_text",
    "run_plan",
    "run_plan_async",
    "set_delays",
    "shared_folder",
    "with_collectors",
    "with_delays",
]

_lock = threading.Lock()
_collected: dict[str, list[Any]] = {}
_ended: set[str] = set()
_files: dict[str, str] = {}  # the file of each collector that writes one
_folder: str | None = None  # where collectors write, inside `collecting_in`
_keys = itertools.count()

# The environment variable naming the folder of `collecting_in` (`shared_folder`).
SHARED_FOLDER = "REFLOW_TESTING_FOLDER"


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


def collect_to_file(batch: Sequence[Any], path: str) -> None:
    """A sink appending its events to the file `path`, for a plan that runs in
    other processes (see `collector`): one wire-encoded batch per record."""
    record = wire.pack(list(batch))
    with open(path, "ab") as file:
        file.write(len(record).to_bytes(4, "big") + record)


def _end_collect_to_file(path: str) -> None:
    with open(path + ".end", "w", encoding="utf-8"):
        pass


collect_to_file.end = _end_collect_to_file  # type: ignore[attr-defined]


def collector(
    prefix: str = "sink", folder: str | None = None
) -> tuple[FunctionRef, str]:
    """A fresh `collect` sink for a hand-written plan, and the key it collects under.

    With `folder` (or inside `collecting_in`), the sink writes to a file there, so
    that it also collects from a plan run as processes (`run_plan_async(...,
    processes=True)`).
    """
    key = f"{prefix}-{next(_keys)}"
    folder = folder or _folder
    if folder is not None:
        # A task's name may hold `/` (`line3/sink`): the file name must not.
        path = os.path.join(folder, urllib.parse.quote(key, safe="") + ".collected")
        with _lock:
            _files[key] = path
        ref = FunctionRef("reflow_lang.testing", "collect_to_file", args=(path,))
        return dataclasses.replace(ref, display="collect"), key

    with _lock:
        _collected[key] = []
    return FunctionRef(
        "reflow_lang.testing", "collect", args=(key,), display="collect"
    ), key


@contextlib.contextmanager
def collecting_in(folder: str) -> Iterator[None]:
    """Collectors made inside write to files in `folder` (see `collector`).

    The folder is also named in the environment, which worker processes inherit, so
    that a test's own functions can leave there what the test reads back
    (`shared_folder`).
    """
    global _folder
    was, _folder = _folder, folder
    named = os.environ.get(SHARED_FOLDER)
    os.environ[SHARED_FOLDER] = folder
    try:
        yield
    finally:
        _folder = was
        if named is None:
            del os.environ[SHARED_FOLDER]
        else:
            os.environ[SHARED_FOLDER] = named


def shared_folder() -> str | None:
    """The folder of the enclosing `collecting_in`, also in a worker process that
    it started; `None` outside one."""
    return os.environ.get(SHARED_FOLDER)


def collected(key: str) -> tuple[list[Any], bool]:
    """What the collector `key` received, and whether end-of-source reached it."""
    with _lock:
        path = _files.get(key)
        if path is None:
            return list(_collected.get(key, [])), key in _ended
    return _read_collected(path), os.path.exists(path + ".end")


def _read_collected(path: str) -> list[Any]:
    values: list[Any] = []
    if not os.path.exists(path):
        return values
    with open(path, "rb") as file:
        data = file.read()
    position = 0
    while position < len(data):
        length = int.from_bytes(data[position : position + 4], "big")
        values.extend(wire.unpack(data[position + 4 : position + 4 + length]))
        position += 4 + length
    return values


async def run_plan_async(
    plan: Plan, *, processes: bool = False, **options: Any
) -> JobResult:
    """Runs a plan in the running loop; `options` go to `Job` (`sleep`, `clock`).

    With `processes`, it runs as `reflowc run --processes` runs it: a queue server
    and worker processes under a supervisor (its sinks must be collectors made in
    `collecting_in`, or write files).
    """
    if processes:
        return await Supervisor(plan, **options).run()
    return await Job(plan, **options).run()


def run_plan(plan: Plan, **options: Any) -> JobResult:
    """Runs a plan in a new event loop; see `run_plan_async`."""
    return asyncio.run(run_plan_async(plan, **options))


def run_flow_text(
    text: str,
    params: Mapping[str, str] | None = None,
    *,
    file: str = "<test>.flow",
    processes: bool = False,
) -> tuple[JobResult, dict[str, list[Any]]]:
    """Compiles and runs a flow, its sinks replaced by collectors; with `processes`,
    as processes around a queue server (inside `collecting_in`).

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

    plan, keys = with_collectors(compilation.plan)
    result = run_plan(plan, processes=processes)
    return result, {task: collected(key)[0] for task, key in keys.items()}


def with_collectors(plan: Plan) -> tuple[Plan, dict[str, str]]:
    """The plan with every sink replaced by a collector, and each sink's key.

    `collected(key)` then gives what the sink task received.
    """
    keys: dict[str, str] = {}
    tasks = []
    for task in plan.tasks:
        if task.kind == "sink":
            function, keys[task.name] = collector(task.name)
            task = dataclasses.replace(task, function=function)
        tasks.append(task)
    return dataclasses.replace(plan, tasks=tuple(tasks)), keys


# -- random delays and queue observation, for order tests -----------------------------

# Stage kinds whose user function `with_delays` wraps: not sources and sinks, whose
# functions the runtime inspects (`start`, `end`), nor key functions of options.
DELAYED_KINDS = frozenset({"map", "flat_map", "filter", "key_by", "rejoin", "reduce"})

_delay_lock = threading.Lock()
_delay_random = random.Random(0)
_delay_rate = 0.0
_delay_most = 0.0
_originals: dict[tuple[str, str, str | None], Any] = {}


@dataclasses.dataclass(frozen=True, slots=True)
class Put:
    """What a queue accepted from one put: a batch's accepted prefix, or an
    instruction."""

    queue: str
    item: Batch | Instruction


# The environment variable that carries `set_delays` to worker processes, which
# inherit it: `SEED RATE MOST`.
DELAYS = "REFLOW_TESTING_DELAYS"


def set_delays(seed: int, rate: float, most: float = 0.001) -> None:
    """Seeds the delays of `delayed` functions: each call sleeps with chance `rate`,
    for up to `most` seconds (an async one yields up to 8 times instead).

    Worker processes started afterwards (a plan run with `processes`) seed theirs
    the same, each drawing in the order of its own calls: the setting is also named
    in the environment they inherit.

    A sleep is an input that reorders threads, never a wait for something."""
    _seed_delays(seed, rate, most)
    os.environ[DELAYS] = f"{seed} {rate!r} {most!r}"


def _seed_delays(seed: int, rate: float, most: float) -> None:
    global _delay_random, _delay_rate, _delay_most  # noqa: PLW0603 - test knobs
    with _delay_lock:
        _delay_random = random.Random(seed)
        _delay_rate = rate
        _delay_most = most


def _inherit_delays() -> None:
    # In a worker process of a test's run: the delays its `set_delays` chose.
    named = os.environ.get(DELAYS)
    if named is not None:
        seed, rate, most = named.split()
        _seed_delays(int(seed), float(rate), float(most))


_inherit_delays()


def with_delays(plan: Plan, kinds: frozenset[str] = DELAYED_KINDS) -> Plan:
    """The plan with every user function of a stage in `kinds` wrapped in a random
    delay (see `set_delays`); the wrapped functions keep being plain or async."""
    tasks = []
    for task in plan.tasks:
        if task.kind in kinds and task.function is not None:
            task = dataclasses.replace(task, function=_delayed_ref(task.function))
        tasks.append(task)
    return dataclasses.replace(plan, tasks=tuple(tasks))


def _delayed_ref(ref: FunctionRef) -> FunctionRef:
    # The original's name travels after its own arguments, so that the wrapper
    # finds it last whatever leads (the event; `acc, event`; `parts`).
    original = _original(ref.module, ref.name, ref.path)
    name = "delayed_async" if _is_async(original) else "delayed"
    args = (*ref.args, ref.module, ref.name, ref.path)
    return FunctionRef("reflow_lang.testing", name, None, args, ref.display)


def _original(module: str, name: str, path: str | None) -> Any:
    key = (module, name, path)
    with _delay_lock:
        function = _originals.get(key)
    if function is None:
        # Threads of a worker's pool may resolve it at once: `load_module` is safe
        # for that, and they all get the same function.
        function = resolve_function(FunctionRef(module, name, path))
        with _delay_lock:
            _originals[key] = function
    return function


def _draw() -> float:
    with _delay_lock:
        if _delay_random.random() >= _delay_rate:
            return 0.0
        return _delay_random.uniform(0.0, _delay_most)


def delayed(*args: Any) -> Any:
    """Calls the function named by the last three arguments after a random delay."""
    *call, module, name, path = args
    delay = _draw()
    if delay:
        time.sleep(delay)
    return _original(module, name, path)(*call)


async def delayed_async(*args: Any) -> Any:
    """Like `delayed`, for an async function: yields to the loop a random number of
    times (never a wall-clock wait)."""
    *call, module, name, path = args
    yields = 1 + int(8 * _draw() / _delay_most) if _delay_most else 1
    for _ in range(yields):
        await asyncio.sleep(0)
    return await _original(module, name, path)(*call)


def _is_async(function: Any) -> bool:
    return inspect.iscoroutinefunction(function) or inspect.iscoroutinefunction(
        getattr(function, "__call__", None)  # noqa: B004 - a callable object's method
    )


@contextlib.contextmanager
def observing_queues(*, fused: bool = True) -> Iterator[list[Put]]:
    """Records what every in-memory queue accepts, in the order it accepts it.

    With `fused=False` no stages are fused, so that every queue of the plan carries
    its stream (fused stages hand batches over without their queue).
    """
    from reflow_lang.runtime import fusion, job, queue

    puts: list[Put] = []
    put_nowait = queue.MemoryQueue.put_nowait
    fuse = fusion.fuse

    def observed(self: queue.MemoryQueue, item: Item) -> queue.Credit:
        credit = put_nowait(self, item)
        if isinstance(item, Instruction):
            if credit.accepted:
                puts.append(Put(self.name, item))
        elif credit.accepted:
            puts.append(Put(self.name, item.slice(0, min(credit.accepted, len(item)))))
        return credit

    queue.MemoryQueue.put_nowait = observed  # type: ignore[method-assign]
    if not fused:
        # `Job` looks `fuse` up in its own module's namespace at build time.
        job.fuse = lambda plan: [(task,) for task in plan.tasks]  # type: ignore[attr-defined]
    try:
        yield puts
    finally:
        queue.MemoryQueue.put_nowait = put_nowait  # type: ignore[method-assign]
        job.fuse = fuse  # type: ignore[attr-defined]

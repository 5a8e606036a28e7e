"""The compiled plan: the only thing the front end and the runtime share.

The front end compiles a `.flow` file into a `Plan`; the runtime runs a `Plan` and
never sees the parser, the AST or the IR. A plan is plain data: every name is
resolved, every option typed and defaulted, every argument a literal (flow
parameters are already substituted), and it round-trips through JSON so that it can
be written to a file or sent to another machine.

Streams become queues: a queue has one producing task and one or more consuming
tasks (fan-out: each consumer sees every event, with its own committed offset).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from reflow_lang.errors import PlanError

PLAN_VERSION = 1

# The queue bound when a stream sets no `capacity`, in events.
DEFAULT_CAPACITY = 2048

# A literal argument: what msgpack and JSON both carry. Durations are float seconds.
Value = None | bool | int | float | str | list["Value"]

StageKind = Literal[
    "source",
    "map",
    "flat_map",
    "filter",
    "key_by",
    "rejoin",
    "count",
    "reduce",
    "merge",
    "join",
    "sink",
]
OrderKind = Literal["total", "partial", "keyed", "none"]
PolicyKind = Literal["fail", "skip", "retry", "dead_letter"]
Delivery = Literal["at_most_once", "at_least_once", "exactly_once"]
JoinHow = Literal["inner", "left", "outer"]

STAGE_KINDS: tuple[str, ...] = StageKind.__args__  # type: ignore[attr-defined]


@dataclass(frozen=True, slots=True)
class FunctionRef:
    """A user function, as the runtime imports it.

    Attributes:
        module: the importable module name (`reflow_lang.stdlib.text`, `builtins`,
            or a user module's name).
        name: the attribute path inside the module (`lines`, `str.lower`).
        path: the file to load the module from, for a `use python` module found next
            to the flow file; `None` when `module` is importable by name.
        args: the arguments after the event (or after `parts`, `acc, event`, `batch`).
        display: how the flow file spells it (`text.words`), for messages.
    """

    module: str
    name: str
    path: str | None = None
    args: tuple[Value, ...] = ()
    display: str = ""


@dataclass(frozen=True, slots=True)
class Key:
    """How a key is read from an event: the event itself, a field, or a function."""

    kind: Literal["self", "field", "function"]
    field: str | None = None
    function: FunctionRef | None = None

    def __str__(self) -> str:
        if self.kind == "field":
            return json.dumps(self.field)
        if self.kind == "function" and self.function is not None:
            return (
                self.function.display or f"{self.function.module}.{self.function.name}"
            )
        return "self"


@dataclass(frozen=True, slots=True)
class Order:
    """The order a stage keeps on its output (and so needs from its input)."""

    kind: OrderKind
    key: Key | None = None

    def __str__(self) -> str:
        return f"keyed({self.key})" if self.kind == "keyed" else self.kind


@dataclass(frozen=True, slots=True)
class ErrorPolicy:
    """What an exception in the stage's user function does.

    Attributes:
        kind: `fail`, `skip`, `retry` (then fail) or `dead_letter`.
        retries: how many times `retry` calls the function again.
        dead_letter: for `dead_letter`, the queue that receives failed events.
    """

    kind: PolicyKind = "fail"
    retries: int = 0
    dead_letter: str | None = None


@dataclass(frozen=True, slots=True)
class Queue:
    """A stream between tasks: bounded, one producer, one or more consumers."""

    name: str
    producer: str
    consumers: tuple[str, ...]
    capacity: int


@dataclass(frozen=True, slots=True)
class Task:
    """One stage of the flow, with everything the runtime needs to run its workers.

    Attributes:
        name: unique within the plan, readable (`words`, `words/map#2`).
        kind: the stage kind.
        location: `file:line:col` of the stage in the flow file, for messages.
        function: the user function; `None` for `count`, `merge` and `join`.
        inputs: the queues read, in order (a join's left then right; a merge's
            inputs); empty for a source.
        output: the queue written; `None` for a sink.
        workers: parallel workers.
        order: the order the stage keeps (for a sink: the order it needs).
        batch: events per call of the function and per queue item; `None` lets the
            runtime choose.
        timeout: seconds a call of the function may take; `None` for no limit.
        on_error: the error policy.
        expansion: a flat_map's starting hint of outputs per input.
        rewindable: a source whose function accepts `start`.
        by: the grouping key of `count` and `reduce` (`None`: one group).
        initial: the initial accumulator of `reduce`.
        join_keys: a join's left and right keys.
        how: a join's kind.
        split: the flat_map task whose split this stage lies inside (the nearest open
            one), so that dropped parts leave a trace for the rejoin; `None` outside.
        closes: for a rejoin, the flat_map task it closes.
    """

    name: str
    kind: StageKind
    location: str
    function: FunctionRef | None = None
    inputs: tuple[str, ...] = ()
    output: str | None = None
    workers: int = 1
    order: Order = field(default_factory=lambda: Order("total"))
    batch: int | None = None
    timeout: float | None = None
    on_error: ErrorPolicy = field(default_factory=ErrorPolicy)
    expansion: float | None = None
    rewindable: bool = False
    by: Key | None = None
    initial: Value = None
    join_keys: tuple[Key, ...] = ()
    how: JoinHow | None = None
    split: str | None = None
    closes: str | None = None

    @property
    def dead_letter(self) -> str | None:
        """The queue failed events go to, if the policy is `dead_letter`."""
        return self.on_error.dead_letter


@dataclass(frozen=True, slots=True)
class Plan:
    """A whole flow, compiled: tasks in topological order and the queues between them."""

    flow: str
    file: str
    delivery: Delivery
    parameters: tuple[tuple[str, Value], ...]
    tasks: tuple[Task, ...]
    queues: tuple[Queue, ...]
    version: int = PLAN_VERSION

    def task(self, name: str) -> Task:
        """The task called `name`."""
        for task in self.tasks:
            if task.name == name:
                return task
        msg = f"plan of `{self.flow}` has no task `{name}`"
        raise PlanError(msg)

    def queue(self, name: str) -> Queue:
        """The queue called `name`."""
        for queue in self.queues:
            if queue.name == name:
                return queue
        msg = f"plan of `{self.flow}` has no queue `{name}`"
        raise PlanError(msg)

    def to_dict(self) -> dict[str, Any]:
        """The plan as JSON-ready data (tuples become lists)."""
        return asdict(self)

    def fingerprint(self) -> str:
        """A digest of what the plan does, whatever host compiled it.

        Two hosts that compiled the same flow with the same parameters get the same
        fingerprint, although their files may lie in other folders: paths and
        source locations are left out.
        """
        meaning = _without(self.to_dict(), {"file", "path", "location"})
        text = json.dumps(meaning, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]

    def to_json(self) -> str:
        """The plan as stable, indented JSON text."""
        return json.dumps(self.to_dict(), indent=2, sort_keys=False) + "\n"

    @classmethod
    def from_json(cls, text: str) -> Plan:
        """Reads a plan written by `to_json`; raises `PlanError` if it is not one."""
        try:
            return cls.from_dict(json.loads(text))
        except (ValueError, TypeError, KeyError) as exc:
            msg = f"not a reflow plan: {exc}"
            raise PlanError(msg) from exc

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Plan:
        """Rebuilds a plan from `to_dict` output."""
        if data.get("version") != PLAN_VERSION:
            msg = f"plan version {data.get('version')!r}; this runtime reads {PLAN_VERSION}"
            raise PlanError(msg)
        return cls(
            flow=data["flow"],
            file=data["file"],
            delivery=data["delivery"],
            parameters=tuple((k, v) for k, v in data["parameters"]),
            tasks=tuple(_task(t) for t in data["tasks"]),
            queues=tuple(
                Queue(q["name"], q["producer"], tuple(q["consumers"]), q["capacity"])
                for q in data["queues"]
            ),
            version=data["version"],
        )


def _function(data: dict[str, Any] | None) -> FunctionRef | None:
    if data is None:
        return None
    return FunctionRef(
        data["module"], data["name"], data["path"], tuple(data["args"]), data["display"]
    )


def _key(data: dict[str, Any] | None) -> Key | None:
    if data is None:
        return None
    return Key(data["kind"], data["field"], _function(data["function"]))


def _task(data: dict[str, Any]) -> Task:
    order = data["order"]
    policy = data["on_error"]
    return Task(
        name=data["name"],
        kind=data["kind"],
        location=data["location"],
        function=_function(data["function"]),
        inputs=tuple(data["inputs"]),
        output=data["output"],
        workers=data["workers"],
        order=Order(order["kind"], _key(order["key"])),
        batch=data["batch"],
        timeout=data["timeout"],
        on_error=ErrorPolicy(policy["kind"], policy["retries"], policy["dead_letter"]),
        expansion=data["expansion"],
        rewindable=data["rewindable"],
        by=_key(data["by"]),
        initial=data["initial"],
        join_keys=tuple(k for k in map(_key, data["join_keys"]) if k is not None),
        how=data["how"],
        split=data["split"],
        closes=data["closes"],
    )


def _without(data: Any, keys: set[str]) -> Any:
    # `data` with the entries named by `keys` left out of every mapping in it.
    if isinstance(data, dict):
        return {k: _without(v, keys) for k, v in data.items() if k not in keys}
    if isinstance(data, list | tuple):
        return [_without(item, keys) for item in data]
    return data

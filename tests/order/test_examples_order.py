"""The order the checker states for each stream of each example holds when run.

For every `examples/*.flow`, the IR states each stream's order; the examples run with
random delays in their user functions (hypothesis draws the seed, how often a call
sleeps, and whether stages are fused: the schedule is the input), every event put
into a queue is observed with its stamp, and each stream's stamps must keep the
stated order, whatever the schedule:

- `total`: per origin, stamps strictly increase;
- `partial`: per origin, the parent stamp (the stamp up to the last split) never
  decreases;
- `keyed(K)`: per origin and key, stamps strictly increase;
- `none`: nothing.

The sinks' outputs must equal those of an undelayed run: exactly when the stream
into the sink is in total order, as a multiset otherwise.

The delayed runs go in both modes (the `mode` fixture), against an undelayed run in
this process. The stamps are observed only in local mode (`observing_queues` sees
the in-memory queues; in process mode the queues are in the queue server's process),
and so is fusion drawn: in process mode the delayed outputs alone are checked, with
the delays' seed carried to the workers (`set_delays`).
"""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from collections import defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from reflow_lang import testing
from reflow_lang.frontend import ir
from reflow_lang.frontend.api import compile_file
from reflow_lang.plan import Key, Plan
from reflow_lang.runtime.events import END_OF_SOURCE, Batch, Stamp
from reflow_lang.runtime.functions import key_reader
from reflow_lang.testing import (
    Put,
    collected,
    observing_queues,
    run_plan,
    set_delays,
    with_collectors,
    with_delays,
)

from .helpers import examples

ROOT = Path(__file__).resolve().parents[2]
FLOWS = sorted((ROOT / "examples").glob("*.flow"))

# The key of an event in a keyed stream, and a stream's observed events in put order.
KeyOf = Callable[[Any], Any]
Observed = list[tuple[str, Stamp, Any]]  # (origin, stamp, value)


@dataclasses.dataclass(frozen=True, slots=True)
class StreamOrder:
    """What the checker states for one stream: its order and, if keyed, the key."""

    kind: str
    key: KeyOf | None = None


def _compile(flow: Path) -> tuple[Plan, ir.Flow]:
    compiled = compile_file(f"examples/{flow.name}")
    assert compiled.plan is not None, compiled.diagnostics
    assert isinstance(compiled.ir, ir.Flow)
    return compiled.plan, compiled.ir


def _stated_orders(plan: Plan, flow: ir.Flow) -> dict[str, StreamOrder]:
    """Each stream's order as the IR states it, with a key reader for keyed ones."""
    orders: dict[str, StreamOrder] = {}
    for stream in flow.streams:
        assert stream.order is not None, stream.name
        if stream.order.kind != "keyed":
            orders[stream.name] = StreamOrder(stream.order.kind)
            continue
        key = _plan_key(plan, stream.producer, str(stream.order.key))
        orders[stream.name] = StreamOrder("keyed", _key_of(key, stream.name))
    assert set(orders) == {queue.name for queue in plan.queues}
    return orders


def _plan_key(plan: Plan, producer: str, spelled: str) -> Key:
    # The IR spells the key as the flow does; the plan's producer keeps the same key.
    order = plan.task(producer).order
    assert order.kind == "keyed" and order.key is not None, producer
    assert str(order.key) == spelled
    return order.key


def _key_of(key: Key, stream: str) -> KeyOf:
    reader = key_reader(key, stream)
    return reader if reader is not None else _identity


def _identity(value: Any) -> Any:
    return value


def _outputs(plan: Plan, mode: str = "local") -> dict[str, list[Any]]:
    runnable, keys = with_collectors(plan)
    result = run_plan(runnable, processes=mode == "processes")
    assert result.ok, result.error
    return {sink: collected(key)[0] for sink, key in keys.items()}


def _by_queue(puts: list[Put]) -> dict[str, list[Put]]:
    queues: dict[str, list[Put]] = defaultdict(list)
    for put in puts:
        queues[put.queue].append(put)
    return queues


def _events(puts: list[Put]) -> Iterator[tuple[str, Stamp, Any]]:
    for put in puts:
        if isinstance(put.item, Batch) and len(put.item):
            stamps = put.item.stamps.materialise()
            assert len(stamps) == len(put.item.values)
            for stamp, value in zip(stamps, put.item.values, strict=True):
                yield put.item.stamps.origin, stamp, value


def _violations(order: StreamOrder, events: Observed) -> list[str]:
    """The places where the observed events break the stated order."""
    if order.kind == "none":
        return []

    last: dict[Any, Stamp] = {}
    broken = []
    for origin, stamp, value in events:
        if order.kind == "partial":
            group, seen, strict = origin, stamp[:-1], False
        elif order.kind == "keyed":
            assert order.key is not None
            group, seen, strict = (origin, order.key(value)), stamp, True
        else:
            group, seen, strict = origin, stamp, True
        before = last.get(group)
        if before is not None and (seen <= before if strict else seen < before):
            broken.append(f"{group!r}: {seen} after {before}")
        last[group] = seen
    return broken


def _check_orders(
    puts: list[Put], orders: dict[str, StreamOrder], *, fused: bool
) -> None:
    queues = _by_queue(puts)
    if not fused:
        assert set(queues) == set(orders)  # unfused, every stream is a queue hop
    for name, observed in queues.items():
        # End-of-source comes once per queue, after every event.
        assert [put.item for put in observed].count(END_OF_SOURCE) == 1, name
        assert observed[-1].item == END_OF_SOURCE, name

        broken = _violations(orders[name], list(_events(observed)))
        assert broken == [], f"stream `{name}` ({orders[name].kind}): {broken[:5]}"


def _same_outputs(
    plan: Plan, orders: dict[str, StreamOrder], got: dict, expected: dict
) -> None:
    assert set(got) == set(expected)
    for sink, values in got.items():
        (stream,) = plan.task(sink).inputs
        if orders[stream].kind == "total":
            assert values == expected[sink], sink
        else:
            assert sorted(map(repr, values)) == sorted(map(repr, expected[sink])), sink


def test_examples_order_every_example_is_covered() -> None:
    assert len(FLOWS) >= 5
    assert {flow.name for flow in FLOWS} >= {"wordcount.flow", "readability.flow"}


@pytest.mark.parametrize("flow", FLOWS, ids=lambda path: path.stem)
def test_examples_order_stated_orders_hold_under_random_delays(
    flow: Path, mode: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(ROOT)  # the examples' default paths are relative to the root
    plan, flow_ir = _compile(flow)
    orders = _stated_orders(plan, flow_ir)
    expected = _outputs(plan)
    delayed = with_delays(plan)

    # Two in process mode: a run of an example there takes a few seconds.
    @examples(mode, 5, processes=2)
    @given(
        seed=st.integers(0, 2**32 - 1),
        rate=st.sampled_from([0.001, 0.01, 0.05]),
        fused=st.booleans() if mode == "local" else st.just(True),
    )
    def check(seed: int, rate: float, fused: bool) -> None:
        set_delays(seed, rate)
        if mode == "local":
            with observing_queues(fused=fused) as puts:
                got = _outputs(delayed)
            _check_orders(puts, orders, fused=fused)
        else:
            got = _outputs(delayed, mode)

        _same_outputs(plan, orders, got, expected)

    check()


def test_examples_order_delays_reach_worker_processes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A process started after `set_delays`, as a worker is, draws the same delays.
    monkeypatch.delenv(testing.DELAYS, raising=False)  # restored after the test
    set_delays(7, 0.5, 0.002)
    here = [testing._draw() for _ in range(8)]

    code = "from reflow_lang import testing as t; print([t._draw() for _ in range(8)])"
    child = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert child.stdout.strip() == repr(here)
    assert 0 < here.count(0.0) < 8  # some calls sleep, some do not


# Eight threads resolve one delayed function at once, in a process that has not
# loaded its module yet: as the offload pool of a worker process does.
RACE = """
import threading
from reflow_lang import testing
start = threading.Barrier(8)
def call():
    start.wait()
    testing._original("shop", "invoice_line", "examples/shop.py")
threads = [threading.Thread(target=call) for _ in range(8)]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join()
"""


def test_examples_order_delayed_functions_load_their_module_once_in_threads(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # `load_module` registers a module before it runs it: a thread resolving the
    # function meanwhile would see the module half made (an `AttributeError`).
    monkeypatch.chdir(ROOT)
    child = subprocess.run(
        [sys.executable, "-c", RACE], capture_output=True, text=True, check=False
    )
    assert (child.returncode, child.stderr) == (0, "")


def test_examples_order_violations_are_found() -> None:
    # The checks are not vacuous: each order rejects a sequence that breaks it.
    total = [("s", (0,), "a"), ("s", (2,), "b"), ("s", (1,), "c")]
    partial = [("s", (0, 1), "a"), ("s", (1, 0), "b"), ("s", (0, 2), "c")]
    keyed = [("s", (0,), "a"), ("s", (1,), "b"), ("s", (0,), "a")]

    assert _violations(StreamOrder("total"), total) == ["'s': (1,) after (2,)"]
    assert _violations(StreamOrder("partial"), partial) == ["'s': (0,) after (1,)"]
    assert _violations(StreamOrder("partial"), partial[:2]) == []
    assert _violations(StreamOrder("keyed", _identity), keyed) == [
        "('s', 'a'): (0,) after (0,)"
    ]
    assert _violations(StreamOrder("none"), total) == []

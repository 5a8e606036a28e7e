"""Order with several workers: total, keyed, partial and none, for every schedule.

Each example draws the worker count, the batch size and a delay per event (turns of
the event loop awaited by the user function); the assertions hold for any of them.
Every test that runs a job runs in both modes (the `mode` fixture); the `Ledger`
unit test is about this process's queue and stays local.

In process mode each worker unit (`job.units_of`) is a process, and a stage is in
one unit: all workers of the stage under test, the only one that logs, are tasks of
one process's loop, which appends `orderfns.log` to a file as it calls. The log is
that process's own order of calls, so the serial-per-key and parent-in-sequence
checks prove there what they prove locally; the tests check that one process wrote
the whole log.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from reflow_lang.runtime import reorder
from reflow_lang.runtime.events import Batch, Offsets
from reflow_lang.runtime.ports import QueueInput
from reflow_lang.runtime.queue import MemoryQueue
from reflow_lang.runtime.reorder import Ledger

from .helpers import examples, fns, only, run

workers = st.integers(min_value=1, max_value=5)
batches = st.integers(min_value=1, max_value=6)
delays = st.lists(st.integers(min_value=0, max_value=12), min_size=1, max_size=16)
# Events per unit below which batches are not cut: small here, so that the parts of
# one parent and the lanes of one batch do run on several workers.
chunks = st.sampled_from([1, 2, 3, reorder.MIN_CHUNK])


def test_total_order_equals_source_order(mode: str) -> None:
    @examples(mode, 25)
    @given(
        count=st.integers(min_value=0, max_value=60),
        workers=workers,
        batch=batches,
        delays=delays,
    )
    def check(count: int, workers: int, batch: int, delays: list[int]) -> None:
        fns.configure(range(count), delays=delays)
        _, sinks = run(
            "xs = source f.events()\n"
            f"xs | map f.work [workers = {workers}, batch = {batch}] | sink f.work\n",
            mode,
        )
        assert only(sinks) == list(range(count))

    check()


def test_keyed_order_keeps_each_keys_order(mode: str) -> None:
    @examples(mode, 25)
    @given(
        keys=st.lists(st.integers(min_value=0, max_value=4), max_size=50),
        workers=workers,
        batch=st.integers(min_value=1, max_value=12),
        delays=delays,
        chunk=chunks,
    )
    def check(
        keys: list[int], workers: int, batch: int, delays: list[int], chunk: int
    ) -> None:
        events = [(key, position) for position, key in enumerate(keys)]
        fns.configure(events, delays=delays, chunk=chunk)
        _, sinks = run(
            "xs = source f.events()\n"
            f"xs | map f.work [workers = {workers}, batch = {batch}, "
            "order = keyed(f.key_of)] | sink f.work\n",
            mode,
        )

        out = only(sinks)
        assert sorted(out) == sorted(events)
        assert _per_key(out) == _per_key(events)
        # Equal keys are processed one after another, in stamp order.
        log = fns.log()
        started = [event for kind, event in log if kind == "start"]
        assert _per_key(started) == _per_key(events)
        _assert_serial_per_key(log, lambda event: event[0])
        assert len(fns.processes()) == (1 if events else 0)

    check()


def test_partial_order_finishes_a_parent_before_the_next_starts(mode: str) -> None:
    @examples(mode, 25)
    @given(
        parts=st.lists(st.integers(min_value=0, max_value=10), max_size=12),
        workers=workers,
        batch=st.integers(min_value=1, max_value=12),
        delays=delays,
        chunk=chunks,
    )
    def check(
        parts: list[int], workers: int, batch: int, delays: list[int], chunk: int
    ) -> None:
        fns.configure(
            range(len(parts)), delays=delays, parts=dict(enumerate(parts)), chunk=chunk
        )
        _, sinks = run(
            "xs = source f.events()\n"
            "xs | flat_map f.explode\n"
            f"   | map f.work [workers = {workers}, batch = {batch}, order = partial]\n"
            "   | rejoin f.gather | sink f.work\n",
            mode,
        )

        expected = [
            tuple((parent, i) for i in range(n)) for parent, n in enumerate(parts)
        ]
        assert only(sinks) == expected
        _assert_parents_in_sequence(fns.log())
        assert len(fns.processes()) == (1 if any(parts) else 0)

    check()


def test_partial_order_runs_the_parts_of_a_parent_on_several_workers(
    mode: str,
) -> None:
    # The chunk reaches the stage's process: with one event per unit, the parts of
    # a parent start on four workers before the first of them ends.
    fns.configure([0], parts={0: 8}, delays=[4], chunk=1)
    _, sinks = run(
        "xs = source f.events()\n"
        "xs | flat_map f.explode\n"
        "   | map f.work [workers = 4, batch = 8, order = partial]\n"
        "   | rejoin f.gather | sink f.work\n",
        mode,
    )

    assert only(sinks) == [tuple((0, i) for i in range(8))]
    first_end = [kind for kind, _ in fns.log()].index("end")
    assert first_end == 4


def test_no_order_gives_every_event_once(mode: str) -> None:
    @examples(mode, 25)
    @given(
        count=st.integers(min_value=0, max_value=60),
        workers=workers,
        batch=batches,
        delays=delays,
    )
    def check(count: int, workers: int, batch: int, delays: list[int]) -> None:
        fns.configure(range(count), delays=delays)
        _, sinks = run(
            "xs = source f.events()\n"
            f"xs | map f.work [workers = {workers}, batch = {batch}, order = none]"
            " | sink f.work\n",
            mode,
        )
        assert sorted(only(sinks)) == list(range(count))

    check()


def test_no_order_lets_a_fast_batch_overtake_a_slow_one(mode: str) -> None:
    # Event 0 ends only once event 5 has started. Two workers take a unit only
    # while fewer than two are out, so every event between them has left by then:
    # with `none` they overtake event 0. (An event, not a count of turns: in
    # process mode events reach the stage over a socket, later than any count of
    # turns would wait for.)
    fns.configure(range(6))
    _, sinks = run(
        "xs = source f.events()\n"
        "xs | map f.held_back [workers = 2, batch = 1, order = none] | sink f.work\n",
        mode,
    )
    assert sorted(only(sinks)) == list(range(6))
    assert only(sinks)[:4] == [1, 2, 3, 4]


def _per_key(events: list[Any]) -> dict[Any, list[Any]]:
    grouped: dict[Any, list[Any]] = defaultdict(list)
    for event in events:
        grouped[event[0]].append(event)
    return dict(grouped)


def _assert_serial_per_key(
    log: list[tuple[str, Any]], key: Callable[[Any], Any]
) -> None:
    running: dict[Any, Any] = {}
    for kind, event in log:
        if kind == "start":
            assert key(event) not in running, f"{event} started beside {running}"
            running[key(event)] = event
        else:
            del running[key(event)]


def _assert_parents_in_sequence(log: list[tuple[str, Any]]) -> None:
    # No part of parent i + 1 starts before every part of parent i has ended.
    open_parts: dict[int, int] = defaultdict(int)
    current = -1
    for kind, (parent, _) in log:
        if kind == "start":
            assert parent >= current, f"a part of {parent} started after {current}"
            if parent > current:
                assert not any(open_parts.values()), f"{parent} began beside others"
                current = parent
            open_parts[parent] += 1
        else:
            open_parts[parent] -= 1


def test_keyed_order_inside_a_split_keeps_what_the_rejoin_needs(mode: str) -> None:
    @examples(mode, 25)
    @given(
        parts=st.lists(st.integers(min_value=0, max_value=8), max_size=10),
        workers=workers,
        batch=st.integers(min_value=1, max_value=12),
        delays=delays,
        chunk=chunks,
    )
    def check(
        parts: list[int], workers: int, batch: int, delays: list[int], chunk: int
    ) -> None:
        fns.configure(
            range(len(parts)), delays=delays, parts=dict(enumerate(parts)), chunk=chunk
        )
        _, sinks = run(
            "xs = source f.events()\n"
            "xs | flat_map f.explode\n"
            f"   | map f.work [workers = {workers}, batch = {batch},"
            " order = keyed(f.key_of)]\n"
            "   | rejoin f.gather | sink f.work\n",
            mode,
        )
        expected = [
            tuple((parent, i) for i in range(n)) for parent, n in enumerate(parts)
        ]
        assert only(sinks) == expected

    check()


async def test_ledger_acknowledges_only_the_delivered_prefix() -> None:
    queue = MemoryQueue("q", 16, ["stage"])
    ledger = Ledger(QueueInput([queue], "stage"))
    for start in (0, 3, 5):
        queue.put_nowait(Batch([0] * (2 if start == 3 else 3), Offsets("s", 0, 1)))
    for _ in range(3):
        await ledger.take(16)
    first, second, third = (ledger.assign(0, n) for n in (3, 2, 3))
    assert (first, second, third) == (0, 3, 5)

    ledger.released(0, [(3, 5)])  # the second unit finished first
    await ledger.ack([2])
    assert await queue.committed("stage") == 0
    ledger.released(0, [(0, 3)])
    await ledger.ack([3])
    assert await queue.committed("stage") == 5
    ledger.released(0, [(5, 6), (7, 8)])  # a keyed lane: positions 5 and 7
    await ledger.ack([2])
    assert await queue.committed("stage") == 6

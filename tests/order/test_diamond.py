"""Diamonds: one stream read by two chains that meet again never deadlock.

The queues hold one or two events and one branch is 100 times slower (each of its
calls awaits 100 turns of the event loop); whichever branch is behind, the `merge`
or `join` where they meet reads whichever input has data, so the fast branch never
waits on a full queue for the slow one forever. Every test runs in both modes (the
`mode` fixture).
"""

from __future__ import annotations

from collections import Counter

import pytest

from .helpers import fns, only, run

COUNT = 40


@pytest.mark.parametrize("capacity", [1, 2])
@pytest.mark.parametrize("slow_side", ["left", "right"])
def test_diamond_through_a_merge_finishes(
    mode: str, capacity: int, slow_side: str
) -> None:
    fns.configure(range(COUNT))
    left, right = ("f.slow", "f.work") if slow_side == "left" else ("f.work", "f.slow")
    _, sinks = run(
        f"xs = source f.events() [capacity = {capacity}]\n"
        f"a = xs | map {left} [capacity = {capacity}]\n"
        f"b = xs | map {right} [capacity = {capacity}]\n"
        f"merge(a, b) | map f.work [capacity = {capacity}] | sink f.work\n",
        mode,
    )
    assert Counter(only(sinks)) == Counter({value: 2 for value in range(COUNT)})


@pytest.mark.parametrize("capacity", [1, 2])
@pytest.mark.parametrize("slow_side", ["left", "right"])
@pytest.mark.parametrize("how", ["inner", "outer"])
def test_diamond_through_a_join_finishes(
    mode: str, capacity: int, slow_side: str, how: str
) -> None:
    events = [(value % 7, value) for value in range(COUNT)]
    fns.configure(events)
    left, right = ("f.slow", "f.work") if slow_side == "left" else ("f.work", "f.slow")
    _, sinks = run(
        f"xs = source f.events() [capacity = {capacity}]\n"
        f"a = xs | map {left} [capacity = {capacity}]\n"
        f"b = xs | filter f.keep | map {right} [capacity = {capacity}]\n"
        f"join a by f.key_of, b by f.key_of [how = {how}] | sink f.work\n",
        mode,
    )
    expected = Counter((x, y) for x in events for y in events if x[0] == y[0])
    assert Counter(only(sinks)) == expected


@pytest.mark.parametrize("capacity", [1, 2])
def test_diamond_with_parallel_workers_on_the_slow_side(
    mode: str, capacity: int
) -> None:
    fns.configure(range(COUNT))
    _, sinks = run(
        f"xs = source f.events() [capacity = {capacity}]\n"
        f"a = xs | map f.slow [workers = 3, batch = 1, capacity = {capacity}]\n"
        f"b = xs | map f.work [workers = 2, order = none, capacity = {capacity}]\n"
        f"merge(a, b) | sink f.work\n",
        mode,
    )
    assert Counter(only(sinks)) == Counter({value: 2 for value in range(COUNT)})

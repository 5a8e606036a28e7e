"""User functions for the runtime tests, referenced from hand-written plans.

What a stateful function saw, the test reads back through `note` and `noted`: kept
in `STATE` when the job runs in this process, and in a file of the shared folder
(`reflow_lang.testing.shared_folder`) when it runs as worker processes, whose
memory the test cannot read.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import sys
import threading
import time
from collections.abc import AsyncIterator, Iterable, Iterator
from typing import Any

from reflow_lang.testing import shared_folder


def numbers(count: int, start: int = 0) -> Iterator[int]:
    """A rewindable source of `0 .. count-1`."""
    return iter(range(start, count))


def plain_numbers(count: int) -> Iterator[int]:
    """A source that cannot rewind."""
    yield from range(count)


async def async_numbers(count: int) -> AsyncIterator[int]:
    """An async source."""
    for number in range(count):
        await asyncio.sleep(0)
        yield number


def double(event: int) -> int:
    return event * 2


async def async_double(event: int) -> int:
    await asyncio.sleep(0)
    return event * 2


def add(event: int, amount: int) -> int:
    return event + amount


def is_even(event: int) -> bool:
    return event % 2 == 0


def never(event: Any) -> bool:
    return False


def repeat_n(event: int) -> list[int]:
    """`event` copies of `event`: a split into `event` parts."""
    return [event] * event


def parity(event: int) -> str:
    return "even" if event % 2 == 0 else "odd"


def fail_on_3(event: int) -> int:
    if event == 3:
        msg = f"three is bad: {event}"
        raise ValueError(msg)
    return event


def exit_on_3(event: int) -> int:
    if event == 3:
        sys.exit("bad config")
    return event


async def async_exit_on_3(event: int) -> int:
    await asyncio.sleep(0)
    return exit_on_3(event)


def fail_on_multiples_of_4(event: int) -> int:
    if event % 4 == 0:
        msg = f"{event} is a multiple of four"
        raise ValueError(msg)
    return event


def total(acc: int, event: int) -> int:
    return acc + event


def records() -> list[dict[str, Any]]:
    return [
        {"user": "ann", "amount": 1},
        {"user": "bob", "amount": 2},
        {"user": "ann", "amount": 3},
    ]


def add_amount(acc: int, event: dict[str, Any]) -> int:
    return acc + event["amount"]


def jittery_double(event: int) -> int:
    """Doubles after a random delay of up to a millisecond: the delays are input that
    reorders the completion of parallel batches."""
    time.sleep(random.random() / 1000)
    return event * 2


# What the stateful test functions saw, by name, when they run in this process;
# also what a function keeps for itself (`flaky`), and the job the control sinks
# act on (`STATE["job"]`).
STATE: dict[str, Any] = {}


def note(name: str, values: Iterable[Any]) -> None:
    """Appends `values` (JSON values) to what `noted(name)` answers."""
    folder = shared_folder()
    if folder is None:
        STATE.setdefault(name, []).extend(values)
        return
    # Whole lines in one unbuffered append: the lines of two writers never mix.
    lines = "".join(json.dumps(value) + "\n" for value in values)
    with open(_noted_path(folder, name), "ab", buffering=0) as file:
        file.write(lines.encode("utf-8"))


def noted(name: str) -> list[Any]:
    """What was noted under `name`, in order, by this process or a worker's."""
    folder = shared_folder()
    if folder is None:
        return list(STATE.get(name, []))
    path = _noted_path(folder, name)
    if not os.path.exists(path):
        return []
    with open(path, encoding="utf-8") as file:
        return [json.loads(line) for line in file]


def forget(name: str) -> None:
    """Forgets what was noted under `name` in this process (a test run again)."""
    STATE.pop(name, None)


def _noted_path(folder: str, name: str) -> str:
    return os.path.join(folder, name.replace("/", "~") + ".noted")


def half_sink(batch: list[Any], name: str) -> int:
    """Accepts the first half of each batch (at least one event)."""
    accepted = max(1, len(batch) // 2)
    note(name, batch[:accepted])
    note(f"{name}/calls", [len(batch)])
    return accepted


def _end_half_sink(name: str) -> None:
    note(f"{name}/ended", ["end"])


half_sink.end = _end_half_sink  # type: ignore[attr-defined]


async def async_sink(batch: list[Any], name: str) -> None:
    await asyncio.sleep(0)
    note(name, batch)


def flaky(event: int, failures: int, name: str) -> int:
    """Fails the first `failures` calls for each event, then returns it."""
    calls = STATE.setdefault(name, {})
    calls[event] = calls.get(event, 0) + 1
    if calls[event] <= failures:
        msg = f"attempt {calls[event]} at {event}"
        raise ConnectionError(msg)
    return event


def words_or_fail(event: int) -> list[int]:
    if event == 2:
        msg = "no parts for 2"
        raise KeyError(msg)
    return [event, event]


def failing_source(count: int, fail_at: int, start: int = 0) -> Iterator[int]:
    """A rewindable source that raises when it reaches `fail_at` (every time)."""
    for number in range(start, count):
        if number == fail_at:
            msg = f"cannot read {number}"
            raise OSError(msg)
        yield number


def picky_sink(batch: list[Any], name: str) -> None:
    """Refuses a batch holding 3; keeps the others."""
    if 3 in batch:
        msg = "3 is not welcome"
        raise ValueError(msg)
    note(name, batch)


def slow_double(event: int) -> int:
    return event * 2


def failing_end_sink(batch: list[Any]) -> None:
    return None


def _failing_end() -> None:
    msg = "cannot close"
    raise OSError(msg)


failing_end_sink.end = _failing_end  # type: ignore[attr-defined]


def unhashable(event: int) -> Any:
    return [event] if event == 1 else event


async def async_fail_on_3(event: int) -> int:
    await asyncio.sleep(0)
    return fail_on_3(event)


async def forever(event: int) -> int:
    await asyncio.Event().wait()
    return event


class FakeClock:
    """A clock that moves only when told to: `slow_on_3` moves it for event 3 (in a
    local job, which runs on this clock)."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


CLOCK = FakeClock()


def slow_on_3(event: int, seconds: float, real: bool) -> int:
    """Takes `seconds` for event 3: on `CLOCK`, or for `real` (a worker process runs
    on the real clock, not on this process's fake)."""
    if event == 3:
        if real:
            time.sleep(seconds)
        else:
            CLOCK.now += seconds
    return event


async def endless(start: int = 0) -> AsyncIterator[int]:
    """A source that never ends by itself."""
    number = start
    while True:
        await asyncio.sleep(0)
        yield number
        number += 1


async def stopping_sink(batch: list[Any], name: str, after: int) -> None:
    """Keeps events; stops the job in `STATE["job"]` once it has `after` of them."""
    kept = STATE.setdefault(name, [])
    kept.extend(batch)
    if len(kept) >= after:
        STATE["job"].stop()


async def aborting_sink(batch: list[Any], name: str) -> int:
    """Accepts nothing and aborts the job in `STATE["job"]`."""
    STATE["job"].abort()
    return 0


async def watching_sink(batch: list[Any], name: str, yields: int) -> None:
    """A slow sink recording the most events alive in the job of `STATE["job"]`."""
    for _ in range(yields):
        await asyncio.sleep(0)
    stages = STATE["job"].statistics().stages
    alive = sum((s.queue_depth or 0) + s.held for s in stages)
    STATE[f"{name}/max"] = max(STATE.get(f"{name}/max", 0), alive)
    STATE.setdefault(name, []).extend(batch)


async def marking_sink(batch: list[Any], name: str) -> None:
    """Notes events; its `end` notes the marker `"<end>"` behind them."""
    note(name, batch)


def _end_marking_sink(name: str) -> None:
    note(name, ["<end>"])


marking_sink.end = _end_marking_sink  # type: ignore[attr-defined]


async def yielding_add(event: int, yields: int) -> int:
    """Adds nothing; awaits `sleep(0)` a number of times derived from the event and
    `yields`, so that the schedule is an input of the test."""
    for _ in range((event * 7 + yields) % 5):
        await asyncio.sleep(0)
    return event


def broken_source(start: int = 0) -> list[int]:
    """A source that fails before giving an iterable."""
    msg = "no such table"
    raise LookupError(msg)


def counted_double(event: int, name: str) -> int:
    """Doubles, noting each event it is called with under `name`."""
    note(name, [event])
    return event * 2


async def slow_sink(batch: list[Any], name: str) -> int:
    """Accepts one event per call, after a few turns of the loop."""
    for _ in range(3):
        await asyncio.sleep(0)
    note(name, batch[:1])
    return 1


RELEASE = threading.Event()


def blocking_source(count: int) -> Iterator[int]:
    """Gives `count` events, then blocks its thread until `RELEASE` is set."""
    yield from range(count)
    RELEASE.wait()


def endless_sync(start: int = 0) -> Iterator[int]:
    number = start
    while True:
        yield number
        number += 1


def answering_sink(batch: list[Any], answer: Any) -> Any:
    """A broken sink: answers `answer` whatever it is offered."""
    return answer


def refusing_sink(batch: list[Any], name: str, refusals: int) -> int | None:
    """Accepts nothing for its first `refusals` calls, then everything."""
    note(f"{name}/calls", [len(batch)])
    if len(noted(f"{name}/calls")) <= refusals:
        return 0
    note(name, batch)
    return None


def closed_pipe_sink(batch: list[Any], name: str) -> None:
    """A sink whose reader went away: every call raises `BrokenPipeError`."""
    note(f"{name}/calls", [len(batch)])
    raise BrokenPipeError(32, "Broken pipe")

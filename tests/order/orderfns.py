"""User functions for the order tests, loaded by the flows as `use python orderfns`.

Every function is `async` and first awaits `asyncio.sleep(0)` a number of times
chosen by the test (`configure`): the schedule of the workers is the test's input,
drawn by hypothesis, and no wall clock is involved. Calls are logged so that a test
can check which processing started before which ended.
"""

from __future__ import annotations

import asyncio
import zlib
from collections.abc import AsyncIterator, Iterable, Sequence
from typing import Any

VALUES: list[Any] = []
RIGHT: list[Any] = []
DELAYS: list[int] = [0]
PARTS: dict[Any, int] = {}
DROPPED: set[Any] = set()
TURNS: dict[Any, int] = {}  # delays for given events, overriding `DELAYS`
LOG: list[tuple[str, Any]] = []
OUT: list[Any] = []
GATE: asyncio.Event | None = None
SLOW = 100


def configure(
    values: Iterable[Any],
    *,
    right: Iterable[Any] = (),
    delays: Sequence[int] = (0,),
    parts: dict[Any, int] | None = None,
    dropped: Iterable[Any] = (),
    turns: dict[Any, int] | None = None,
) -> None:
    """Sets what the source gives, the schedule, the splits and the dropped parts."""
    VALUES[:] = list(values)
    RIGHT[:] = list(right)
    DELAYS[:] = list(delays) or [0]
    PARTS.clear()
    PARTS.update(parts or {})
    DROPPED.clear()
    DROPPED.update(dropped)
    TURNS.clear()
    TURNS.update(turns or {})
    LOG.clear()
    OUT.clear()


async def _pause(value: Any) -> None:
    # The delay of a call depends only on its event: the schedule is the input.
    turns = TURNS.get(value)
    if turns is None:
        turns = DELAYS[zlib.crc32(repr(value).encode()) % len(DELAYS)]
    for _ in range(turns):
        await asyncio.sleep(0)


async def events(start: int = 0) -> AsyncIterator[Any]:
    """The configured values, from `start` (rewindable)."""
    for value in VALUES[start:]:
        await asyncio.sleep(0)
        yield value


async def right_events(start: int = 0) -> AsyncIterator[Any]:
    """The configured right-hand values of a join, from `start`."""
    for value in RIGHT[start:]:
        await asyncio.sleep(0)
        yield value


async def work(event: Any) -> Any:
    """The event itself, after its delay; logs when processing starts and ends."""
    LOG.append(("start", event))
    await _pause(event)
    LOG.append(("end", event))
    return event


async def explode(event: Any) -> list[Any]:
    """The parts of a parent: `(event, 0) .. (event, n - 1)`, n from `PARTS`."""
    await _pause(event)
    return [(event, index) for index in range(PARTS.get(event, 0))]


async def keep(part: Any) -> bool:
    """Whether a part survives (not in `DROPPED`)."""
    await _pause(part)
    return part not in DROPPED


async def gather(parts: list[Any]) -> tuple[Any, ...]:
    """The parts of one parent, as a tuple."""
    await _pause(tuple(parts))
    return tuple(parts)


def key_of(event: Any) -> Any:
    """The key of a `(key, ...)` event."""
    return event[0]


async def slow(event: Any) -> Any:
    """The event, after `SLOW` turns of the loop: a branch 100 times slower."""
    for _ in range(SLOW):
        await asyncio.sleep(0)
    return event


async def gated(event: Any) -> Any:
    """Event 0 waits for `GATE`; every other event passes at once."""
    LOG.append(("start", event))
    if event == 0 and GATE is not None:
        await GATE.wait()
    LOG.append(("end", event))
    return event


def collect(batch: list[Any]) -> None:
    """A sink keeping what it receives in `OUT`."""
    OUT.extend(batch)


async def gated_key(event: Any) -> Any:
    """An event of key 0 waits for `GATE`; others pass at once."""
    if event[0] == 0 and GATE is not None:
        await GATE.wait()
    return event

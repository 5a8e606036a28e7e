"""User functions for the order tests, loaded by the flows as `use python orderfns`.

Every function is `async` and first awaits `asyncio.sleep(0)` a number of times
chosen by the test (`configure`): the schedule of the workers is the test's input,
drawn by hypothesis, and no wall clock is involved. Calls are logged so that a test
can check which processing started before which ended (`log`).

In process mode (inside `collecting_in`, where `shared_folder` names a folder) the
functions run in worker processes, which import this module afresh: `configure`
also writes the configuration to a file there, which this module reads when it is
imported, and a worker appends its log to a file there, which `log` reads back.
"""

from __future__ import annotations

import asyncio
import os
import zlib
from collections.abc import AsyncIterator, Iterable, Sequence
from typing import Any

from reflow_lang.runtime import reorder
from reflow_lang.runtime.transport import wire
from reflow_lang.testing import shared_folder

VALUES: list[Any] = []
RIGHT: list[Any] = []
DELAYS: list[int] = [0]
PARTS: dict[Any, int] = {}
DROPPED: set[Any] = set()
TURNS: dict[Any, int] = {}  # delays for given events, overriding `DELAYS`
CHUNK: int | None = None  # `reorder.MIN_CHUNK` for the run, if not the default
LOG: list[tuple[str, Any]] = []
OUT: list[Any] = []
RELEASED: list[Any] = []  # the last event, once `held_back` started it
# Seconds of turns of an idle loop: far more than the stage takes to start every
# event, also when they reach it over a socket.
HELD_TURNS = 1_000_000
GATE: asyncio.Event | None = None
SLOW = 100

# The files of process mode, in the shared folder.
CONFIG_FILE = "orderfns.config"
LOG_FILE = "orderfns.log"


def configure(
    values: Iterable[Any],
    *,
    right: Iterable[Any] = (),
    delays: Sequence[int] = (0,),
    parts: dict[Any, int] | None = None,
    dropped: Iterable[Any] = (),
    turns: dict[Any, int] | None = None,
    chunk: int | None = None,
) -> None:
    """Sets what the source gives, the schedule, the splits and the dropped parts;
    `chunk` is the events per unit below which batches are not cut, for the run.

    Inside `collecting_in`, also for the worker processes that the run starts.
    """
    settings = {
        "values": list(values),
        "right": list(right),
        "delays": list(delays) or [0],
        "parts": dict(parts or {}),
        "dropped": list(dropped),
        "turns": dict(turns or {}),
        "chunk": chunk,
    }
    _apply(settings)
    LOG.clear()
    OUT.clear()
    RELEASED.clear()

    folder = shared_folder()
    if folder is not None:
        with open(os.path.join(folder, CONFIG_FILE), "wb") as file:
            file.write(wire.pack(settings))
        if os.path.exists(os.path.join(folder, LOG_FILE)):
            os.remove(os.path.join(folder, LOG_FILE))


def _apply(settings: dict[str, Any]) -> None:
    global CHUNK  # noqa: PLW0603 - a test knob, like the lists beside it
    VALUES[:] = settings["values"]
    RIGHT[:] = settings["right"]
    DELAYS[:] = settings["delays"]
    PARTS.clear()
    PARTS.update(settings["parts"])
    DROPPED.clear()
    DROPPED.update(settings["dropped"])
    TURNS.clear()
    TURNS.update(settings["turns"])
    CHUNK = settings["chunk"]


def _load_shared() -> None:
    # A worker process of a run in process mode: the test configured it in a file.
    folder = shared_folder()
    if folder is None or not os.path.exists(os.path.join(folder, CONFIG_FILE)):
        return
    with open(os.path.join(folder, CONFIG_FILE), "rb") as file:
        _apply(wire.unpack(file.read()))
    if CHUNK is not None:
        # The test's process sets it around the run (`helpers.run`); a worker
        # process runs one job and ends, so the setting leaks nowhere.
        reorder.MIN_CHUNK = CHUNK


def _record(kind: str, event: Any) -> None:
    folder = shared_folder()
    if folder is None:
        LOG.append((kind, event))
        return
    # One record per write to a file opened for appending: the file keeps the order
    # of the calls, with the process that made each.
    record = wire.pack([kind, event, os.getpid()])
    with open(os.path.join(folder, LOG_FILE), "ab") as file:
        file.write(len(record).to_bytes(4, "big") + record)


def _records() -> list[tuple[str, Any, int]]:
    folder = shared_folder()
    if folder is None:
        return [(kind, event, os.getpid()) for kind, event in LOG]
    path = os.path.join(folder, LOG_FILE)
    if not os.path.exists(path):
        return []
    with open(path, "rb") as file:
        data = file.read()
    records, position = [], 0
    while position < len(data):
        length = int.from_bytes(data[position : position + 4], "big")
        kind, event, pid = wire.unpack(data[position + 4 : position + 4 + length])
        records.append((kind, event, pid))
        position += 4 + length
    return records


def log() -> list[tuple[str, Any]]:
    """When processing of each event started and ended, in order, since `configure`:
    of this process, or in process mode of every worker process (see `processes`)."""
    return [(kind, event) for kind, event, _ in _records()]


def processes() -> set[int]:
    """The processes that wrote the `log`."""
    return {pid for _, _, pid in _records()}


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
    _record("start", event)
    await _pause(event)
    _record("end", event)
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


class Stubborn:
    """A hashable key whose `!=` raises: runs of it cannot be found by comparing."""

    def __init__(self, value: int) -> None:
        self.value = value

    def __hash__(self) -> int:
        return hash(self.value)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Stubborn) and other.value == self.value

    def __ne__(self, other: object) -> bool:
        msg = "`Stubborn` keys cannot be told apart with `!=`"
        raise TypeError(msg)

    def __repr__(self) -> str:
        return f"Stubborn({self.value})"


def stubborn_key_of(event: Any) -> Stubborn:
    """The key of a `(key, ...)` event, as a key that cannot be compared with `!=`
    (made in the stage's own process: it is no plain data to send to another)."""
    return Stubborn(event[0])


async def slow(event: Any) -> Any:
    """The event, after `SLOW` turns of the loop: a branch 100 times slower."""
    for _ in range(SLOW):
        await asyncio.sleep(0)
    return event


async def held_back(event: Any) -> Any:
    """The first configured event ends only once the last one has started (in this
    process: a stage's workers share its process); the others end at once."""
    if event == VALUES[-1]:
        RELEASED.append(event)
    if event != VALUES[0]:
        return event

    # At most `HELD_TURNS` turns of the loop: a stage that never starts the last
    # event fails the test, rather than hang it.
    for _ in range(HELD_TURNS):
        if RELEASED:
            break
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


_load_shared()

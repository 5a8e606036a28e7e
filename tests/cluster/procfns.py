"""User functions of the process-mode test flows.

They synchronise with the test through files in a folder the test names, never
through time: `slow_numbers` announces it started by writing `started`, then gives
an event each time until `release` exists; `crash_once` ends its process abruptly
the first time it sees its event and leaves a marker so the restarted one goes on.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path


def numbers(count: int, start: int = 0) -> Iterator[int]:
    """A rewindable source of `start .. count-1`."""
    return iter(range(start, count))


def slow_numbers(folder: str, start: int = 0) -> Iterator[int]:
    """Numbers, endless until `folder/release` exists; writes `folder/started`."""
    base = Path(folder)
    (base / "started").write_text(str(os.getpid()))
    number = start
    while not (base / "release").exists():
        yield number
        number += 1
        time.sleep(0.01)  # a slow source, so that the queues never fill


def crash_once(value: int, folder: str, at: int) -> int:
    """`value`, except that the first process to see `at` exits with status 9."""
    marker = Path(folder) / f"crashed-{at}"
    if value == at and not marker.exists():
        marker.write_text(str(os.getpid()))
        os._exit(9)
    return value


def crash_always(value: int) -> int:
    """Never returns: the process exits with status 9."""
    os._exit(9)


def no_three(value: int) -> int:
    """`value`, but 3 is an error."""
    if value == 3:
        msg = "no 3"
        raise ValueError(msg)
    return value


def held_until_released(value: int, folder: str) -> int:
    """`value`, once `folder/release` exists: a stage that makes no progress."""
    release = Path(folder) / "release"
    while not release.exists():
        time.sleep(0.01)
    return value

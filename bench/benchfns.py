"""User functions for the benchmark flows: a fast source and a slow sink."""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence

# About 200 bytes an event: enough that holding every event would show plainly.
_PADDING = "x" * 180


def records(count: int, start: int = 0) -> Iterator[str]:
    """Yields `count` distinct text records of about 200 bytes, as fast as it can."""
    for number in range(start, count):
        yield f"record {number:012d} {_PADDING}"


def slow_sink(batch: Sequence[str], delay: float) -> None:
    """Accepts a batch after `delay` seconds: a sink slower than its source."""
    time.sleep(delay)


def longer_than(word: str, length: int) -> bool:
    """Whether `word` has more than `length` characters (the stateless job's filter)."""
    return len(word) > length

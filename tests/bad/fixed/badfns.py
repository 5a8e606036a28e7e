"""Functions for the bad-flow corpus: one of each shape the checker looks at."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable

LIMIT = 3


def shout(event: str) -> str:
    return event.upper()


def longer_than(event: str, n: int) -> bool:
    return len(event) > n


def first_letter(event: str) -> str:
    return event[:1]


def length(event: str) -> int:
    return len(event)


def joined(parts: list[str]) -> str:
    return " ".join(parts)


def add(total: int, event: str) -> int:
    return total + len(event)


def numbers(path: str) -> Iterable[int]:
    return range(10)


def replayable(path: str, start: int = 0) -> Iterable[int]:
    return range(start, 10)


def stuck_start(path: str, start: int = 0, /) -> Iterable[int]:
    return range(start, 10)


async def letters(event: str) -> AsyncIterator[str]:
    for letter in event:
        yield letter


async def slow_key(event: str) -> str:
    return event[:1]

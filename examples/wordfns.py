"""Word helpers for `wordcount.flow`."""

from __future__ import annotations


def at_least(word: str, length: int) -> bool:
    """Whether `word` has at least `length` characters (a `filter` function).

    Example:
        >>> at_least("forest", 4), at_least("oak", 4)
        (True, False)
    """
    return len(word) >= length

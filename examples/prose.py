"""Prose helpers for `readability.flow`: paragraphs, tokens, syllables, reading ease.

The score is Flesch's reading ease (1948): 206.835 - 1.015 * (words / sentences)
- 84.6 * (syllables / words). Higher is easier; plain English scores 60 to 70.
Syllables are estimated by counting vowel groups, as most readability tools do.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from itertools import islice

# Words, keeping apostrophes inside them; the sentence marks after a word matter.
_TOKEN = re.compile(r"([A-Za-z]+(?:'[A-Za-z]+)*)([^A-Za-z]*)")
_VOWEL_GROUPS = re.compile(r"[aeiouy]+")
_SENTENCE_END = re.compile(r"[.!?]")

Token = tuple[str, bool]
"""A word and whether a sentence ends right after it."""

Scored = tuple[str, int, bool]
"""A word, its syllables, and whether a sentence ends right after it."""


def paragraphs(path: str, start: int = 0) -> Iterator[str]:
    """Yields the paragraphs of a text file: runs of non-blank lines, joined by spaces.

    A rewindable source (it accepts `start`, the number of paragraphs to skip).

    Example:
        >>> import os, tempfile
        >>> scratch = tempfile.TemporaryDirectory()
        >>> path = os.path.join(scratch.name, "p.txt")
        >>> with open(path, "w") as file:
        ...     _ = file.write("One line.\\nTwo lines.\\n\\n\\nAnother.\\n")
        >>> list(paragraphs(path)), list(paragraphs(path, start=1))
        (['One line. Two lines.', 'Another.'], ['Another.'])
        >>> scratch.cleanup()
    """
    with open(path, encoding="utf-8") as file:
        yield from islice(_paragraphs(file), start, None)


def _paragraphs(lines: Iterator[str]) -> Iterator[str]:
    held: list[str] = []
    for line in lines:
        if line.strip():
            held.append(line.strip())
        elif held:
            yield " ".join(held)
            held = []
    if held:
        yield " ".join(held)


def tokens(paragraph: str) -> list[Token]:
    """Splits a paragraph into words, marking those that end a sentence (a `flat_map`).

    Example:
        >>> tokens("Oh dear! Too late.")
        [('Oh', False), ('dear', True), ('Too', False), ('late', True)]
    """
    return [
        (word, bool(_SENTENCE_END.search(tail)))
        for word, tail in _TOKEN.findall(paragraph)
    ]


def syllables(token: Token) -> Scored:
    """Estimates the syllables of a token's word: its vowel groups, a silent `e` aside.

    Example:
        >>> syllables(("rabbit", False)), syllables(("time", True))
        (('rabbit', 2, False), ('time', 1, True))
    """
    word, ends_sentence = token
    lower = word.lower()
    count = len(_VOWEL_GROUPS.findall(lower))
    if lower.endswith("e") and not lower.endswith(("le", "ee")) and count > 1:
        count -= 1
    return word, max(count, 1), ends_sentence


def reading_ease(parts: Sequence[Scored]) -> dict[str, object]:
    """Scores one paragraph from its scored words, in order (a `rejoin` function).

    A paragraph without words (a row of asterisks, say) gets no score (`None`).

    Example:
        >>> score = reading_ease([("Oh", 1, False), ("dear", 1, True)])
        >>> score["opening"], score["words"], score["sentences"], score["ease"]
        ('Oh dear', 2, 1, 120.2)
        >>> reading_ease([])["ease"] is None
        True
    """
    words = len(parts)
    sentences = max(1, sum(1 for part in parts if part[2]))
    total = sum(part[1] for part in parts)
    ease = None
    if words:
        ease = round(206.835 - 1.015 * words / sentences - 84.6 * total / words, 1)
    opening = " ".join(part[0] for part in parts[:6])
    return {
        "opening": opening,
        "words": words,
        "sentences": sentences if words else 0,
        "syllables": total,
        "ease": ease,
    }


def has_words(score: dict[str, object]) -> bool:
    """Whether a paragraph's score counted any word (a `filter` function)."""
    return score["words"] != 0

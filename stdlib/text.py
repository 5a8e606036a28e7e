"""The `text` module of the standard library: lines in, words, lines and TSV out.

A flow imports it with `use text`. It holds one source (`lines`), one function for
`flat_map` (`words`) and three sinks (`print`, `write_lines`, `write_tsv`). The path
`"-"` means standard input for the source and standard output for the sinks.

Sinks are called with a batch (a list of event values) and return how many they
accepted; these accept the whole batch (`None`). The file sinks keep their file open
across batches, flush after each one, and close it when their `end` attribute is
called (the runtime does so once end-of-source reaches the sink). The first write to a
path in a process truncates the file, so two sinks of one job must not name the same
file, except `"-"`.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterator, Sequence
from itertools import islice
from typing import Any

from reflow_lang.stdlib import _files, _loop

__all__ = ["lines", "print", "words", "write_lines", "write_tsv"]


def _letter_class() -> str:
    # `\w` minus `\d` and `_` still admits numerals that are not decimal digits
    # (`¼`, `²`, `Ⅻ`), which `str.isalpha` rejects: exclude them too, as ranges (a
    # class of single characters matches several times slower). Planes 2 and above
    # hold no such numerals (their letters are CJK ideographs).
    numerals = [c for c in range(0x20000) if _is_numeral(chr(c))]
    ranges: list[list[int]] = []
    for code in numerals:
        if ranges and ranges[-1][1] == code - 1:
            ranges[-1][1] = code
        else:
            ranges.append([code, code])
    spans = (f"{re.escape(chr(a))}-{re.escape(chr(b))}" for a, b in ranges)
    return f"[^\\W\\d_{''.join(spans)}]"


def _is_numeral(char: str) -> bool:
    return char.isnumeric() and not char.isalpha()


# A word: letters (`str.isalpha`, any script), joined by apostrophes (straight or
# curly) inside the word; `[a-zA-Z]` would miss `naïve` or `Ægir`.
_LETTER = _letter_class()
_WORD = re.compile(f"{_LETTER}+(?:['\u2019]{_LETTER}+)*")

# The same rule for ASCII text, several times faster.
_ASCII_WORD = re.compile("[A-Za-z]+(?:'[A-Za-z]+)*")

# For ASCII lines without apostrophes: every byte but a letter becomes a space, then
# `split`: the fastest way there is (a word count spends much of its time here).
_ASCII_SPACES = bytes(
    c if chr(c).isascii() and chr(c).isalpha() else 0x20 for c in range(256)
)

# TSV fields cannot hold tabs or line breaks; these escapes keep one record per line.
_TSV_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


@_loop.for_local_files
def lines(path: str, start: int = 0) -> Iterator[str]:
    """Yields the lines of a UTF-8 text file, without their line ending.

    A source: `source text.lines(path)`. It is rewindable (it accepts `start`), so
    it can serve a flow with `delivery = exactly_once`. A file that ends without a
    newline still gives its last line; `\\r\\n` and `\\r` also end a line.

    Args:
        path: the file to read; `"-"` reads standard input.
        start: how many lines to skip first (the offset to resume from).

    Yields:
        Each line's text, line ending removed.

    Raises:
        OSError: the file cannot be opened.
        UnicodeDecodeError: the file is not UTF-8.

    Example:
        >>> import os, tempfile
        >>> scratch = tempfile.TemporaryDirectory()
        >>> poem = os.path.join(scratch.name, "tyger.txt")
        >>> with open(poem, "w") as file:
        ...     _ = file.write("Tyger Tyger, burning bright,\\nIn the forests\\n")
        >>> list(lines(poem))
        ['Tyger Tyger, burning bright,', 'In the forests']
        >>> list(lines(poem, start=1))
        ['In the forests']
        >>> scratch.cleanup()
    """
    with _files.open_input(path) as stream:
        for line in islice(stream, start, None):
            yield line[:-1] if line.endswith("\n") else line


@_loop.always
def words(line: str) -> list[str]:
    """Splits a line into its words, in order, keeping their case.

    The rule: a word is a run of letters (the characters `str.isalpha` accepts, of
    any script), which may contain apostrophes (`'` or `’`) between two letters.
    Everything else separates words and is dropped: spaces, punctuation, digits and
    other numerals, underscores and hyphens (`well-known` gives two words). An
    apostrophe at the start or end of a word is dropped (`'tis` gives `tis`,
    `lords'` gives `lords`). The line is first brought to Unicode normal form NFC,
    so that an accent written as a separate combining mark joins its letter.

    A function for `flat_map`: `lines | flat_map text.words`.

    Args:
        line: the text to split.

    Returns:
        The words, in the order they appear.

    Example:
        >>> words("To be, or not to be: that is the question.")
        ['To', 'be', 'or', 'not', 'to', 'be', 'that', 'is', 'the', 'question']
        >>> words("'Tis the lords' well-known ne'er-do-well in 1602")
        ['Tis', 'the', 'lords', 'well', 'known', "ne'er", 'do', 'well', 'in']
    """
    if line.isascii():
        if "'" in line:
            return _ASCII_WORD.findall(line)
        return line.encode("ascii").translate(_ASCII_SPACES).decode("ascii").split()

    if not unicodedata.is_normalized("NFC", line):
        line = unicodedata.normalize("NFC", line)
    return _WORD.findall(line)


def print(batch: Sequence[Any]) -> None:
    """Writes each event of the batch on standard output, one line per event.

    A sink: `... | sink text.print`. Each event is written as `str(event)`.

    Args:
        batch: the event values.

    Returns:
        `None`: the whole batch is accepted.

    Example:
        >>> print(["first", ("word", 3)])
        first
        ('word', 3)
    """
    _files.write(_files.STDIO, "".join(f"{event}\n" for event in batch))


@_files.file_sink
@_loop.for_local_files
def write_lines(batch: Sequence[Any], path: str) -> None:
    """Writes each event as one line of a text file (`str(event)`, UTF-8).

    A sink: `... | sink text.write_lines("out.txt")`. The file is created or
    truncated on first use, kept open and flushed after each batch;
    `write_lines.end(path)` closes it.

    Args:
        batch: the event values.
        path: the file to write; `"-"` writes standard output.

    Returns:
        `None`: the whole batch is accepted.

    Raises:
        UnicodeEncodeError: an event's text has no UTF-8 form (a lone surrogate);
            nothing of the batch is written.

    Example:
        >>> import os, tempfile
        >>> scratch = tempfile.TemporaryDirectory()
        >>> out = os.path.join(scratch.name, "out.txt")
        >>> write_lines(["alpha", "beta"], out)
        >>> write_lines([3], out)
        >>> write_lines.end(out)
        >>> with open(out) as file:
        ...     file.read()
        'alpha\\nbeta\\n3\\n'
        >>> scratch.cleanup()
    """
    _files.write(path, "".join(f"{event}\n" for event in batch))


@_files.file_sink
@_loop.for_local_files
def write_tsv(batch: Sequence[Any], path: str) -> None:
    """Writes each event as one line of tab-separated fields (UTF-8).

    A sink: `... | count [by = self] | sink text.write_tsv("-")` writes
    `word<TAB>count` lines. A tuple or list event gives one field per item; any
    other event is a single field. Fields are written as `str(item)`, with
    backslash, tab, newline and carriage return escaped as `\\\\`, `\\t`, `\\n`
    and `\\r`, so every event stays one line. The file is created or truncated on
    first use, kept open and flushed after each batch; `write_tsv.end(path)` closes
    it.

    Args:
        batch: the event values.
        path: the file to write; `"-"` writes standard output.

    Returns:
        `None`: the whole batch is accepted.

    Raises:
        UnicodeEncodeError: an event's text has no UTF-8 form (a lone surrogate);
            nothing of the batch is written.

    Example:
        >>> rows = [("the", 1143), ("and", 964), "tab\\there"]
        >>> write_tsv(rows, "-")  # doctest: +NORMALIZE_WHITESPACE
        the	1143
        and	964
        tab\\there
    """
    _files.write(path, "".join(_tsv_record(event) for event in batch))


def _tsv_record(event: Any) -> str:
    items = event if isinstance(event, tuple | list) else (event,)
    return "\t".join(str(item).translate(_TSV_ESCAPES) for item in items) + "\n"

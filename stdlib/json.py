"""The `json` module of the standard library: JSON lines in and out.

A flow imports it with `use json`. The format is JSON lines: one JSON value per line,
UTF-8, each line ended by a newline. On reading, blank lines (only whitespace) are
skipped and do not count as events; any other line must hold exactly one JSON value
(an object, array, string, number, `true`, `false` or `null`), or the source fails
with a `ValueError` naming the file and line. On writing, each event is one line of
JSON; tuples are written as arrays, and non-ASCII text is kept as is, except in a
value that holds a lone surrogate (which UTF-8 cannot carry): that line is written
with `\\u` escapes, as JSON allows.

`write` is a file sink: it keeps its file open across batches, flushes after each
one, and closes it when its `end` attribute is called (the runtime does so once
end-of-source reaches the sink). The first write to a path in a process truncates the
file. The path `"-"` means standard input for `read` and standard output for `write`.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from itertools import islice
from typing import Any

from reflow_lang.stdlib import _files, _loop

__all__ = ["read", "write"]

_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(", ", ": "))
_ASCII_ENCODER = json.JSONEncoder(ensure_ascii=True, separators=(", ", ": "))


@_loop.for_local_files
def read(path: str, start: int = 0) -> Iterator[Any]:
    """Yields the values of a JSON-lines file, one per non-blank line.

    A source: `source json.read("orders.jsonl")`. It is rewindable (it accepts
    `start`), so it can serve a flow with `delivery = exactly_once`.

    Args:
        path: the file to read; `"-"` reads standard input.
        start: how many values to skip first (blank lines are not counted).

    Yields:
        Each line's value, decoded: objects become `dict`, arrays `list`.

    Raises:
        OSError: the file cannot be opened.
        ValueError: a line is not one JSON value (the message names `file:line`).

    Example:
        >>> import os, tempfile
        >>> scratch = tempfile.TemporaryDirectory()
        >>> data = os.path.join(scratch.name, "orders.jsonl")
        >>> with open(data, "w") as file:
        ...     _ = file.write('{"id": 1, "total": 9.5}\\n\\n[2, "two"]\\n')
        >>> list(read(data))
        [{'id': 1, 'total': 9.5}, [2, 'two']]
        >>> list(read(data, start=1))
        [[2, 'two']]
        >>> scratch.cleanup()
    """
    with _files.open_input(path) as stream:
        numbered = ((n, line) for n, line in enumerate(stream, 1) if not line.isspace())
        for number, line in islice(numbered, start, None):
            yield _decode(line, path, number)


@_files.file_sink
@_loop.for_local_files
def write(batch: Sequence[Any], path: str) -> None:
    """Writes each event as one line of JSON (UTF-8, non-ASCII kept as is).

    A sink: `... | sink json.write("out.jsonl")`; it also writes the records of a
    `dead_letter` stream. The whole batch is encoded before anything is written, so a
    value that JSON cannot hold fails the batch without writing part of it. The file
    is created or truncated on first use, kept open and flushed after each batch;
    `write.end(path)` closes it.

    Args:
        batch: the event values: `dict` (with string keys), `list`, `tuple`, `str`,
            `int`, `float`, `bool` or `None`, nested freely.
        path: the file to write; `"-"` writes standard output.

    Returns:
        `None`: the whole batch is accepted.

    Raises:
        TypeError: an event holds a value that JSON cannot represent.

    Example:
        >>> write([{"word": "naïve", "count": 2}, ("pair", None)], "-")
        {"word": "naïve", "count": 2}
        ["pair", null]
    """
    lines = [_encode(value) for value in batch]
    _files.write(path, "".join(lines))


def _decode(line: str, path: str, number: int) -> Any:
    try:
        return json.loads(line)
    except json.JSONDecodeError as exc:
        msg = f"{path}:{number}: not a JSON value: {exc.msg} at column {exc.colno}"
        raise ValueError(msg) from exc


def _encode(value: Any) -> str:
    try:
        line = _ENCODER.encode(value) + "\n"
    except TypeError as exc:
        msg = f"cannot write a `{type(value).__name__}` event as JSON; {exc}"
        raise TypeError(msg) from exc

    if line.isascii():
        return line
    try:
        line.encode("utf-8")
    except UnicodeEncodeError:
        # A lone surrogate has no UTF-8 form; JSON's `\\u` escape still carries it.
        return _ASCII_ENCODER.encode(value) + "\n"
    return line

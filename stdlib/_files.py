"""Files behind the standard library's sources and sinks.

Sources open their file for the length of one iteration. Sinks are called once per
batch, so their files are opened on first use in the process (truncating), kept open
across calls in a registry keyed by absolute path, flushed after every batch (a sink's
acceptance means the data reached the operating system) and closed by `end`, which
the file sinks expose as their `end` attribute: the runtime calls it once
end-of-source reaches the sink (a sink that received nothing leaves an empty file).

A file sink also offers `checkpoint` (the file's size after the last flush) and
`restore` (truncate the file to such a size and append after it): the runtime saves
the checkpoint with each acknowledged batch, and a restarted sink worker restores
it, so that what was written but not acknowledged is written once, not twice (see
`reflow_lang.runtime.sink`). A sink restored does not truncate on its next write;
without a saved checkpoint the first write truncates as ever.

The path `"-"` stands for standard input (sources) or standard output (sinks); it is
looked up on every call, so that a redirected `sys.stdout` is honoured, and never
closed.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, TextIO, TypeVar

StrPath = str | os.PathLike[str]

STDIO = "-"

SinkT = TypeVar("SinkT", bound=Callable[..., Any])


@dataclass(slots=True)
class _Output:
    """An open sink file and the lock that keeps writes from two workers apart."""

    file: TextIO
    lock: threading.Lock = field(default_factory=threading.Lock)


_registry_lock = threading.Lock()
_outputs: dict[str, _Output] = {}
_ended: set[str] = set()  # files `end` closed, until written again

# Two sinks (or two workers of one) may write stdout at once; a batch stays whole.
_stdout_lock = threading.Lock()


@contextlib.contextmanager
def open_input(path: StrPath) -> Iterator[TextIO]:
    """Opens `path` for reading as UTF-8 text; `"-"` yields stdin, left open."""
    if os.fspath(path) == STDIO:
        yield sys.stdin
        return

    with open(path, encoding="utf-8") as stream:
        yield stream


def write(path: StrPath, text: str) -> None:
    """Appends `text` to the sink file at `path` and flushes it.

    The first write to a path in this process truncates the file.
    """
    if os.fspath(path) == STDIO:
        with _stdout_lock:
            sys.stdout.write(text)
            sys.stdout.flush()
        return

    output = _output(path)
    with output.lock:
        output.file.write(text)
        output.file.flush()


def close(path: StrPath) -> None:
    """Closes the sink file at `path`, if open; a later write truncates it anew.

    For `"-"` it only flushes stdout. Closing twice is harmless.
    """
    if os.fspath(path) == STDIO:
        sys.stdout.flush()
        return

    with _registry_lock:
        output = _outputs.pop(_key(path), None)
    if output is not None:
        with output.lock:
            output.file.close()


def end(path: StrPath) -> None:
    """Ends the sink file at `path`: closes it, and when nothing was written to it in
    this process (no event reached the sink), leaves it empty rather than keep what
    an earlier run wrote there. Ending twice is harmless. For `"-"` it only flushes
    stdout."""
    if os.fspath(path) == STDIO:
        close(path)
        return

    key = _key(path)
    with _registry_lock:
        ended = key in _ended
    if not ended:
        _output(path)  # opened (truncating) if it was not
    close(path)
    with _registry_lock:
        _ended.add(key)


def checkpoint(path: StrPath) -> int | None:
    """The size in bytes of the sink file at `path` after its last flush: 0 if it
    was not opened in this process; `None` for `"-"` (standard output cannot go
    back)."""
    if os.fspath(path) == STDIO:
        return None

    with _registry_lock:
        output = _outputs.get(_key(path))
    if output is None:
        return 0
    with output.lock:
        return output.file.tell()


def restore(size: int, path: StrPath) -> None:
    """Reopens the sink file at `path` as a checkpoint left it: truncated to `size`
    bytes, later writes appended. Nothing for `"-"`.

    Raises:
        ValueError: the file is shorter than `size` (someone else changed it).
    """
    if os.fspath(path) == STDIO:
        return

    key = _key(path)
    close(key)
    with _registry_lock:
        file = open(key, "a", encoding="utf-8", newline="\n")
        held = os.fstat(file.fileno()).st_size
        if held < size:
            file.close()
            msg = (
                f"cannot restore `{key}` to its checkpoint of {size} bytes; "
                f"it holds only {held}"
            )
            raise ValueError(msg)
        file.truncate(size)
        _outputs[key] = _Output(file)
        _ended.discard(key)


def file_sink(sink: SinkT) -> SinkT:
    """Gives a file sink its `end`, `checkpoint` and `restore` attributes, called
    with the sink's arguments."""
    sink.end = end  # type: ignore[attr-defined]
    sink.checkpoint = checkpoint  # type: ignore[attr-defined]
    sink.restore = restore  # type: ignore[attr-defined]
    return sink


def _output(path: StrPath) -> _Output:
    key = _key(path)
    with _registry_lock:
        output = _outputs.get(key)
        if output is None:
            _ended.discard(key)  # written again: a later `end` ends this run
            # newline="\n": the same bytes on every platform, whatever the batch.
            file = open(key, "w", encoding="utf-8", newline="\n")
            output = _outputs[key] = _Output(file)
    return output


def _key(path: StrPath) -> str:
    return os.path.abspath(os.fspath(path))

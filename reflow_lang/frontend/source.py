"""Reading a `.flow` file: its text, or diagnostics saying why there is none.

Every way a file can fail to be a readable text (missing, a directory, unreadable, too
large, not UTF-8, holding a NUL byte, empty) is a diagnostic of the `E00x` family,
never an exception.
"""

from __future__ import annotations

import os
import re
import stat

from reflow_lang.frontend.diagnostics import Diagnostic, closest, error
from reflow_lang.frontend.span import Span

# A flow is a page of text; a file this large is surely something else, and refusing
# it early keeps `check` fast on a wrong argument.
MAX_BYTES = 1 << 20

_BOM = b"\xef\xbb\xbf"
_LONE_CR = re.compile(r"\r(?!\n)")


def read_source(path: str) -> tuple[str | None, list[Diagnostic]]:
    """Reads the text of the `.flow` file at `path`.

    Args:
        path: the file, as the user gave it; spans and messages use it unchanged.

    Returns:
        The text (a leading UTF-8 byte-order mark removed, each lone carriage
        return made a newline) and no diagnostics, or `None` and one diagnostic.
        Never raises.
    """
    problem = _check_file(path)
    if problem is not None:
        return None, [problem]

    try:
        with open(path, "rb") as handle:
            data = handle.read(MAX_BYTES + 1)
    except OSError as exc:
        return None, [_unreadable(path, exc)]
    return _decode(path, data)


def _check_file(path: str) -> Diagnostic | None:
    """A problem `stat` shows: missing, not a regular file, or too large."""
    where = Span.point(path)
    try:
        info = os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        msg = f"no such file: `{path}`"
        return error("E001", where, msg, _missing_hint(path))
    except (OSError, ValueError) as exc:
        return _unreadable(path, exc)

    if stat.S_ISDIR(info.st_mode):
        msg = f"`{path}` is a directory, not a flow file"
        return error("E002", where, msg, "name a `.flow` file inside it")
    if not stat.S_ISREG(info.st_mode):
        msg = f"`{path}` is not a regular file"
        hint = "reflow reads flows from files; save the flow to a file first"
        return error("E002", where, msg, hint)
    if info.st_size > MAX_BYTES:
        return _too_large(path, info.st_size)
    return None


def _missing_hint(path: str) -> str:
    """A close file name in the same folder, or where a relative path starts."""
    folder, name = os.path.split(path)
    try:
        siblings = os.listdir(folder or ".")
    except OSError:
        siblings = []
    # Names are compared without their shared extension, which would make every
    # `.flow` file look alike.
    stem, extension = os.path.splitext(name)
    stems = [os.path.splitext(s) for s in siblings]
    close = closest(stem, [s for s, e in stems if e == extension])
    if close is not None:
        return f"did you mean `{os.path.join(folder, close + extension)}`?"
    if os.path.isabs(path):
        return "check the path"
    return f"check the path; it is relative to the working directory `{os.getcwd()}`"


def _unreadable(path: str, exc: BaseException) -> Diagnostic:
    reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
    msg = f"cannot read `{path}`: {reason}"
    hint = "check the file's permissions"
    return error("E003", Span.point(path), msg, hint)


def _too_large(path: str, size: int) -> Diagnostic:
    msg = f"`{path}` is {size} bytes; a flow file may be at most {MAX_BYTES} bytes"
    hint = "is this the right file? a flow is a short text"
    return error("E007", Span.point(path), msg, hint)


def _decode(path: str, data: bytes) -> tuple[str | None, list[Diagnostic]]:
    if len(data) > MAX_BYTES:
        # The file grew between `stat` and `read`.
        return None, [_too_large(path, len(data))]
    data = data.removeprefix(_BOM)

    nul = data.find(b"\0")
    if nul >= 0:
        span = _byte_span(path, data, nul)
        msg = "the file contains a NUL byte; a flow file is text"
        return None, [error("E005", span, msg, "is this the right file?")]

    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        span = _byte_span(path, data, exc.start)
        byte = data[exc.start]
        msg = f"the file is not valid UTF-8: byte 0x{byte:02x} cannot be decoded"
        hint = "save the file as UTF-8"
        return None, [error("E004", span, msg, hint)]

    # A lone `\r` ends a line in classic Mac files, as editors show them; the lexer
    # would take it for a space and run every line into one.
    text = _LONE_CR.sub("\n", text)
    if not text.strip():
        msg = "empty file: a flow needs a `flow` header and a library a `use` or `def`"
        hint = "start with `flow NAME(PARAMS)`, e.g. `flow wordcount(path: str)`"
        return None, [error("E006", Span.point(path), msg, hint)]
    return text, []


def _byte_span(path: str, data: bytes, offset: int) -> Span:
    """The span of the byte at `offset`: its line, and its column in characters."""
    line_start = data.rfind(b"\n", 0, offset) + 1
    line = data.count(b"\n", 0, offset) + 1
    # The bytes before `offset` on its line decode cleanly (the error is the first).
    before = data[line_start:offset].decode("utf-8", errors="replace")
    column = len(before) + 1
    return Span(path, line, column, line, column + 1)

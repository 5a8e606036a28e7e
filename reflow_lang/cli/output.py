"""Where `reflowc` writes and how: colour decisions, rich consoles, the logging setup.

The command line is the only part of reflow that configures logging; library modules
only create their loggers. Everything here reads the streams current at call time
(`sys.stdout`, `sys.stderr`), so that tests capturing them see all output.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Literal, TextIO

from rich.console import Console
from rich.logging import RichHandler

ColorChoice = Literal["auto", "always", "never"]

_PLAIN_FORMAT = "%(levelname)s %(name)s: %(message)s"

# The width of tables written to a file or a pipe, where no terminal wraps them.
PLAIN_WIDTH = 200


@dataclass(frozen=True, slots=True)
class Output:
    """The two streams of a command and how to write to each.

    Attributes:
        stdout: the command's result (emitted text, a drawing, JSON, the flow's output).
        stderr: diagnostics, progress, summaries and logs.
        color: whether text on stderr may carry colour.
        stdout_color: whether text on stdout may carry colour.
        quiet: `-q` was given: print nothing but errors.
        verbose: how many times `-v` was given.
        err_console: the rich console on stderr, shared by the live view and the
            log handler so that log records print above the live table.
        out_console: the rich console on stdout.
    """

    stdout: TextIO
    stderr: TextIO
    color: bool
    stdout_color: bool
    quiet: bool
    verbose: int
    err_console: Console
    out_console: Console

    @classmethod
    def open(
        cls,
        choice: ColorChoice,
        *,
        quiet: bool = False,
        verbose: int = 0,
        environ: Mapping[str, str] | None = None,
    ) -> Output:
        """The current `sys.stdout` and `sys.stderr`, with colour decided for each."""
        env = os.environ if environ is None else environ
        color = use_color(choice, sys.stderr, env)
        stdout_color = use_color(choice, sys.stdout, env)
        return cls(
            stdout=sys.stdout,
            stderr=sys.stderr,
            color=color,
            stdout_color=stdout_color,
            quiet=quiet,
            verbose=verbose,
            err_console=_console(sys.stderr, color),
            out_console=_console(sys.stdout, stdout_color),
        )

    def console(self, *, stderr: bool = True) -> Console:
        """The rich console on stderr, or on stdout."""
        return self.err_console if stderr else self.out_console

    def error(self, message: str) -> None:
        """Writes `reflowc: error: MESSAGE` on stderr."""
        label = "\x1b[1;31merror\x1b[0m" if self.color else "error"
        print(f"reflowc: {label}: {message}", file=self.stderr)


def _console(stream: TextIO, color: bool) -> Console:
    # Off a terminal nothing wraps lines, so the console is as wide as a table's
    # natural width needs rather than rich's default of 80 columns.
    return Console(
        file=stream,
        force_terminal=True if color else None,
        no_color=not color,
        highlight=False,
        width=None if is_terminal(stream) else PLAIN_WIDTH,
    )


def use_color(choice: ColorChoice, stream: TextIO, environ: Mapping[str, str]) -> bool:
    """Whether to colour `stream`: always, never, or (auto) on a terminal.

    `NO_COLOR` set to any non-empty value turns colour off in `auto` mode
    (https://no-color.org); `always` wins over it, as a request on the command line
    should.
    """
    if choice == "always":
        return True
    if choice == "never" or environ.get("NO_COLOR"):
        return False
    return is_terminal(stream)


def is_terminal(stream: TextIO) -> bool:
    """Whether `stream` is an interactive terminal (a closed or odd stream is not)."""
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def log_level(*, quiet: bool, verbose: int) -> int:
    """`-q` shows errors only; by default warnings; `-v` adds info, `-vv` debug."""
    if quiet:
        return logging.ERROR
    return {0: logging.WARNING, 1: logging.INFO}.get(verbose, logging.DEBUG)


@contextmanager
def logging_to(output: Output) -> Iterator[logging.Handler]:
    """Sends log records to stderr for the length of a command, then puts things back.

    On a terminal the records go through rich's handler; elsewhere they are plain
    `LEVEL logger: message` lines, which read well in CI logs and files.
    """
    handler: logging.Handler
    if is_terminal(output.stderr):
        handler = RichHandler(console=output.console(), show_path=False)
    else:
        handler = logging.StreamHandler(output.stderr)
        handler.setFormatter(logging.Formatter(_PLAIN_FORMAT))

    root = logging.getLogger()
    previous = root.level
    root.addHandler(handler)
    root.setLevel(log_level(quiet=output.quiet, verbose=output.verbose))
    try:
        yield handler
    finally:
        root.removeHandler(handler)
        root.setLevel(previous)

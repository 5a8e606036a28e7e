"""`reflowc run`: compile a flow, run it with a view of its progress, say how it ended.

With `--processes` the job runs as OS processes (a queue server and one process per
worker unit, see `runtime.cluster`); what the command shows and answers is the same.

The flow's own output owns stdout; everything this command says goes to stderr: a
live table on a terminal, a plain progress line every few seconds elsewhere, and a
summary table at the end. `-q` silences all of it but errors.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from traceback import format_exception

from reflow_lang.cli.commands import compiled_plan
from reflow_lang.cli.output import Output, is_terminal
from reflow_lang.runtime import run as run_plan
from reflow_lang.runtime.cluster import ProcessFailure
from reflow_lang.runtime.runner import run_processes
from reflow_lang.runtime.statistics import JobResult, JobStatistics
from reflow_lang.runtime.view import LiveView, ProgressLines, summary_table

# Seconds between statistics snapshots, and between plain progress lines.
TICK = 0.25
PROGRESS_EVERY = 5.0

# The status a shell gives a command ended by SIGINT (128 + 2).
INTERRUPTED = 130

# The status a shell gives a command ended by SIGPIPE (128 + 13), as `yes | head` ends.
PIPE_CLOSED = 141

OnTick = Callable[[JobStatistics], None]


def run(args: argparse.Namespace, out: Output) -> int:
    """`reflowc run FILE`: 0 if the job ended cleanly, 1 if it failed, 130 on Ctrl-C."""
    plan = compiled_plan(args, out, "nothing to run")
    if plan is None:
        return 1

    # Worker processes write to the terminal themselves, past the live table, which
    # would draw over their lines: there, progress lines instead.
    live = not (args.processes and is_terminal(out.stdout))
    with watching(out, live=live) as on_tick:
        if args.processes:
            result = run_processes(
                plan,
                restarts=args.restarts,
                timeout=args.timeout,
                stall_after=args.stall_after,
                on_tick=on_tick,
                debug=args.debug,
            )
        else:
            result = run_plan(plan, on_tick=on_tick, tick=TICK, debug=args.debug)

    if _reader_gone(result.error):
        # `reflowc run F | head`: the reader of stdout left; end quietly, as Unix
        # tools do, and keep Python from complaining when it flushes stdout at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return PIPE_CLOSED
    if not out.quiet:
        _print_summary(result, out)
    return exit_status(result, out, debug=args.debug)


def exit_status(result: JobResult, out: Output, *, debug: bool) -> int:
    """The status for how the job ended, after saying why on stderr if it failed;
    with `debug`, the error's Python traceback (in process mode, the one the worker
    reported), if it has one."""
    if result.error is not None:
        out.error(f"flow `{result.statistics.flow}` failed: {result.error}")
        # A worker killed by a signal, or the queue server gone, has no traceback.
        traceback = _traceback(result.error)
        if traceback is not None and debug:
            print(traceback, end="", file=out.stderr)
        elif traceback is not None and not out.quiet:
            print("(run with --debug for the Python traceback)", file=out.stderr)
    if result.interrupted or result.aborted:
        return INTERRUPTED
    return 0 if result.ok and result.error is None else 1


def _traceback(error: BaseException) -> str | None:
    # A worker's error comes with the traceback it had there, as text.
    if isinstance(error, ProcessFailure):
        return error.traceback
    return "".join(format_exception(error))


def _reader_gone(error: BaseException | None) -> bool:
    while error is not None:
        if isinstance(error, BrokenPipeError):
            return True
        error = error.__cause__
    return False


@contextmanager
def watching(out: Output, *, live: bool = True) -> Iterator[OnTick | None]:
    """The live view on a terminal (if `live`), progress lines elsewhere, nothing
    with `-q`."""
    if out.quiet:
        yield None
        return

    if not live or not is_terminal(out.stderr):
        yield ProgressLines(out.stderr, every=PROGRESS_EVERY).update
        return

    with LiveView(out.console(), redirect_stdout=is_terminal(out.stdout)) as view:
        yield view.update


def _print_summary(result: JobResult, out: Output) -> None:
    out.console().print(summary_table(result.statistics, _outcome(result)))


def _outcome(result: JobResult) -> str:
    if result.aborted:
        return "aborted"
    if result.interrupted:
        return "interrupted and drained"
    return "finished" if result.ok and result.error is None else "failed"

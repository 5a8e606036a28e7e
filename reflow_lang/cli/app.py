"""The `reflowc` argument parser and `main`: parse, set up output and logging, dispatch.

Exit statuses: 0 success, 1 errors in a flow or a failed job, 2 a usage error,
130 interrupted by Ctrl-C.
"""

from __future__ import annotations

import argparse
import traceback
from collections.abc import Callable
from typing import TYPE_CHECKING

from reflow_lang.cli.cluster import DEFAULT_BIND, keys, serve, worker
from reflow_lang.cli.commands import UsageError, check, compile_, graph, stdlib
from reflow_lang.cli.output import Output, logging_to
from reflow_lang.cli.running import INTERRUPTED, run
from reflow_lang.errors import ReflowError

if TYPE_CHECKING:
    Commands = argparse._SubParsersAction[argparse.ArgumentParser]

Command = Callable[[argparse.Namespace, Output], int]

DESCRIPTION = """\
Check, compile, draw and run `.flow` stream-processing jobs.

A `.flow` file describes a streaming job as chains of stages; `reflowc` finds every
mistake in it, shows what it compiles to, and runs it as asyncio workers linked by
bounded queues.
"""

EPILOG = """\
exit status: 0 success; 1 errors in a flow, or a failed job; 2 usage error;
130 interrupted (Ctrl-C).

environment:
  NO_COLOR    when set to a non-empty value, `--color auto` prints no colour
  COLUMNS     the width of help text and of tables on a terminal, if set

Run `reflowc COMMAND --help` for a command's options; the output options
(-q, -v, --color) go after the command: `reflowc check -q FILE`.
"""


class _Formatter(
    argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter
):
    """Shows a default only where it says something (not `None`, `False`, `[]`)."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.default in (None, False, [], argparse.SUPPRESS):
            return action.help
        return super()._get_help_string(action)


def main(argv: list[str] | None = None) -> int:
    """Runs `reflowc` with `argv` (default: `sys.argv[1:]`); returns the exit status."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        # argparse exits for `--help` (0) and for usage errors (2); report, not exit.
        return exc.code if isinstance(exc.code, int) else 0

    out = Output.open(args.color, quiet=args.quiet, verbose=args.verbose)
    with logging_to(out):
        return _dispatch(args, out)


def build_parser() -> argparse.ArgumentParser:
    """The parser of `reflowc` and of each of its commands."""
    parser = argparse.ArgumentParser(
        prog="reflowc",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=_Formatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    commands = parser.add_subparsers(
        title="commands", dest="command", metavar="COMMAND"
    )
    commands.required = True

    common = _common_options()
    for add in (
        _add_check,
        _add_compile,
        _add_graph,
        _add_run,
        _add_serve,
        _add_worker,
        _add_keys,
        _add_stdlib,
    ):
        add(commands, common)
    return parser


# --- the commands ------------------------------------------------------------------


def _add_check(commands: Commands, common: argparse.ArgumentParser) -> None:
    sub = _command(
        commands,
        common,
        "check",
        check,
        "find every problem in flow files",
        "Parse and check each FILE; print every problem with its code, position,\n"
        "source line and a hint. Exit 0 when clean (warnings are printed), 1 on\n"
        "errors.",
    )
    sub.add_argument(
        "files", nargs="+", metavar="FILE", help="the `.flow` files to check"
    )
    group = sub.add_argument_group("check options")
    group.add_argument(
        "--format",
        choices=("text", "json"),
        default="text",
        help="text on stderr for people, or a JSON array on stdout for tools",
    )
    group.add_argument(
        "--strict", action="store_true", help="warnings fail the check too (exit 1)"
    )
    _add_params(group)


def _add_compile(commands: Commands, common: argparse.ArgumentParser) -> None:
    sub = _command(
        commands,
        common,
        "compile",
        compile_,
        "print a stage of the compiler's work",
        "Print the syntax tree, the checked intermediate form, or the compiled plan\n"
        "(JSON) of FILE, as stable text on stdout.",
    )
    sub.add_argument("file", metavar="FILE", help="the `.flow` file to compile")
    group = sub.add_argument_group("compile options")
    group.add_argument(
        "--emit",
        choices=("ast", "ir", "plan"),
        required=True,
        help="ast: the syntax tree; ir: resolved and typed; plan: what runs",
    )
    _add_params(group)


def _add_graph(commands: Commands, common: argparse.ArgumentParser) -> None:
    sub = _command(
        commands,
        common,
        "graph",
        graph,
        "draw the compiled graph of a flow",
        "Draw the tasks and queues FILE compiles to: each task with its kind,\n"
        "function, workers and order; each queue with its capacity; fan-out, merges,\n"
        "joins, dead letters and split/rejoin pairs.",
    )
    sub.add_argument("file", metavar="FILE", help="the `.flow` file to draw")
    group = sub.add_argument_group("graph options")
    group.add_argument(
        "--format",
        choices=("tree", "mermaid", "dot"),
        default="tree",
        help="a text tree, a Mermaid flowchart, or Graphviz DOT (`dot -Tsvg`)",
    )
    _add_params(group)


def _add_run(commands: Commands, common: argparse.ArgumentParser) -> None:
    sub = _command(
        commands,
        common,
        "run",
        run,
        "compile a flow and run it",
        "Compile FILE and run it to completion. The flow's output goes to stdout;\n"
        "progress (a live table on a terminal, a line every few seconds elsewhere)\n"
        "and a summary go to stderr. A first Ctrl-C drains and stops; a second stops\n"
        "at once. Exit 0 when the job ended cleanly, 1 when it failed, 130 on Ctrl-C.",
    )
    sub.add_argument("file", metavar="FILE", help="the `.flow` file to run")
    group = sub.add_argument_group("run options")
    _add_params(group)
    group.add_argument(
        "--debug",
        action="store_true",
        help="print the Python traceback of a failure, and run asyncio in debug mode",
    )
    group = sub.add_argument_group("process options")
    group.add_argument(
        "--processes",
        action="store_true",
        help="run as OS processes: a queue server and one process per worker unit",
    )
    group.add_argument(
        "--restarts",
        type=_count,
        default=3,
        metavar="N",
        help="with --processes: restarts of a crashed worker before the job fails",
    )
    _add_timeout(group)
    group.add_argument(
        "--stall-after",
        type=_seconds,
        default=30.0,
        metavar="S",
        help="with --processes: seconds without progress before a warning names the "
        "full queues and the stages behind",
    )


def _add_serve(commands: Commands, common: argparse.ArgumentParser) -> None:
    sub = _command(
        commands,
        common,
        "serve",
        serve,
        "host a flow's queues for workers on other hosts",
        "Compile FILE and serve its queues at ADDR for `reflowc worker` processes;\n"
        "print the bound endpoint on stdout. Stops on Ctrl-C, or once every stage\n"
        "has ended. An address beyond loopback needs --keys (see `reflowc keys`).\n"
        "Exit 0 when the job ended by itself, 130 when a Ctrl-C stopped it (here,\n"
        "or to a worker that runs a source).",
    )
    sub.add_argument("file", metavar="FILE", help="the `.flow` file to serve")
    group = sub.add_argument_group("serve options")
    _add_params(group)
    group.add_argument(
        "--bind",
        default=DEFAULT_BIND,
        metavar="ADDR",
        help="the ZeroMQ address to bind (port 0: any free port)",
    )
    _add_keys_option(group, "the server's key pair and the clients' public keys")


def _add_worker(commands: Commands, common: argparse.ArgumentParser) -> None:
    sub = _command(
        commands,
        common,
        "worker",
        worker,
        "run stages of a flow against a queue server",
        "Compile FILE and run the worker units holding each NAME (all of them when\n"
        "no --stage is given) against the queue server at ADDR. Exit 0 when they\n"
        "ended, 1 when the job failed, 130 on Ctrl-C.",
    )
    sub.add_argument("file", metavar="FILE", help="the `.flow` file to run")
    group = sub.add_argument_group("worker options")
    _add_params(group)
    group.add_argument(
        "--connect",
        required=True,
        metavar="ADDR",
        help="the queue server's endpoint, as `reflowc serve` printed it",
    )
    group.add_argument(
        "--stage",
        dest="stages",
        action="append",
        default=[],
        metavar="NAME",
        help="a stage to run, as the plan names it (repeatable)",
    )
    _add_timeout(group)
    _add_keys_option(group, "the client's key pair and the server's public key")


def _add_keys(commands: Commands, common: argparse.ArgumentParser) -> None:
    sub = _command(
        commands,
        common,
        "keys",
        keys,
        "generate CURVE keys for a queue server and its workers",
        "Write a server key pair and a client key pair into DIR (never over\n"
        "existing keys). Secret files are readable by their owner only.",
    )
    sub.add_argument("directory", metavar="DIR", help="the folder to write")


def _add_timeout(group: argparse._ArgumentGroup) -> None:
    group.add_argument(
        "--timeout",
        type=_seconds,
        default=10.0,
        metavar="S",
        help="seconds a request to the queue server waits for its answer; a server "
        "silent for 3x as long is unreachable",
    )


def _add_keys_option(group: argparse._ArgumentGroup, what: str) -> None:
    group.add_argument("--keys", metavar="DIR", help=f"CURVE keys: {what}")


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        msg = f"expected a count (0 or more); got `{text}`"
        raise argparse.ArgumentTypeError(msg)
    return value


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not value > 0:
        msg = f"expected seconds (more than 0); got `{text}`"
        raise argparse.ArgumentTypeError(msg)
    return value


def _add_stdlib(commands: Commands, common: argparse.ArgumentParser) -> None:
    sub = _command(
        commands,
        common,
        "stdlib",
        stdlib,
        "list the standard library's functions",
        "List the functions of the standard library (all modules, or MODULE), each\n"
        "with its signature, its role (source, function or sink) and a summary.",
    )
    sub.add_argument(
        "module", nargs="?", metavar="MODULE", help="one module, e.g. `text`"
    )


# --- shared pieces -----------------------------------------------------------------


def _common_options() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    group = common.add_argument_group("output options")
    group.add_argument(
        "-q",
        "--quiet",
        action="store_true",
        help="print only errors: no summary, no progress, no log below ERROR",
    )
    group.add_argument(
        "-v",
        "--verbose",
        action="count",
        default=0,
        help="more log output (-v info, -vv debug) and tracebacks of internal errors",
    )
    group.add_argument(
        "--color",
        choices=("auto", "always", "never"),
        default="auto",
        help="colour: auto colours a terminal unless NO_COLOR is set",
    )
    return common


def _command(
    commands: Commands,
    common: argparse.ArgumentParser,
    name: str,
    handler: Command,
    summary: str,
    description: str,
) -> argparse.ArgumentParser:
    sub: argparse.ArgumentParser = commands.add_parser(
        name,
        parents=[common],
        help=summary,
        description=description,
        formatter_class=_Formatter,
    )
    sub.set_defaults(handler=handler, parser=sub)
    return sub


def _add_params(group: argparse._ArgumentGroup) -> None:
    group.add_argument(
        "-p",
        "--param",
        dest="params",
        action="append",
        type=_param,
        default=[],
        metavar="NAME=VALUE",
        help="set a flow parameter (repeatable)",
    )


def _param(text: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    name = name.strip()
    if not sep or not name.isidentifier():
        msg = f"expected `NAME=VALUE` with NAME a parameter name; got `{text}`"
        raise argparse.ArgumentTypeError(msg)
    return name, value


def _dispatch(args: argparse.Namespace, out: Output) -> int:
    try:
        status: int = args.handler(args, out)
    except UsageError as exc:
        args.parser.print_usage(out.stderr)
        print(f"{args.parser.prog}: error: {exc}", file=out.stderr)
        return 2
    except KeyboardInterrupt:
        out.error("interrupted")
        return INTERRUPTED
    except BrokenPipeError:
        # The reader of stdout went away (`reflowc ... | head`): nothing left to say.
        return 1
    except ReflowError as exc:
        return _failed(out, exc, internal=False)
    except Exception as exc:  # a bug in reflowc: say so, with the traceback on request
        return _failed(out, exc, internal=True)
    return status


def _failed(out: Output, exc: BaseException, *, internal: bool) -> int:
    kind = "internal error: " if internal else ""
    out.error(f"{kind}{exc}" if str(exc) else f"{kind}{type(exc).__name__}")
    if out.verbose:
        traceback.print_exception(exc, file=out.stderr)
    elif internal:
        print("(run with -v for the traceback)", file=out.stderr)
    return 1


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("reflow-lang")
    except PackageNotFoundError:
        return "unknown"

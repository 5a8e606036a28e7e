"""The commands of `reflowc` that only compile: `check`, `compile`, `graph`, `stdlib`.

Each command takes the parsed arguments and an `Output`, writes its result on stdout
and its diagnostics on stderr, and returns the exit status: 0 clean, 1 when the flow
has errors. Usage errors are raised as `UsageError`, which `main` turns into status 2.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from rich.table import Table
from rich.text import Text

from reflow_lang.cli.output import Output
from reflow_lang.errors import ReflowError
from reflow_lang.frontend.api import Compilation, compile_file
from reflow_lang.frontend.diagnostics import (
    Diagnostic,
    Severity,
    render_json,
    render_text,
)
from reflow_lang.frontend.graph import TreeLine, to_dot, to_mermaid, to_tree, tree_lines
from reflow_lang.frontend.ir import format_ir
from reflow_lang.frontend.parser import format_ast
from reflow_lang.plan import Plan
from reflow_lang.stdlib import MODULES, Entry, catalogue


class UsageError(ReflowError):
    """The command line asks for the impossible: reported with the usage, status 2."""


def parameters(pairs: Sequence[tuple[str, str]]) -> dict[str, str]:
    """The `-p name=value` pairs as a mapping; a name given twice is a usage error."""
    params: dict[str, str] = {}
    for name, value in pairs:
        if name in params:
            msg = f"parameter `{name}` is given twice (`-p {name}=...`); give it once"
            raise UsageError(msg)
        params[name] = value
    return params


def check(args: argparse.Namespace, out: Output) -> int:
    """`reflowc check FILE...`: every problem of every file, then a one-line summary."""
    params = parameters(args.params)
    results = [compile_file(path, params) for path in args.files]
    diagnostics = [d for result in results for d in result.diagnostics]

    if args.format == "json":
        out.stdout.write(render_json(diagnostics))
    else:
        report(results, out)
        if not out.quiet:
            print(summary_line(diagnostics, len(results)), file=out.stderr)

    errors, warnings = _counts(diagnostics)
    return 1 if errors or (args.strict and warnings) else 0


def compile_(args: argparse.Namespace, out: Output) -> int:
    """`reflowc compile FILE --emit ast|ir|plan`: one stage of the compiler, as text.

    A library file (no `flow` header) has a syntax tree but no IR and no plan.
    """
    result = compile_file(args.file, parameters(args.params))
    report([result], out)
    if not result.ok:
        return 1

    text = _emit(result, args.emit)
    if text is None:
        out.error(no_flow_message(result.file, f"no {args.emit} to emit"))
        return 1
    out.stdout.write(text)
    return 0


def graph(args: argparse.Namespace, out: Output) -> int:
    """`reflowc graph FILE`: the compiled plan drawn as a tree, Mermaid or DOT."""
    plan = compiled_plan(args, out, "no graph to draw")
    if plan is None:
        return 1

    if args.format == "mermaid":
        out.stdout.write(to_mermaid(plan))
    elif args.format == "dot":
        out.stdout.write(to_dot(plan))
    elif out.stdout_color:
        console = out.console(stderr=False)
        for line in tree_lines(plan):
            console.print(styled_line(line), soft_wrap=True)
    else:
        out.stdout.write(to_tree(plan))
    return 0


def stdlib(args: argparse.Namespace, out: Output) -> int:
    """`reflowc stdlib [MODULE]`: the standard library's functions, with their roles."""
    if args.module is not None and args.module not in MODULES:
        known = ", ".join(f"`{name}`" for name in MODULES)
        msg = f"no standard-library module `{args.module}`; the modules are {known}"
        raise UsageError(msg)

    rows = [row for row in catalogue() if args.module in (None, row.module)]
    if out.stdout_color:
        out.console(stderr=False).print(_stdlib_table(rows))
        return 0

    width = max(len(f"{row.module}.{row.signature}") for row in rows)
    for row in rows:
        call = f"{row.module}.{row.signature}"
        print(f"{call:<{width}}  {row.role:<8}  {row.summary}", file=out.stdout)
    return 0


def report(results: Sequence[Compilation], out: Output) -> None:
    """Writes the diagnostics of `results` on stderr, with their source lines."""
    sources = {r.file: r.source for r in results if r.source is not None}
    diagnostics = [d for result in results for d in result.diagnostics]
    if diagnostics:
        out.stderr.write(render_text(diagnostics, sources, color=out.color))


def compiled_plan(
    args: argparse.Namespace, out: Output, consequence: str
) -> Plan | None:
    """The plan of `args.file`, after reporting its diagnostics; `None` if it has none.

    Args:
        consequence: what a library file (no `flow` header, so no plan) prevents.
    """
    result = compile_file(args.file, parameters(args.params))
    report([result], out)
    if not result.ok:
        return None
    if result.plan is None:
        out.error(no_flow_message(result.file, consequence))
    return result.plan


def no_flow_message(file: str, consequence: str) -> str:
    """The error for a file without a `flow` header where a flow is needed."""
    return f"{file} is a library (it has no `flow` header): {consequence}"


def summary_line(diagnostics: Sequence[Diagnostic], files: int) -> str:
    """`2 errors, 1 warning in 1 file`."""
    errors, warnings = _counts(diagnostics)
    return (
        f"{_plural(errors, 'error')}, {_plural(warnings, 'warning')} "
        f"in {_plural(files, 'file')}"
    )


def styled_line(line: TreeLine) -> Text:
    """A line of the plan's tree, coloured by what it shows."""
    text = Text(line.prefix, style="dim")
    text.append(line.text, style=_TREE_STYLES[line.role])
    if line.detail:
        text.append(f"  [{line.detail}]", style="dim cyan")
    return text


_TREE_STYLES = {
    "flow": "bold",
    "parameters": "",
    "task": "bold",
    "queue": "green",
    "reference": "italic",
}


def _emit(result: Compilation, stage: str) -> str | None:
    """The text of one stage's product, or `None` if there is none (a library)."""
    if stage == "ast":
        return None if result.module is None else _newline(format_ast(result.module))
    if stage == "ir":
        return None if result.ir is None else _newline(format_ir(result.ir))
    return None if result.plan is None else result.plan.to_json()


def _stdlib_table(rows: Sequence[Entry]) -> Table:
    table = Table(box=None, pad_edge=False, show_header=True)
    for header in ("function", "role", "summary"):
        table.add_column(header, style="bold" if header == "function" else None)
    for row in rows:
        table.add_row(f"{row.module}.{row.signature}", row.role, row.summary)
    return table


def _counts(diagnostics: Sequence[Diagnostic]) -> tuple[int, int]:
    errors = sum(1 for d in diagnostics if d.severity is Severity.ERROR)
    return errors, len(diagnostics) - errors


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def _newline(text: str) -> str:
    return text if text.endswith("\n") else text + "\n"

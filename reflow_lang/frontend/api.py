"""The front end's entry points: a `.flow` file or text in, a `Compilation` out.

This is what the command line calls. `compile_file` reads and parses the file,
lowers it to the IR (running every checker pass) and, when no error was found,
compiles the plan. Nothing raises for a bad file: every problem is a diagnostic.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from reflow_lang.frontend import ast
from reflow_lang.frontend.compiler import compile_flow
from reflow_lang.frontend.diagnostics import Diagnostic, Severity, sort_key
from reflow_lang.frontend.ir import Flow
from reflow_lang.frontend.lower import lower
from reflow_lang.frontend.parser import Partial, parse_partial
from reflow_lang.plan import Plan


@dataclass(frozen=True, slots=True)
class Compilation:
    """Everything the front end learnt about one file.

    Attributes:
        file: the file name the spans use.
        source: the text, or `None` when the file could not be read.
        module: the AST, or `None` when the text could not be parsed.
        ir: the checked flow, or `None` for a library file or when any error was found.
        plan: the plan, or `None` when any error was found (or for a library file).
        diagnostics: every problem, sorted by position.
    """

    file: str
    source: str | None
    module: ast.Module | None
    ir: Flow | None
    plan: Plan | None
    diagnostics: tuple[Diagnostic, ...]

    @property
    def ok(self) -> bool:
        """No errors (warnings allowed)."""
        return not self.errors

    @property
    def errors(self) -> tuple[Diagnostic, ...]:
        return tuple(d for d in self.diagnostics if d.severity is Severity.ERROR)

    @property
    def warnings(self) -> tuple[Diagnostic, ...]:
        return tuple(d for d in self.diagnostics if d.severity is Severity.WARNING)


def compile_file(path: str, params: Mapping[str, str] | None = None) -> Compilation:
    """Reads, checks and compiles the flow file at `path`.

    Args:
        path: the `.flow` file; spans and messages use it as given.
        params: flow parameters from `-p name=value`, typed by their declarations.
    """
    from reflow_lang.frontend.source import read_source

    text, problems = read_source(path)
    if text is None:
        return Compilation(path, None, None, None, None, _sorted(problems))
    compiled = compile_source(text, path, params)
    if not problems:
        return compiled
    return Compilation(
        path,
        text,
        compiled.module,
        compiled.ir,
        compiled.plan,
        _sorted([*problems, *compiled.diagnostics]),
    )


def compile_source(
    text: str, file: str, params: Mapping[str, str] | None = None
) -> Compilation:
    """Checks and compiles `text` as if read from `file` (which names it in messages).

    `use python` modules are looked up beside `file`.
    """
    partial = parse_partial(text, file)
    problems = partial.diagnostics
    if partial.module is None or problems:
        found = _check_partial(partial, params)
        return Compilation(file, text, None, None, None, _sorted([*problems, *found]))
    module = partial.module

    flow, found = lower(module, params)
    diagnostics = _sorted([*problems, *found])
    failed = any(d.severity is Severity.ERROR for d in diagnostics)
    if flow is None or failed:
        return Compilation(file, text, module, None, None, diagnostics)
    return Compilation(file, text, module, flow, compile_flow(flow), diagnostics)


# What a statement that did not parse may have held: the flow's sink, reads of a
# stream, uses of a parameter, module or fragment. With one missing, these reports
# may be false, so only the checks that hold whatever it held are kept.
_NEED_WHOLE_FILE = frozenset({"E501", "E504"})


def _check_partial(
    partial: Partial, params: Mapping[str, str] | None
) -> list[Diagnostic]:
    """The errors of the statements that parsed, when others did not.

    Names the failed statements would have bound are known to the checker (unknown
    in kind), so that reading them reports nothing. Without the header nothing is
    checked: every name and statement depends on it.
    """
    module = partial.module
    if module is None or module.header is None or partial.lost.header:
        return []
    _, found = lower(module, params, partial.lost)
    return [
        d
        for d in found
        if d.severity is Severity.ERROR and d.code not in _NEED_WHOLE_FILE
    ]


def _sorted(diagnostics: list[Diagnostic]) -> tuple[Diagnostic, ...]:
    # A fragment is checked once per use; the same problem at the same place is
    # reported once.
    unique = dict.fromkeys(diagnostics)
    return tuple(sorted(unique, key=sort_key))

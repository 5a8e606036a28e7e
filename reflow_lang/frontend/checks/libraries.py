"""E2xx, libraries: `use NAME` of a `.flow` library beside the file, and its fragments.

A library is a `.flow` file without a header: `use` lines and `def` fragments. A
flow that writes `use NAME`, where `NAME` is no standard-library module and
`NAME.flow` lies beside the flow file (`use lib.words` looks for `lib/words.flow`),
can use the library's fragments as stages. Each fragment keeps the modules of its
own file: its functions resolve through the library's `use` lines, not the flow's.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from reflow_lang.frontend import ast, ir
from reflow_lang.frontend.checks import names, uses
from reflow_lang.frontend.checks.functions import FunctionScope
from reflow_lang.frontend.diagnostics import Diagnostic, Severity, error
from reflow_lang.frontend.parser import parse
from reflow_lang.frontend.source import read_source

CODES: dict[str, str] = {
    "E204": "library that has errors or is not a library",
    "E205": "libraries that use each other",
}


@dataclass(frozen=True, slots=True)
class Library:
    """A loaded library: its `use`, its file, its fragments and their scope."""

    use: ast.Use
    path: str
    defs: tuple[ast.Def, ...]
    scope: FunctionScope

    def describe(self) -> ir.Use:
        """The library as the IR lists it among the flow's modules."""
        name = self.use.module.dotted
        return ir.Use(self.use.span, self.use.bound, name, self.path, False)


@dataclass(frozen=True, slots=True)
class Loaded:
    """What `load` found: the libraries, the other `use` lines, and whether any failed.

    After a failure, a fragment name that is not found may belong to the library
    that failed, so lowering does not report it as unknown.
    """

    libraries: tuple[Library, ...]
    others: tuple[ast.Use, ...]
    failed: bool


def locate(use: ast.Use, flow_dir: str) -> str | None:
    """The library file a `use` names, or `None` when it names a module instead."""
    if use.python or use.module.dotted in uses.stdlib_names():
        return None
    path = Path(flow_dir, *use.module.parts).with_suffix(".flow")
    return str(path) if path.is_file() else None


def load(
    module: ast.Module, found: list[Diagnostic], loading: tuple[str, ...] = ()
) -> Loaded:
    """The libraries the file's `use` lines name (and theirs), and its other uses."""
    flow_dir = str(Path(module.span.file).parent)
    libraries: list[Library] = []
    others: list[ast.Use] = []
    failed = False
    for use in module.uses:
        path = locate(use, flow_dir)
        if path is None:
            others.append(use)
            continue
        loaded = _load_one(use, path, found, (*loading, module.span.file))
        failed = failed or loaded is None or loaded.failed
        if loaded is not None:
            libraries.extend(loaded.libraries)
    return Loaded(tuple(libraries), tuple(others), failed)


def _load_one(
    use: ast.Use, path: str, found: list[Diagnostic], loading: tuple[str, ...]
) -> Loaded | None:
    if any(Path(path).resolve() == Path(p).resolve() for p in loading):
        route = " -> ".join(loading)
        msg = f"library `{use.module.dotted}` uses itself through {route}"
        found.append(
            error("E205", use.module.span, msg, "remove one of the `use` lines")
        )
        return None
    module = _parse(use, path, found)
    if module is None:
        return None

    nested = load(module, found, loading)
    table, problems = uses.resolve_uses(nested.others, str(Path(path).parent))
    found.extend(problems)
    for definition in module.defs:
        found.extend(names.check_def_shape(definition))
    library = Library(use, path, module.defs, FunctionScope(table, {}, found))
    return Loaded((*nested.libraries, library), (), nested.failed)


def _parse(use: ast.Use, path: str, found: list[Diagnostic]) -> ast.Module | None:
    text, problems = read_source(path)
    module, syntax = (None, []) if text is None else parse(text, path)
    errors = [d for d in (*problems, *syntax) if d.severity is Severity.ERROR]
    name = use.module.dotted
    if module is None or errors:
        found.extend(errors)
        msg = f"library `{name}` ({path}) cannot be read or parsed"
        hint = f"run `reflowc check {path}`"
        found.append(error("E204", use.module.span, msg, hint))
        return None
    if module.header is not None or module.body:
        msg = f"`{path}` is a flow, not a library; a library holds only `use` and `def`"
        hint = "move the fragments to a file of their own"
        found.append(error("E204", use.module.span, msg, hint))
        return None
    return module

"""E2xx: `use` lines: unknown stdlib modules, Python modules missing or failing.

Each module is imported once per check. A module that failed leaves its name bound
to `None`, so that functions named through it stay silent instead of cascading.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from types import ModuleType

from reflow_lang.frontend import ast, ir, resolve
from reflow_lang.frontend.checks import names
from reflow_lang.frontend.diagnostics import Diagnostic, did_you_mean, error, warning

CODES: dict[str, str] = {
    "E201": "unknown standard-library module",
    "E202": "Python module not found",
    "E203": "module fails to import",
    "W201": "module never used",
}


@dataclass(slots=True)
class ModuleTable:
    """The modules a file binds: alias to module, or to `None` when it failed."""

    modules: dict[str, ModuleType | None] = field(default_factory=dict)
    uses: dict[str, ir.Use] = field(default_factory=dict)


def resolve_uses(
    uses: Sequence[ast.Use], flow_dir: str
) -> tuple[ModuleTable, list[Diagnostic]]:
    """Finds and imports every module of the file's `use` lines."""
    table = ModuleTable()
    found: list[Diagnostic] = []
    first, duplicates = names.find_duplicates(
        ((u.bound, u.span) for u in uses), "module"
    )
    found.extend(duplicates)
    for use in uses:
        if first.get(use.bound) is not use.span:
            continue
        resolved = _resolve(use, flow_dir)
        if isinstance(resolved, Diagnostic):
            table.modules[use.bound] = None
            found.append(resolved)
            continue
        location, module = resolved
        table.modules[use.bound] = module
        table.uses[use.bound] = ir.Use(
            use.span, use.bound, location.name, location.path, use.python
        )
    return table, found


def _resolve(
    use: ast.Use, flow_dir: str
) -> tuple[resolve.ModuleLocation, ModuleType] | Diagnostic:
    dotted = use.module.dotted
    try:
        if use.python:
            location = resolve.locate_python(dotted, flow_dir)
        else:
            location = resolve.locate_stdlib(dotted)
        if location is None:
            return _not_found(use, flow_dir)
        return location, resolve.import_module(location)
    except (Exception, SystemExit) as exc:
        # The user's module runs arbitrary code on import; whatever it raises is
        # reported, never propagated.
        return _failed(use, exc)


def _not_found(use: ast.Use, flow_dir: str) -> Diagnostic:
    dotted = use.module.dotted
    if use.python:
        where = flow_dir or "."
        msg = (
            f"python module `{dotted}` not found next to the flow file or on `sys.path`"
        )
        hint = (
            f"put `{dotted.replace('.', '/')}.py` in `{where}` or install the package"
        )
        return error("E202", use.module.span, msg, hint)
    msg = f"no standard-library module `{dotted}`"
    hint = did_you_mean(dotted, resolve.stdlib_modules()) or (
        f"for a Python module write `use python {dotted}`; for a library, "
        f"put `{dotted.replace('.', '/')}.flow` beside the flow file"
    )
    return error("E201", use.module.span, msg, hint)


def _failed(use: ast.Use, exc: BaseException) -> Diagnostic:
    dotted = use.module.dotted
    msg = f"module `{dotted}` fails to import: {type(exc).__name__}: {exc}"
    hint = (
        "fix the module so that `import` succeeds; "
        "the checker imports it to read signatures"
    )
    return error("E203", use.module.span, msg, hint)


def stdlib_names() -> tuple[str, ...]:
    """The modules `use NAME` finds in the standard library."""
    return resolve.stdlib_modules()


def unused_module(use: ast.Use) -> Diagnostic:
    """W201: a module bound by `use` that no stage names."""
    msg = f"module `{use.bound}` is never used"
    return warning("W201", use.span, msg, "remove the `use` line")

"""The standard library of reflow: modules a flow imports with `use NAME`.

- `text`: lines of a text file (`lines`), words of a line (`words`), and sinks that
  print events or write them as lines or tab-separated fields.
- `json`: JSON-lines files, read (`read`) and written (`write`).

`catalogue()` lists every function with its role, for `reflowc stdlib`.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable
from typing import Any, Literal, NamedTuple

__all__ = ["MODULES", "Entry", "catalogue"]

MODULES: tuple[str, ...] = ("text", "json")

Role = Literal["source", "function", "sink"]

# Each public function's role, as a flow uses it. A source is a function whose first
# parameter is not an event; a sink is called with a batch.
_ROLES: dict[tuple[str, str], Role] = {
    ("text", "lines"): "source",
    ("text", "words"): "function",
    ("text", "print"): "sink",
    ("text", "write_lines"): "sink",
    ("text", "write_tsv"): "sink",
    ("json", "read"): "source",
    ("json", "write"): "sink",
}


# A named tuple rather than a dataclass: callers unpack the rows as plain tuples.
class Entry(NamedTuple):
    """One function of the standard library, as `reflowc stdlib` lists it."""

    module: str
    """The module's name in a flow (`text`)."""
    name: str
    """The function's name (`lines`)."""
    role: Role
    """How a flow uses it: `source`, `function` (map, flat_map, ...) or `sink`."""
    signature: str
    """Its parameters as Python spells them: `lines(path, start: int = 0)`."""
    summary: str
    """The first line of its docstring."""


def catalogue() -> list[Entry]:
    """Every function of the standard library, by module then name.

    Example:
        >>> [entry.name for entry in catalogue() if entry.module == "json"]
        ['read', 'write']
        >>> next(e.signature for e in catalogue() if e.name == "lines")
        'lines(path: str, start: int = 0)'
    """
    entries = []
    for module_name in MODULES:
        module = importlib.import_module(f"{__name__}.{module_name}")
        for name in sorted(module.__all__):
            function = getattr(module, name)
            role = _ROLES[(module_name, name)]
            entries.append(
                Entry(module_name, name, role, _signature(function), _summary(function))
            )
    return entries


def _signature(function: Callable[..., Any]) -> str:
    # Annotations are strings (postponed evaluation); print them unquoted.
    parameters = []
    for parameter in inspect.signature(function).parameters.values():
        text = parameter.name
        if parameter.annotation is not inspect.Parameter.empty:
            text += f": {parameter.annotation}"
        if parameter.default is not inspect.Parameter.empty:
            text += f" = {parameter.default!r}"
        parameters.append(text)
    return f"{function.__name__}({', '.join(parameters)})"


def _summary(function: Callable[..., Any]) -> str:
    doc = inspect.getdoc(function) or ""
    return doc.splitlines()[0] if doc else ""

"""What a flow's `use` lines and function names point at, and their signatures.

`use text` names a module of reflow's standard library (`reflow_lang.stdlib.text`);
`use python M` names a Python module, looked up next to the `.flow` file first and
then on `sys.path`. Modules are imported through `reflow_lang.loader`, the same code
the runtime uses, so that the checker and the runtime agree on what a name means.

Nothing here reports diagnostics: the functions raise or return `None`, and the
checker passes (`checks/uses.py`, `checks/functions.py`) turn that into messages.
"""

from __future__ import annotations

import contextlib
import importlib.util
import inspect
import pkgutil
import sys
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Any

from reflow_lang import loader
from reflow_lang.loader import STDLIB_PACKAGE


@dataclass(frozen=True, slots=True)
class ModuleLocation:
    """Where a module comes from: a name, and a file when found beside the flow."""

    name: str
    path: str | None


@dataclass(frozen=True, slots=True)
class Signature:
    """What the checker needs from a function's signature.

    Attributes:
        signature: the signature itself; `None` when Python cannot tell it (some
            builtins), in which case every call is accepted.
        is_async: a coroutine function or an async generator function.
        generator: an async generator function (it yields rather than returns).
        rewindable: accepts a keyword `start`.
        start_positional_only: has a `start` parameter that cannot be passed by keyword.
    """

    signature: inspect.Signature | None
    is_async: bool
    generator: bool
    rewindable: bool
    start_positional_only: bool

    def accepts(self, positional: int) -> bool:
        """Whether a call with `positional` arguments binds to the signature."""
        if self.signature is None:
            return True
        try:
            self.signature.bind(*range(positional))
        except TypeError:
            return False
        return True

    def fills_start(self, positional: int) -> bool:
        """Whether `positional` arguments reach a rewindable source's `start`.

        The runtime passes `start` by keyword to rewind the source, so a flow
        argument that lands on it would make every call fail.
        """
        if self.signature is None or not self.rewindable:
            return False
        try:
            self.signature.bind(*range(positional), start=0)
        except TypeError:
            return self.accepts(positional)
        return False

    def start_position(self) -> int:
        """The 1-based position of `start` among the positional parameters (0: none)."""
        if self.signature is None:
            return 0
        for position, name in enumerate(self.signature.parameters, start=1):
            if name == "start":
                return position
        return 0

    def describe(self) -> str:
        """`takes 2 positional arguments`, `takes 1 to 3 ...`, `takes at least 1 ..`."""
        low, high = self.positional_range()
        if high is None:
            count = f"at least {low}"
        elif low == high:
            count = str(low)
        else:
            count = f"{low} to {high}"
        plural = "" if count == "1" else "s"
        return f"takes {count} positional argument{plural}"

    def positional_range(self) -> tuple[int, int | None]:
        """The fewest and most positional arguments (`None`: no upper bound)."""
        low, high = 0, 0
        if self.signature is None:
            return 0, None
        for param in self.signature.parameters.values():
            if param.kind is param.VAR_POSITIONAL:
                return low, None
            if param.kind in (param.POSITIONAL_ONLY, param.POSITIONAL_OR_KEYWORD):
                high += 1
                low += param.default is param.empty
        return low, high

    def required_keywords(self) -> tuple[str, ...]:
        """Keyword-only parameters without a default: no stage can pass them."""
        if self.signature is None:
            return ()
        return tuple(
            p.name
            for p in self.signature.parameters.values()
            if p.kind is p.KEYWORD_ONLY and p.default is p.empty
        )


def stdlib_modules() -> tuple[str, ...]:
    """The names of the modules of reflow's standard library."""
    return _stdlib_modules()


@cache
def _stdlib_modules() -> tuple[str, ...]:
    package = importlib.import_module(STDLIB_PACKAGE)
    found = pkgutil.iter_modules(package.__path__)
    return tuple(sorted(m.name for m in found if not m.name.startswith("_")))


def locate_stdlib(name: str) -> ModuleLocation | None:
    """The stdlib module `name`, or `None` if there is none."""
    if name not in stdlib_modules():
        return None
    return ModuleLocation(f"{STDLIB_PACKAGE}.{name}", None)


def locate_python(dotted: str, flow_dir: str) -> ModuleLocation | None:
    """A Python module: `M.py` (or `M/__init__.py`) beside the flow, else on `sys.path`.

    Raises:
        Exception: whatever importing a parent package raises while looking it up.
    """
    relative = Path(*dotted.split("."))
    for candidate in (relative.with_suffix(".py"), relative / "__init__.py"):
        path = Path(flow_dir) / candidate
        if path.is_file():
            return ModuleLocation(dotted, str(path))
    try:
        spec = importlib.util.find_spec(dotted)
    except ModuleNotFoundError:
        return None
    return None if spec is None else ModuleLocation(dotted, None)


def import_module(location: ModuleLocation) -> ModuleType:
    """Imports the module; whatever its code raises propagates to the caller.

    What the module prints while it is imported goes to stderr: stdout carries only
    what a command means to print (`reflowc compile --emit plan | jq ...`).
    """
    with contextlib.redirect_stdout(sys.stderr):
        return loader.load_module(location.name, location.path)


def attribute(module: ModuleType, dotted: str) -> Any:
    """The attribute `dotted` of `module`; `AttributeError` if a part is missing."""
    return loader.resolve_attribute(module, dotted)


def builtin_module() -> ModuleType:
    """Python's `builtins`, where names such as `len` and `str.lower` are found."""
    return importlib.import_module("builtins")


def read_signature(function: Any) -> Signature:
    """Reads what the checker needs from `function`'s signature."""
    generator = inspect.isasyncgenfunction(function)
    is_async = generator or inspect.iscoroutinefunction(function)
    try:
        signature: inspect.Signature | None = inspect.signature(function)
    except (TypeError, ValueError):
        signature = None

    start = None if signature is None else signature.parameters.get("start")
    keyword_kinds = (
        inspect.Parameter.POSITIONAL_OR_KEYWORD,
        inspect.Parameter.KEYWORD_ONLY,
    )
    rewindable = start is not None and start.kind in keyword_kinds
    positional_only = start is not None and start.kind is start.POSITIONAL_ONLY
    return Signature(signature, is_async, generator, rewindable, positional_only)

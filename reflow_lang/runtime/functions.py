"""User functions as the runtime calls them: resolved, with their arguments bound.

`UserFunction` knows whether the function is `async` and how to call it on one event
or over a whole batch; `key_reader` turns a plan `Key` into a function of an event.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial
from itertools import repeat
from typing import Any

from reflow_lang.errors import PlanError
from reflow_lang.loader import resolve_function
from reflow_lang.plan import FunctionRef, Key

# Functions known to be pure and quick run on the event loop: a thread hop per
# batch costs more than they do (measured: the word count runs about 40 % faster).
# Builtins that may block (`input`, `open`, `print`) are not among them.
_INLINE_BUILTINS = frozenset(
    {"abs", "bool", "chr", "float", "hash", "int", "len", "max", "min", "ord", "repr"}
    | {"round", "sorted", "str", "sum", "tuple"}
)
_INLINE_TYPES = frozenset({"bytes", "dict", "float", "frozenset", "int", "list", "str"})

# Any other function may say itself when it is quick: an `on_loop` attribute, a
# predicate over the arguments after the event, as the standard library's carry.
ON_LOOP = "on_loop"


@dataclass(frozen=True, slots=True)
class UserFunction:
    """A resolved user function and the literal arguments that follow the event."""

    function: Callable[..., Any]
    args: tuple[Any, ...]
    display: str
    is_async: bool
    inline: bool = False
    """Known pure and quick: run on the event loop rather than in a thread."""

    def call(self, *leading: Any) -> Any:
        """Calls the function with `leading` (the event, or acc and event) then args."""
        return self.function(*leading, *self.args)

    def mapper(self, values: list[Any]) -> Any:
        """An iterator of the function over `values`, built in C (no Python frame)."""
        if not self.args:
            return map(self.function, values)
        return map(self.function, values, *(repeat(arg) for arg in self.args))


def resolve(ref: FunctionRef, stage: str) -> UserFunction:
    """Imports the function a plan names; failing, a `PlanError` naming the stage."""
    display = ref.display or f"{ref.module}.{ref.name}"
    try:
        function = resolve_function(ref)
    except (ImportError, AttributeError) as exc:
        msg = f"stage `{stage}` cannot load `{display}`: {type(exc).__name__}: {exc}"
        raise PlanError(msg) from exc

    if not callable(function):
        msg = f"stage `{stage}`: `{display}` is not callable"
        raise PlanError(msg)
    return UserFunction(
        function,
        tuple(ref.args),
        display,
        _is_async(function),
        is_inline(ref, function),
    )


def is_inline(ref: FunctionRef, function: Any = None) -> bool:
    """Whether the function is known pure and quick for its arguments.

    Builtins are judged by name (see `_INLINE_BUILTINS`); any other function by its
    `on_loop` predicate, if it has one (the standard library's carry one; without
    it a function runs in a thread).
    """
    if ref.module == "builtins":
        owner, _, method = ref.name.partition(".")
        return owner in _INLINE_TYPES if method else owner in _INLINE_BUILTINS

    if function is None:
        function = resolve_function(ref)
    on_loop = getattr(function, ON_LOOP, None)
    return callable(on_loop) and bool(on_loop(*ref.args))


def _is_async(function: Callable[..., Any]) -> bool:
    if inspect.iscoroutinefunction(function) or inspect.isasyncgenfunction(function):
        return True
    call = getattr(function, "__call__", None)  # noqa: B004 - a callable object's method
    return call is not None and inspect.iscoroutinefunction(call)


def key_reader(key: Key | None, stage: str) -> Callable[[Any], Any] | None:
    """A function of an event giving its key; `None` for `self` (the event itself)."""
    if key is None or key.kind == "self":
        return None
    if key.kind == "field":
        return partial(_field, str(key.field))
    if key.function is None:
        msg = f"stage `{stage}` has a function key without a function"
        raise PlanError(msg)
    function = resolve(key.function, stage)
    if function.is_async:
        msg = (
            f"stage `{stage}` reads its key with `{function.display}`, an async "
            "function; a key function must be a plain function"
        )
        raise PlanError(msg)
    # Without arguments the function itself: one Python frame less per event.
    return function.call if function.args else function.function


def _field(name: str, event: Any) -> Any:
    if isinstance(event, Mapping):
        return event[name]
    return getattr(event, name)

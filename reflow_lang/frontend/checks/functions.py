"""E3xx: functions: they exist, are callable, and accept what their stage passes them.

A stage calls its function with implicit arguments first (the event; the batch for a
sink; the parts for a rejoin; the accumulator and the event for a reduce; nothing
for a source), then the flow's arguments. The arity is checked against
`inspect.signature`; a signature Python cannot read (some builtins) is trusted.
Lookups and signatures are cached per dotted name, so a flow of many stages naming
the same function pays for one lookup.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from reflow_lang.frontend import ast, ir, resolve
from reflow_lang.frontend.checks import names
from reflow_lang.frontend.checks.uses import ModuleTable
from reflow_lang.frontend.diagnostics import Diagnostic, closest, did_you_mean, error
from reflow_lang.frontend.span import Span
from reflow_lang.plan import Value

CODES: dict[str, str] = {
    "E301": "unknown function",
    "E302": "module or type has no such function",
    "E303": "not callable",
    "E304": "function does not accept the stage's arguments",
    "E305": "async function where a plain one is needed",
    "E306": "argument that is not a literal or a parameter",
    "E307": "source whose `start` cannot be passed by keyword",
}

# What each role passes before the flow's arguments, as the messages name them.
IMPLICIT: dict[str, tuple[str, ...]] = {
    "source": (),
    "map": ("the event",),
    "flat_map": ("the event",),
    "filter": ("the event",),
    "key_by": ("the event",),
    "rejoin": ("the parts",),
    "reduce": ("the accumulator", "the event"),
    "sink": ("the batch",),
    "key": ("the event",),
}

# Roles whose function may be an async generator (it yields events).
_GENERATING = frozenset({"source", "flat_map"})


@dataclass(frozen=True, slots=True)
class _Target:
    module: str
    name: str
    path: str | None
    signature: resolve.Signature


@dataclass(slots=True)
class FunctionScope:
    """What resolving needs, and what it records for the unused-name checks."""

    modules: ModuleTable
    params: Mapping[str, str]
    diagnostics: list[Diagnostic]
    # The value each parameter takes in this run, once the header is typed.
    param_values: dict[str, Value] = field(default_factory=dict)
    used_modules: set[str] = field(default_factory=set)
    used_params: set[str] = field(default_factory=set)
    _cache: dict[str, _Target | None] = field(default_factory=dict)
    _accepted: set[tuple[str, str, int]] = field(default_factory=set)


def resolve_call(call: ast.Call, role: str, scope: FunctionScope) -> ir.Function | None:
    """The resolved function of a stage, or `None` after reporting why not."""
    args = lower_args(call.args, scope)
    target = _lookup(call.callee, scope, role)
    if target is None or args is None:
        return None
    display = call.callee.dotted
    if not _check_call(call, display, role, target.signature, len(args), scope):
        return None
    signature = target.signature
    return ir.Function(
        call.span,
        target.module,
        target.name,
        target.path,
        args,
        display,
        signature.is_async,
        signature.rewindable,
    )


def lower_key(expr: ast.Expr, scope: FunctionScope) -> ir.Key | None:
    """A key: `self`, a quoted field name, or a function of the event."""
    if isinstance(expr, ast.Str):
        return ir.Key(expr.span, "field", field=expr.value)
    if isinstance(expr, ast.Name) and expr.parts == ("self",):
        return ir.Key(expr.span, "self")
    if isinstance(expr, ast.Name):
        expr = ast.Call(expr.span, expr, ())
    if not isinstance(expr, ast.Call):
        msg = "a key is `self`, a quoted field name or a function"
        scope.diagnostics.append(error("E306", expr.span, msg, 'write `"field"`'))
        return None
    function = resolve_call(expr, "key", scope)
    return (
        None if function is None else ir.Key(expr.span, "function", function=function)
    )


def lower_args(
    args: tuple[ast.Expr, ...], scope: FunctionScope
) -> tuple[ir.Arg, ...] | None:
    """The arguments as constants and parameter references, or `None` after an error."""
    lowered: list[ir.Arg] = []
    ok = True
    for arg in args:
        item = lower_arg(arg, scope)
        ok = ok and item is not None
        if item is not None:
            lowered.append(item)
    return tuple(lowered) if ok else None


def lower_arg(arg: ast.Expr, scope: FunctionScope) -> ir.Arg | None:
    """One argument: a literal, a list of literals, or a flow parameter."""
    if (
        isinstance(arg, ast.Name)
        and len(arg.parts) == 1
        and arg.parts[0] in scope.params
    ):
        scope.used_params.add(arg.parts[0])
        return ir.ParamRef(arg.span, arg.parts[0])
    if isinstance(arg, ast.Name):
        scope.diagnostics.append(
            names.unknown_argument(arg.span, arg.dotted, scope.params)
        )
        # The parameter the hint suggests is the one meant: warning that it is
        # never used would report the same misspelling twice.
        meant = closest(arg.dotted, scope.params)
        if meant is not None:
            scope.used_params.add(meant)
        return None
    value = literal(arg)
    if value is None:
        msg = "an argument must be a literal or a flow parameter"
        hint = "compute the value inside the function instead"
        scope.diagnostics.append(error("E306", arg.span, msg, hint))
        return None
    return ir.Const(arg.span, value[0])


def literal(expr: ast.Expr) -> tuple[Value] | None:
    """The value of a literal expression, boxed; `None` when it is not a literal."""
    if isinstance(expr, ast.Int | ast.Float | ast.Str | ast.Bool):
        return (expr.value,)
    if isinstance(expr, ast.Duration):
        return (expr.seconds,)
    if isinstance(expr, ast.List):
        items = [literal(item) for item in expr.items]
        if any(item is None for item in items):
            return None
        return ([item[0] for item in items if item is not None],)
    return None


# --- lookup --------------------------------------------------------------------------


def _lookup(callee: ast.Name, scope: FunctionScope, role: str) -> _Target | None:
    dotted = callee.dotted
    head = callee.parts[0]
    modules = scope.modules.modules
    if head in modules:
        scope.used_modules.add(head)
    if dotted in scope._cache:
        return scope._cache[dotted]
    target = _find(callee, scope, role)
    if target is not None or (head in modules and modules[head] is None):
        # Successes, and names through a module that failed (silent), are cached;
        # other failures are looked up again so that each place gets its message.
        scope._cache[dotted] = target
    return target


def _find(callee: ast.Name, scope: FunctionScope, role: str) -> _Target | None:
    head, rest = callee.parts[0], ".".join(callee.parts[1:])
    modules = scope.modules.modules
    if head in modules:
        module = modules[head]
        if module is None:
            return None
        if not rest:
            return _report(scope, _not_callable(callee, "a module"))
        use = scope.modules.uses[head]
        return _attribute(callee, module, rest, use.module, use.path, scope)
    builtins = resolve.builtin_module()
    if not hasattr(builtins, head):
        if rest and _misspelt_in_use(head, scope):
            return None
        return _report(scope, _unknown(callee, scope, role))
    return _attribute(callee, builtins, callee.dotted, "builtins", None, scope)


def _attribute(
    callee: ast.Name,
    owner: Any,
    name: str,
    module: str,
    path: str | None,
    scope: FunctionScope,
) -> _Target | None:
    try:
        target = resolve.attribute(owner, name)
    except AttributeError:
        return _report(scope, _no_attribute(callee, owner, name, module))
    except Exception as exc:  # noqa: BLE001 - a module's `__getattr__` may raise anything
        msg = f"looking up `{callee.dotted}` raised {type(exc).__name__}: {exc}"
        hint = f"fix `{module}`: the checker reads the function from it"
        return _report(scope, error("E302", callee.span, msg, hint))
    if not callable(target):
        return _report(
            scope, _not_callable(callee, f"a value of type `{type(target).__name__}`")
        )
    return _Target(module, name, path, resolve.read_signature(target))


def _report(scope: FunctionScope, diagnostic: Diagnostic) -> _Target | None:
    """Records why a name does not resolve; the lookup's result is then `None`."""
    scope.diagnostics.append(diagnostic)
    return None


def _misspelt_in_use(head: str, scope: FunctionScope) -> bool:
    """Whether `head` is a module that a failed `use` line misspelt (`use txet`).

    Its `use` line is reported already; each name through it would repeat that.
    """
    modules = scope.modules.modules
    failed = [alias for alias, module in modules.items() if module is None]
    return any(closest(alias, [head]) is not None for alias in failed)


def _unknown(callee: ast.Name, scope: FunctionScope, role: str) -> Diagnostic:
    head = callee.parts[0]
    if len(callee.parts) > 1:
        msg = f"unknown module `{head}` in `{callee.dotted}`"
        meant = closest(head, scope.modules.modules)
        if meant is None:
            return error("E301", callee.span, msg, f"add `use {head}` above")
        # The module the hint names is the one meant: warning that it is never
        # used would report the same misspelling twice.
        scope.used_modules.add(meant)
        return error("E301", callee.span, msg, f"did you mean `{meant}`?")
    msg = f"unknown function `{head}`"
    return error("E301", callee.span, msg, _unknown_hint(head, scope, role))


def _unknown_hint(name: str, scope: FunctionScope, role: str) -> str:
    """A module's function of that very name, a close builtin, or how to name one."""
    # `user` most often means the function `user` of a module the flow uses; a
    # builtin that merely looks alike (`super`) is a worse guess.
    qualified = [
        f"{alias}.{name}"
        for alias, module in sorted(scope.modules.modules.items())
        if module is not None and _has_function(module, name)
    ]
    if qualified:
        return f"did you mean `{qualified[0]}`?"
    candidates = [n for n in dir(resolve.builtin_module()) if not n.startswith("_")]
    close = did_you_mean(name, candidates)
    if close is not None:
        return close
    if role == "key":
        return (
            f"a key is a function (`m.{name}` from a module bound with `use`), a "
            f'quoted field name (`"{name}"`) or `self`'
        )
    return "name a function of a module bound with `use`, or a Python builtin"


def _has_function(module: Any, name: str) -> bool:
    try:
        return callable(getattr(module, name, None))
    except Exception:  # noqa: BLE001 - a module's `__getattr__` may raise anything
        return False


def _no_attribute(callee: ast.Name, owner: Any, name: str, module: str) -> Diagnostic:
    parts = name.split(".")
    offset = len(callee.parts) - len(parts)
    container, index = owner, 0
    while index < len(parts) and hasattr(container, parts[index]):
        container = getattr(container, parts[index])
        index += 1
    missing = parts[min(index, len(parts) - 1)]
    shown = ".".join(callee.parts[: offset + index]) or module
    msg = f"`{shown}` has no function `{missing}`"
    candidates = [n for n in dir(container) if not n.startswith("_")]
    hint = did_you_mean(missing, candidates) or _listing_hint(shown, module)
    return error("E302", callee.span, msg, hint)


def _listing_hint(shown: str, module: str) -> str:
    """Where to see what `shown` holds, when no name of it is close."""
    stdlib = resolve.stdlib_modules()
    name = module.rsplit(".", 1)[-1]
    if module.startswith("reflow_lang.stdlib.") and name in stdlib:
        return f"`reflowc stdlib {name}` lists its functions"
    return f"check the spelling against the functions `{shown}` defines"


def _not_callable(callee: ast.Name, what: str) -> Diagnostic:
    msg = f"`{callee.dotted}` is {what}, not a function"
    return error("E303", callee.span, msg, "name a function or a class")


# --- the call ------------------------------------------------------------------------


def _check_call(
    call: ast.Call,
    display: str,
    role: str,
    signature: resolve.Signature,
    n_args: int,
    scope: FunctionScope,
) -> bool:
    # A flow of many stages calls few distinct functions: a call shape that was
    # accepted once is accepted again without binding the signature.
    shape = (display, role, n_args)
    if shape in scope._accepted:
        return True
    found = _arity(call.span, display, role, signature, n_args)
    if found is None:
        found = _async(call.span, display, role, signature)
    if found is None and role == "source" and signature.start_positional_only:
        msg = f"source `{display}` has a positional-only `start` parameter"
        hint = "make `start` a keyword parameter so that the source can be rewound"
        found = error("E307", call.span, msg, hint)
    if found is not None:
        scope.diagnostics.append(found)
        return False
    scope._accepted.add(shape)
    return True


def _arity(
    span: Span, display: str, role: str, signature: resolve.Signature, n_args: int
) -> Diagnostic | None:
    implicit = IMPLICIT[role]
    total = len(implicit) + n_args
    required = signature.required_keywords()
    if required:
        listed = ", ".join(f"`{k}`" for k in required)
        what = "argument" if len(required) == 1 else "arguments"
        msg = f"`{display}` requires the keyword {what} {listed}, which no stage passes"
        return error(
            "E304",
            span,
            msg,
            "give it a default" if len(required) == 1 else "give them defaults",
        )
    if role == "source" and signature.fills_start(total):
        return _start_filled(span, display, signature)
    if signature.accepts(total):
        return None
    passed = [*implicit]
    if n_args:
        passed.append(f"{n_args} argument{'s' if n_args != 1 else ''} from the flow")
    what = " and ".join(passed) if passed else "no arguments"
    called = "the source" if role == "source" else f"`{role}`"
    if role == "key":
        called = "a key"
    msg = f"`{display}` {signature.describe()} but {called} passes {total}: {what}"
    return error("E304", span, msg, _arity_hint(role, implicit))


def _start_filled(span: Span, display: str, signature: resolve.Signature) -> Diagnostic:
    position = signature.start_position()
    msg = (
        f"argument {position} of the source `{display}` lands on its `start` "
        f"parameter, which the runtime sets to rewind the source"
    )
    hint = "remove that argument; the runtime passes `start` by keyword"
    return error("E304", span, msg, hint)


def _arity_hint(role: str, implicit: tuple[str, ...]) -> str:
    if not implicit:
        return "a source function is called with the flow's arguments only"
    first = " and ".join(implicit)
    return f"a `{role}` function takes {first} first, then the flow's arguments"


def _async(
    span: Span, display: str, role: str, signature: resolve.Signature
) -> Diagnostic | None:
    if role == "key" and signature.is_async:
        msg = f"key function `{display}` is async; keys are computed inline"
        return error("E305", span, msg, "make it a plain function")
    if signature.generator and role not in _GENERATING:
        msg = f"`{display}` is an async generator; `{role}` needs one result per call"
        hint = "use it with `flat_map` or as a source, or make it return its result"
        return error("E305", span, msg, hint)
    return None

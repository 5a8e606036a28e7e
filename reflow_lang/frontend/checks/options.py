"""E4xx: options: known keys for each stage kind, value types and ranges, duplicates.

The table of which option applies where is LANGUAGE.md section 3. Each option is
typed here and the defaults filled in, so that the IR and the plan never see a raw
option.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any, get_args

from reflow_lang.frontend import ast, ir
from reflow_lang.frontend.checks import names
from reflow_lang.frontend.checks.functions import FunctionScope, literal, lower_key
from reflow_lang.frontend.diagnostics import Diagnostic, closest, did_you_mean, error
from reflow_lang.frontend.span import Span
from reflow_lang.plan import JoinHow

CODES: dict[str, str] = {
    "E401": "option that does not apply here",
    "E402": "option value of the wrong type",
    "E403": "option value out of range",
    "E404": "option given twice",
}

_STAGE = ("workers", "order", "batch", "capacity", "on_error", "timeout")

# Which options each stage kind accepts (LANGUAGE.md section 3).
ALLOWED: dict[str, tuple[str, ...]] = {
    "source": ("on_error", "capacity"),
    "merge": ("capacity",),
    "join": ("how", "capacity"),
    "map": _STAGE,
    "flat_map": (*_STAGE, "expansion"),
    "filter": _STAGE,
    "key_by": _STAGE,
    "rejoin": _STAGE,
    "count": ("by", "batch", "capacity"),
    "reduce": ("by", "initial", "batch", "capacity", "on_error", "timeout"),
    "sink": ("order", "batch", "on_error", "timeout"),
}

_ORDERS = ("total", "partial", "none")
_WORDS = frozenset({*_ORDERS, "fail", "skip", "self", *get_args(JoinHow)})
# The options whose value is a literal, or a flow parameter that stands for one.
_LITERAL_VALUED = frozenset(
    {"workers", "batch", "capacity", "expansion", "timeout", "initial"}
)
_POLICIES = ("fail", "skip", "retry(N)", "dead_letter(NAME)")


def lower_options(
    kind: str, span: Span, options: tuple[ast.Option, ...], scope: FunctionScope
) -> ir.Options:
    """The typed options of a stage of `kind`; problems go to `scope.diagnostics`."""
    typed = ir.Options(span)
    seen: dict[str, Span] = {}
    for option in options:
        if option.key in seen:
            first = seen[option.key]
            msg = (
                f"option `{option.key}` is already given at {first.line}:{first.column}"
            )
            hint = "keep one of them"
            scope.diagnostics.append(error("E404", option.key_span, msg, hint))
            continue
        seen[option.key] = option.key_span
        if option.key not in ALLOWED[kind]:
            scope.diagnostics.append(_not_here(option, kind))
            continue
        resolved = _parameter(option, scope)
        if resolved is None:
            continue
        value = _PARSERS[option.key](resolved, scope)
        if value is not None:
            typed = replace(typed, **{option.key: value})
    return typed


def _parameter(option: ast.Option, scope: FunctionScope) -> ast.Option | None:
    """The option with a flow parameter in its value replaced by the parameter's value.

    `None` when the parameter has no value (its own error is reported already).
    """
    value = option.value
    if isinstance(value, ast.Name) and _misspelt_parameter(option, value, scope):
        return None
    if not isinstance(value, ast.Name) or value.dotted not in scope.params:
        return option
    if value.dotted in _WORDS:
        return option  # the option's own words win over a parameter's name
    scope.used_params.add(value.dotted)
    if value.dotted not in scope.param_values:
        return None
    given = scope.param_values[value.dotted]
    literal_value = _as_literal(value.span, scope.params[value.dotted], given)
    return replace(option, value=literal_value)


def _misspelt_parameter(
    option: ast.Option, value: ast.Name, scope: FunctionScope
) -> bool:
    """Reports a name close to a parameter where a literal value is expected.

    `workers = nworker` is a misspelt parameter, not a wrong type: E107 says so, and
    the parameter counts as used, so that no warning repeats the mistake.
    """
    if option.key not in _LITERAL_VALUED or value.dotted in scope.params:
        return False
    meant = closest(value.dotted, scope.params)
    if meant is None:
        return False
    scope.diagnostics.append(
        names.unknown_argument(value.span, value.dotted, [meant], option.key)
    )
    scope.used_params.add(meant)
    return True


def _as_literal(span: Span, type_: str, value: Any) -> ast.Expr:
    if type_ == "duration":
        return ast.Duration(span, value, f"{value:g}s")
    if isinstance(value, bool):
        return ast.Bool(span, value)
    if isinstance(value, int):
        return ast.Int(span, value)
    if isinstance(value, float):
        return ast.Float(span, value)
    return ast.Str(span, str(value))


_KEY_HINT = (
    'name the key in brackets: `keyed(F)` with a function, `keyed("field")` '
    "or `keyed(self)`"
)

# The policies that take an argument, and how to write them.
_POLICY_FORMS = {
    "retry": "`retry(N)`, e.g. `retry(3)`",
    "dead_letter": "`dead_letter(NAME)`, e.g. `dead_letter(failed)`",
}


def quoted_word(value: ast.Expr, words: tuple[str, ...]) -> str | None:
    """A hint for a word written as a string (`order = "total"`), else `None`."""
    if isinstance(value, ast.Str) and value.value in words:
        return f"write it without quotes: `{value.value}`"
    return None


def _not_here(option: ast.Option, kind: str) -> Diagnostic:
    allowed = ALLOWED[kind]
    listed = ", ".join(f"`{k}`" for k in allowed)
    where = [k for k, keys in ALLOWED.items() if option.key in keys]
    if where:
        kinds = ", ".join(f"`{k}`" for k in where)
        msg = f"option `{option.key}` does not apply to `{kind}`; it applies to {kinds}"
        return error("E401", option.key_span, msg, f"`{kind}` takes {listed}")
    msg = f"unknown option `{option.key}` for `{kind}`"
    hint = did_you_mean(option.key, allowed) or f"`{kind}` takes {listed}"
    return error("E401", option.key_span, msg, hint)


def _wrong(
    option: ast.Option, expected: str, scope: FunctionScope, hint: str | None = None
) -> None:
    msg = f"option `{option.key}` must be {expected}"
    scope.diagnostics.append(error("E402", option.value.span, msg, hint))


def _range(
    option: ast.Option, expected: str, found: object, scope: FunctionScope
) -> None:
    msg = f"option `{option.key}` must be {expected}; found {found}"
    hint = f"give `{option.key}` a value {expected}"
    scope.diagnostics.append(error("E403", option.value.span, msg, hint))


def _count(option: ast.Option, scope: FunctionScope) -> int | None:
    value = option.value
    if not isinstance(value, ast.Int):
        hint = f"write a whole number, e.g. `{option.key} = 4`"
        _wrong(option, "an integer", scope, hint)
        return None
    if value.value < 1:
        _range(option, "at least 1", value.value, scope)
        return None
    return value.value


def _expansion(option: ast.Option, scope: FunctionScope) -> float | None:
    value = option.value
    if not isinstance(value, ast.Int | ast.Float):
        _wrong(option, "a number", scope, "write a number, e.g. `expansion = 8`")
        return None
    if value.value <= 0:
        _range(option, "greater than 0", value.value, scope)
        return None
    return float(value.value)


def _timeout(option: ast.Option, scope: FunctionScope) -> float | None:
    value = option.value
    if not isinstance(value, ast.Duration):
        hint = "write a number and a unit (`ms`, `s`, `m` or `h`), e.g. `timeout = 5s`"
        _wrong(option, "a duration such as `250ms`, `5s` or `2m`", scope, hint)
        return None
    if value.seconds <= 0:
        _range(option, "longer than 0s", value.text, scope)
        return None
    return value.seconds


def _order(option: ast.Option, scope: FunctionScope) -> ir.Order | None:
    value = option.value
    if isinstance(value, ast.Name) and value.dotted in _ORDERS:
        return ir.Order(value.span, value.dotted)  # type: ignore[arg-type]
    if isinstance(value, ast.Call) and value.callee.dotted == "keyed":
        if len(value.args) != 1:
            _wrong(option, "`keyed(K)` with one key", scope, _KEY_HINT)
            return None
        key = lower_key(value.args[0], scope)
        return None if key is None else ir.Order(value.span, "keyed", key)
    text = value.dotted if isinstance(value, ast.Name) else None
    hint = did_you_mean(text, [*_ORDERS, "keyed"]) if text else None
    if text == "keyed":
        hint = _KEY_HINT
    hint = quoted_word(value, _ORDERS) or hint
    msg = "option `order` must be `total`, `partial`, `keyed(K)` or `none`"
    scope.diagnostics.append(error("E402", value.span, msg, hint))
    return None


def _on_error(option: ast.Option, scope: FunctionScope) -> ir.ErrorPolicy | None:
    value = option.value
    if isinstance(value, ast.Name) and value.dotted in ("fail", "skip"):
        return ir.ErrorPolicy(value.span, value.dotted)  # type: ignore[arg-type]
    if isinstance(value, ast.Call) and value.callee.dotted == "retry":
        return _retry(option, value, scope)
    if isinstance(value, ast.Call) and value.callee.dotted == "dead_letter":
        return _dead_letter(option, value, scope)
    name = value.callee.dotted if isinstance(value, ast.Call) else None
    name = value.dotted if isinstance(value, ast.Name) else name
    hint = (
        did_you_mean(name, ["fail", "skip", "retry", "dead_letter"]) if name else None
    )
    if isinstance(value, ast.Name) and name in _POLICY_FORMS:
        hint = f"`{name}` takes an argument: {_POLICY_FORMS[name]}"
    hint = quoted_word(value, ("fail", "skip")) or hint
    msg = f"option `on_error` must be one of {', '.join(f'`{p}`' for p in _POLICIES)}"
    scope.diagnostics.append(error("E402", value.span, msg, hint))
    return None


def _retry(
    option: ast.Option, call: ast.Call, scope: FunctionScope
) -> ir.ErrorPolicy | None:
    if len(call.args) != 1 or not isinstance(call.args[0], ast.Int):
        _wrong(
            option,
            "`retry(N)` with an integer N",
            scope,
            f"write {_POLICY_FORMS['retry']}",
        )
        return None
    retries = call.args[0].value
    if retries < 1:
        msg = f"`retry(N)` needs N of at least 1; found {retries}"
        scope.diagnostics.append(error("E403", call.args[0].span, msg, "or use `fail`"))
        return None
    return ir.ErrorPolicy(call.span, "retry", retries)


def _dead_letter(
    option: ast.Option, call: ast.Call, scope: FunctionScope
) -> ir.ErrorPolicy | None:
    args = call.args
    if len(args) != 1 or not isinstance(args[0], ast.Name) or len(args[0].parts) != 1:
        expected = "`dead_letter(NAME)` with the name of a new stream"
        _wrong(option, expected, scope, f"write {_POLICY_FORMS['dead_letter']}")
        return None
    return ir.ErrorPolicy(call.span, "dead_letter", dead_letter=args[0].dotted)


def _by(option: ast.Option, scope: FunctionScope) -> ir.Key | None:
    return lower_key(option.value, scope)


def _initial(option: ast.Option, scope: FunctionScope) -> Any:
    boxed = literal(option.value)
    if boxed is None:
        hint = "write a number, a string, `true`, `false` or a list of them"
        _wrong(option, "a literal", scope, hint)
        return None
    return boxed[0]


def _how(option: ast.Option, scope: FunctionScope) -> JoinHow | None:
    value = option.value
    kinds = get_args(JoinHow)
    if isinstance(value, ast.Name) and value.dotted in kinds:
        return value.dotted  # type: ignore[return-value]
    listed = ", ".join(f"`{k}`" for k in kinds)
    text = value.dotted if isinstance(value, ast.Name) else None
    hint = quoted_word(value, kinds) or (did_you_mean(text, kinds) if text else None)
    msg = f"option `how` must be one of {listed}"
    scope.diagnostics.append(error("E402", value.span, msg, hint))
    return None


_PARSERS: dict[str, Callable[[ast.Option, FunctionScope], Any]] = {
    "workers": _count,
    "batch": _count,
    "capacity": _count,
    "expansion": _expansion,
    "timeout": _timeout,
    "order": _order,
    "on_error": _on_error,
    "by": _by,
    "initial": _initial,
    "how": _how,
}

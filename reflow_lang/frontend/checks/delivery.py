"""E8xx: the flow header: delivery, parameters, their types, defaults and `-p` values.

Parameters from the command line arrive as strings and are typed here by the
declared parameter type; `exactly_once` is checked against the sources' signatures.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from typing import get_args

from reflow_lang.frontend import ast, ir
from reflow_lang.frontend.checks import names
from reflow_lang.frontend.diagnostics import Diagnostic, did_you_mean, error, warning
from reflow_lang.frontend.span import Span
from reflow_lang.plan import Delivery, Value

CODES: dict[str, str] = {
    "E801": "`exactly_once` with a source that cannot rewind",
    "E802": "parameter default of the wrong type",
    "E803": "parameter value of the wrong type",
    "E804": "unknown parameter given with `-p`",
    "E805": "unknown or invalid header option",
    "E807": "parameter without a value",
    "W801": "parameter never used",
}

PARAM_TYPES = ("str", "int", "float", "bool", "duration", "path")
DELIVERIES: tuple[str, ...] = get_args(Delivery)
DEFAULT_DELIVERY: Delivery = "at_least_once"

_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h)")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
# A value of each type as `-p` takes it, for hints.
_EXAMPLES = {
    "str": "text",
    "path": "data.txt",
    "int": "4",
    "float": "0.5",
    "bool": "true",
    "duration": "5s",
}
_SPELLED = {
    "str": "a string",
    "path": "a path string",
    "int": "an integer",
    "float": "a number",
    "bool": "`true` or `false`",
    "duration": "a duration such as `250ms`, `5s` or `2m`",
}


def parse_duration(text: str) -> float | None:
    """`250ms` -> 0.25, `5s` -> 5.0, `2m` -> 120.0; `None` if it is not a duration."""
    match = _DURATION.fullmatch(text.strip())
    if match is None:
        return None
    return float(match.group(1)) * _UNITS[match.group(2)]


def parse_param_value(type_: str, text: str) -> Value:
    """Types a `-p name=value` string; raises `ValueError` when it does not fit."""
    if type_ in ("str", "path"):
        return text
    if type_ == "int":
        return int(text)
    if type_ == "float":
        return _finite(float(text))
    if type_ == "bool" and text in ("true", "false"):
        return text == "true"
    if type_ == "duration":
        seconds = parse_duration(text)
        if seconds is not None:
            return _finite(seconds)
    msg = f"not {_SPELLED[type_]}"
    raise ValueError(msg)


def _short(text: str) -> str:
    return text if len(text) <= 40 else text[:37] + "..."


def _finite(value: float) -> float:
    # `nan` and `inf` have no place in a plan, whose JSON cannot even hold them.
    if not math.isfinite(value):
        msg = "not a finite number"
        raise ValueError(msg)
    return value


def lower_params(
    header: ast.Header, given: Mapping[str, str], found: list[Diagnostic]
) -> tuple[ir.Param, ...]:
    """The typed parameters, with the values they take in this run."""
    first, duplicates = names.find_duplicates(
        ((p.name, p.span) for p in header.params), "parameter"
    )
    found.extend(duplicates)
    params = []
    for param in header.params:
        if first[param.name] is param.span:
            typed = _param(param, given.get(param.name), found)
            if typed is not None:
                params.append(typed)
    found.extend(_unknown_given(header, given, first))
    return tuple(params)


def _param(
    param: ast.Param, given: str | None, found: list[Diagnostic]
) -> ir.Param | None:
    if param.type not in PARAM_TYPES:
        return None  # the parser reports unknown types (E026)

    default = None if param.default is None else _default(param, param.default, found)
    value = default
    if given is not None:
        try:
            value = parse_param_value(param.type, given)
        except ValueError:
            msg = (
                f"`-p {param.name}={_short(given)}` is not {_SPELLED[param.type]}; "
                f"`{param.name}` is declared `{param.type}`"
            )
            found.append(error("E803", param.span, msg, _given_hint(param)))
            return None
    if value is None:
        if param.default is None:
            msg = f"parameter `{param.name}` has no default and no value was given"
            hint = f"pass `-p {param.name}=...` or give it a default"
            found.append(error("E807", param.span, msg, hint))
        return None
    return ir.Param(param.span, param.name, param.type, default, value)


def _given_hint(param: ast.Param) -> str:
    example = _EXAMPLES[param.type]
    return f"give {_SPELLED[param.type]}, e.g. `-p {param.name}={example}`"


def _default(param: ast.Param, expr: ast.Expr, found: list[Diagnostic]) -> Value:
    value = _typed_literal(param.type, expr)
    if value is None:
        msg = f"the default of `{param.name}` must be {_SPELLED[param.type]}"
        hint = f"`{param.name}` is declared `{param.type}`"
        found.append(error("E802", expr.span, msg, hint))
    return value


def _typed_literal(type_: str, expr: ast.Expr) -> Value:
    if type_ in ("str", "path") and isinstance(expr, ast.Str):
        return expr.value
    if type_ == "int" and isinstance(expr, ast.Int):
        return expr.value
    if type_ == "float" and isinstance(expr, ast.Int | ast.Float):
        return float(expr.value)
    if type_ == "bool" and isinstance(expr, ast.Bool):
        return expr.value
    if type_ == "duration" and isinstance(expr, ast.Duration):
        return expr.seconds
    return None


def _unknown_given(
    header: ast.Header, given: Mapping[str, str], declared: Mapping[str, Span]
) -> list[Diagnostic]:
    return [
        unknown_given(header.span, name, declared)
        for name in given
        if name not in declared
    ]


def unknown_given(span: Span, name: str, declared: Iterable[str]) -> Diagnostic:
    """E804: `-p name=...` names no parameter of the flow."""
    declared = sorted(declared)
    listed = ", ".join(f"`{d}`" for d in declared) or "none"
    msg = f"unknown parameter `{name}` given with `-p`; the flow's parameters: {listed}"
    hint = did_you_mean(name, declared) or "declare it in the `flow` header"
    return error("E804", span, msg, hint)


def lower_delivery(header: ast.Header, found: list[Diagnostic]) -> Delivery:
    """The header's `delivery` option; E805 for any other header option."""
    delivery = DEFAULT_DELIVERY
    seen: set[str] = set()
    for option in header.options:
        if option.key in seen:
            msg = f"flow option `{option.key}` is given twice"
            found.append(error("E805", option.key_span, msg, "remove one of them"))
            continue
        if option.key != "delivery":
            msg = f"unknown flow option `{option.key}`"
            hint = did_you_mean(option.key, ["delivery"]) or "a flow takes `delivery`"
            found.append(error("E805", option.key_span, msg, hint))
            continue
        seen.add(option.key)
        value = option.value
        if isinstance(value, ast.Name) and value.dotted in DELIVERIES:
            delivery = value.dotted  # type: ignore[assignment]
            continue
        listed = ", ".join(f"`{d}`" for d in DELIVERIES)
        text = value.dotted if isinstance(value, ast.Name) else ""
        close = did_you_mean(text, DELIVERIES) if text else None
        if isinstance(value, ast.Str) and value.value in DELIVERIES:
            close = f"write it without quotes: `{value.value}`"
        found.append(
            error("E805", value.span, f"`delivery` must be one of {listed}", close)
        )
    return delivery


def check_rewindable(flow: ir.Flow) -> list[Diagnostic]:
    """E801: under `exactly_once` every source must accept `start`."""
    if flow.delivery != "exactly_once":
        return []
    found = []
    for stage in flow.stages:
        function = stage.function
        if stage.kind == "source" and function is not None and not function.rewindable:
            msg = (
                f"`delivery = exactly_once` needs every source to rewind; "
                f"`{function.display}` has no `start` parameter"
            )
            hint = (
                "add a keyword parameter `start: int = 0` that skips the first "
                "`start` events, or use `delivery = at_least_once`"
            )
            found.append(error("E801", function.span, msg, hint))
    return found


def unused_params(header: ast.Header, used: set[str]) -> list[Diagnostic]:
    """W801: parameters no argument uses."""
    return [
        warning("W801", p.span, f"parameter `{p.name}` is never used", "remove it")
        for p in header.params
        if p.name not in used
    ]

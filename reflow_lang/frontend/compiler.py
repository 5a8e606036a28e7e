"""The compiler: a checked IR flow to the `Plan` the runtime runs.

The IR already holds every decision; compiling is a translation: flow parameters are
substituted into arguments, IR keys and orders become plan keys and orders, and each
stream becomes a queue with its producer and readers. Only a flow without errors is
compiled, so nothing here reports problems.
"""

from __future__ import annotations

from collections.abc import Mapping

from reflow_lang.errors import PlanError
from reflow_lang.frontend import ir
from reflow_lang.plan import (
    ErrorPolicy,
    FunctionRef,
    Key,
    Order,
    Plan,
    Queue,
    Task,
    Value,
)


def compile_flow(flow: ir.Flow) -> Plan:
    """The plan of a checked flow (one whose lowering reported no error)."""
    values = {param.name: param.value for param in flow.params}
    return Plan(
        flow=flow.name,
        file=flow.file,
        delivery=flow.delivery,
        parameters=tuple((param.name, param.value) for param in flow.params),
        tasks=tuple(_task(stage, values) for stage in flow.stages),
        queues=tuple(
            Queue(stream.name, stream.producer, stream.readers, stream.capacity)
            for stream in flow.streams
        ),
    )


def _task(stage: ir.Stage, values: Mapping[str, Value]) -> Task:
    options = stage.options
    function = None if stage.function is None else _function(stage.function, values)
    return Task(
        name=stage.name,
        kind=stage.kind,
        location=f"{stage.span.file}:{stage.span.line}:{stage.span.column}",
        function=function,
        inputs=stage.inputs,
        output=stage.output,
        workers=options.workers,
        order=_order(stage.order, values),
        batch=options.batch,
        timeout=options.timeout,
        on_error=_policy(options.on_error),
        expansion=options.expansion,
        rewindable=stage.kind == "source" and function is not None and _rewinds(stage),
        by=None if options.by is None else _key(options.by, values),
        initial=options.initial,
        join_keys=tuple(_key(key, values) for key in stage.join_keys),
        how=options.how,
        split=stage.split,
        closes=stage.closes,
    )


def _rewinds(stage: ir.Stage) -> bool:
    return stage.function is not None and stage.function.rewindable


def _function(function: ir.Function, values: Mapping[str, Value]) -> FunctionRef:
    args = tuple(_value(arg, values) for arg in function.args)
    return FunctionRef(
        function.module, function.name, function.path, args, function.display
    )


def _value(arg: ir.Arg, values: Mapping[str, Value]) -> Value:
    if isinstance(arg, ir.ParamRef):
        return values[arg.name]
    return arg.value


def _key(key: ir.Key, values: Mapping[str, Value]) -> Key:
    if key.kind == "function" and key.function is not None:
        return Key("function", function=_function(key.function, values))
    if key.kind == "field":
        return Key("field", field=key.field)
    return Key("self")


def _order(order: ir.Order | None, values: Mapping[str, Value]) -> Order:
    if order is None:
        # Only a flow with errors has unknown orders, and it is never compiled.
        msg = "cannot compile a stage whose order is unknown"
        raise PlanError(msg)
    key = None if order.key is None else _key(order.key, values)
    return Order(order.kind, key)


def _policy(policy: ir.ErrorPolicy | None) -> ErrorPolicy:
    if policy is None:
        return ErrorPolicy()
    return ErrorPolicy(policy.kind, policy.retries, policy.dead_letter)

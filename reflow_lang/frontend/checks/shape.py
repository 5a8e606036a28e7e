"""E5xx: graph shape: sinks end chains, chains end in sinks, streams are read.

A sink that is followed by a stage, a binding whose chain ends in a sink and an
unbound chain that does not end in one are found while lowering walks the chains;
the rest (a flow without a sink, streams nobody reads) on the finished graph.
"""

from __future__ import annotations

from collections.abc import Set

from reflow_lang.frontend import ir
from reflow_lang.frontend.diagnostics import Diagnostic, error, warning
from reflow_lang.frontend.span import Span

CODES: dict[str, str] = {
    "E501": "flow without a sink",
    "E502": "stage after a sink",
    "E503": "unbound chain that does not end in a sink",
    "E504": "dead-letter stream nobody reads",
    "E505": "binding of a chain that ends in a sink",
    "E506": "`merge` or `join` that reads one stream twice",
    "W501": "stream nobody reads",
}


def after_sink(span: Span, sink: str) -> Diagnostic:
    """E502: a sink consumes its input, so nothing can follow it."""
    msg = f"nothing can follow a sink; `{sink}` ends this chain"
    hint = "start a new chain from a bound stream to do more with the events"
    return error("E502", span, msg, hint)


def unbound_without_sink(span: Span) -> Diagnostic:
    """E503: the events of an unbound chain would go nowhere."""
    msg = "this chain is not bound to a name and does not end in a sink"
    hint = "bind it with `NAME = ...` for later chains, or end it with `| sink F(...)`"
    return error("E503", span, msg, hint)


def bound_sink(span: Span, name: str) -> Diagnostic:
    """E505: a chain that ends in a sink produces no stream to bind."""
    msg = f"`{name}` is bound to a chain that ends in a sink, which produces no stream"
    hint = f"remove `{name} =`, or bind the chain before its sink"
    return error("E505", span, msg, hint)


def read_twice(span: Span, kind: str, name: str, first: str) -> Diagnostic:
    """E506: a merge or join names the same stream (or an alias of it) twice."""
    msg = f"`{kind}` reads the stream `{name}` twice; each input must be another stream"
    if first != name:
        msg = (
            f"`{kind}` reads one stream twice: `{name}` is the stream `{first}` "
            "under another name; each input must be another stream"
        )
    if kind == "merge":
        hint = "list each stream once"
    else:
        hint = (
            f"to join `{name}` with itself, read a copy of it through a stage first, "
            f"e.g. `copy = {name} | key_by K`"
        )
    return error("E506", span, msg, hint)


def check_sinks(flow: ir.Flow) -> list[Diagnostic]:
    """E501: a flow needs at least one sink."""
    if any(stage.kind == "sink" for stage in flow.stages):
        return []
    msg = f"flow `{flow.name}` has no sink, so it has no effect"
    hint = "end a chain with `| sink F(...)`, e.g. `| sink text.print`"
    return [error("E501", flow.span, msg, hint)]


def check_graph(flow: ir.Flow, read: Set[str] = frozenset()) -> list[Diagnostic]:
    """E501 without a sink, E504 and W501 for bound streams nobody reads.

    `read` names streams that a chain reads even though lowering could not build
    the reading stage (after an error reported there): they count as read.
    """
    found = check_sinks(flow)
    for stream in flow.streams:
        if stream.readers or not stream.bound or stream.name in read:
            continue
        if stream.dead_letter:
            msg = (
                f"dead-letter stream `{stream.name}` is never read, "
                "so failed events are lost"
            )
            hint = (
                f"read it, e.g. `{stream.name} | sink text.print`, "
                "or use `on_error = skip`"
            )
            found.append(error("E504", stream.span, msg, hint))
        else:
            msg = f"stream `{stream.name}` is never read"
            hint = "read it in a later chain, or remove the binding"
            found.append(warning("W501", stream.span, msg, hint))
    return found

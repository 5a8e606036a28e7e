"""Running small flows against `orderfns` for the order tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from reflow_lang.loader import load_module
from reflow_lang.runtime import JobResult
from reflow_lang.testing import run_flow_text

HERE = Path(__file__).parent
FLOW = str(HERE / "order.flow")  # `use python orderfns` is found beside it

# The module the flows load, so that tests configure the very same object.
fns: Any = load_module("orderfns", str(HERE / "orderfns.py"))


def run(body: str) -> tuple[JobResult, dict[str, list[Any]]]:
    """Runs a flow made of `body` under a header that imports `orderfns` as `f`."""
    text = f"flow order_test()\nuse python orderfns as f\n{body}"
    result, sinks = run_flow_text(text, file=FLOW)
    assert result.ok, result.error
    return result, sinks


def only(sinks: dict[str, list[Any]]) -> list[Any]:
    """What the flow's single sink received."""
    (values,) = sinks.values()
    return values

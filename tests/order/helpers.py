"""Running small flows against `orderfns` for the order tests, in either mode.

`run(body, mode)` runs a flow in this process (`local`) or as processes around a
queue server (`processes`, inside the `mode` fixture's `collecting_in`); `examples`
gives a property's hypothesis settings for the mode, fewer in process mode, where a
run costs about 0.6 s.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from hypothesis import settings

from reflow_lang.loader import load_module
from reflow_lang.runtime import JobResult, reorder
from reflow_lang.testing import run_flow_text

HERE = Path(__file__).parent
FLOW = str(HERE / "order.flow")  # `use python orderfns` is found beside it

# The module the flows load, so that tests configure the very same object.
fns: Any = load_module("orderfns", str(HERE / "orderfns.py"))

# Examples per property in process mode: each is a run of its own processes.
PROCESS_EXAMPLES = 4


def examples(mode: str, local: int, processes: int = PROCESS_EXAMPLES) -> settings:
    """Hypothesis settings for a property run in `mode`: `local` examples in this
    process, `processes` (at most `local`) in process mode.

    The property is a function inside the test, which takes the `mode` fixture:
    hypothesis then sees no function-scoped fixture, and every example of process
    mode writes fresh collector files in the test's shared folder.
    """
    count = local if mode == "local" else min(local, processes)
    return settings(max_examples=count, deadline=None)


def run(
    body: str, mode: str, *, delivery: str | None = None
) -> tuple[JobResult, dict[str, list[Any]]]:
    """Runs a flow made of `body` under a header that imports `orderfns` as `f`, in
    `mode`, with the events per unit `fns.configure(chunk=...)` set; `delivery` is
    the flow's, when given."""
    options = "" if delivery is None else f" [delivery = {delivery}]"
    text = f"flow order_test(){options}\nuse python orderfns as f\n{body}"
    # In process mode the workers set the chunk when they load `orderfns`.
    chunk = fns.CHUNK if mode == "local" else None
    with min_chunk(chunk):
        result, sinks = run_flow_text(text, file=FLOW, processes=mode == "processes")
    assert result.ok, result.error
    return result, sinks


@contextlib.contextmanager
def min_chunk(size: int | None) -> Iterator[None]:
    """Events per unit below which batches are not cut, in this process; as it is
    when `None`. Small, so that the parts of one parent and the lanes of one batch
    do run on several workers."""
    if size is None:
        yield
        return
    saved, reorder.MIN_CHUNK = reorder.MIN_CHUNK, size
    try:
        yield
    finally:
        reorder.MIN_CHUNK = saved


def only(sinks: dict[str, list[Any]]) -> list[Any]:
    """What the flow's single sink received."""
    (values,) = sinks.values()
    return values

"""The public test helpers of `reflow_lang.testing`, used from a flow.

`run_flow_text` runs its flow in both modes of the `mode` fixture. A `ListSink`
stays local: the test reads the object a flow's module holds in this process (a
worker process's copy is out of its reach; in process mode a flow's sinks are
replaced by collectors, as `run_flow_text` does).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from reflow_lang.errors import PlanError
from reflow_lang.loader import load_module
from reflow_lang.testing import ListSink, ListSource, run_flow_text

MODULE = """\
from reflow_lang.testing import ListSink, ListSource

words = ListSource(["b", "a", "b"])
out = ListSink()
"""

FLOW = """\
flow letters()
use python testing_helpers_mod as m
source m.words | map str.upper | count [by = self] | sink m.out
"""


def test_run_flow_text_collects_each_sink(mode: str, tmp_path: Path) -> None:
    (tmp_path / "testing_helpers_mod.py").write_text(MODULE)

    result, outputs = run_flow_text(
        FLOW, file=str(tmp_path / "letters.flow"), processes=mode == "processes"
    )

    assert result.ok
    assert outputs == {"line3/sink": [("A", 1), ("B", 2)]}


def test_run_flow_text_refuses_flow_with_errors() -> None:
    with pytest.raises(PlanError, match=re.escape("the flow does not compile: ")):
        run_flow_text("flow broken()\nsource nowhere.fn | sink nowhere.out\n")


def test_list_source_rewinds_and_list_sink_keeps() -> None:
    source = ListSource([1, 2, 3])
    sink = ListSink()

    sink(list(source(start=1)))
    sink.end()

    assert (sink.values, sink.ended) == ([2, 3], True)


def test_list_sink_from_flow_module_sees_events(tmp_path: Path) -> None:
    from reflow_lang.frontend.api import compile_file
    from reflow_lang.testing import run_plan

    module = tmp_path / "testing_sink_mod.py"
    module.write_text(MODULE)
    flow = tmp_path / "f.flow"
    flow.write_text(FLOW.replace("testing_helpers_mod", "testing_sink_mod"))

    compilation = compile_file(str(flow))
    assert compilation.plan is not None
    result = run_plan(compilation.plan)

    sink = load_module("testing_sink_mod", str(module)).out
    assert result.ok
    assert (sink.values, sink.ended) == ([("A", 1), ("B", 2)], True)

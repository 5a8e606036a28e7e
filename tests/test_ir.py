"""The IR: lowering's result, printed as stable text for `reflowc compile --emit ir`."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from frontend_helpers import check

from reflow_lang.frontend import ir
from reflow_lang.frontend.ir import format_ir
from reflow_lang.frontend.span import Span

FLOW = """\
flow demo(path: str = "in.txt", n: int = 2, wait: duration = 250ms) [delivery = exactly_once]
use text
use python fns as f
def words(s) = s | flat_map text.words [expansion = 4] | map str.lower
lines = source f.rsrc(path) [capacity = 64]
counts = lines | words | filter f.two(n) [workers = 2, order = partial, on_error = dead_letter(bad)]
    | rejoin f.parts [timeout = wait]
counts | count [by = self] | sink text.write_tsv("-")
bad | sink text.print
"""  # noqa: E501

EXPECTED = """\
flow demo [delivery = exactly_once]
  param path: str = "in.txt"
  param n: int = 2  (given 5)
  param wait: duration = 0.25s

use text = reflow_lang.stdlib.text
use python f = fns from DIR/fns.py

lines = source f.rsrc(path) [capacity = 64] -> lines : total  # @5:9; rewindable
counts/words/flat_map = flat_map text.words <- lines [expansion = 4] -> counts/words/flat_map : total  # @4:20; from def words
counts/words/map = map str.lower <- counts/words/flat_map -> counts/words/map : total  # @4:58; in split counts/words/flat_map; from def words
counts/filter = filter f.two(n) <- counts/words/map [workers = 2, order = partial, on_error = dead_letter(bad)] -> counts/filter : partial  # @6:26; in split counts/words/flat_map
counts/rejoin = rejoin f.parts <- counts/filter [timeout = 0.25s] -> counts : total  # @7:7; closes counts/words/flat_map
line8/count = count <- counts [by = self] -> line8/count : total  # @8:10
line8/sink = sink text.write_tsv("-") <- line8/count : total  # @8:30
line9/sink = sink text.print <- bad : none  # @9:7

stream lines: total [capacity = 64]  lines -> counts/words/flat_map
stream counts/words/flat_map: total [capacity = 2048]  counts/words/flat_map -> counts/words/map
stream counts/words/map: total [capacity = 2048]  counts/words/map -> counts/filter
stream counts/filter: partial [capacity = 2048]  counts/filter -> counts/rejoin
stream dead_letter bad: none [capacity = 2048]  counts/filter -> line9/sink
stream counts: total [capacity = 2048]  counts/rejoin -> line8/count
stream line8/count: total [capacity = 2048]  line8/count -> line8/sink
"""  # noqa: E501


def test_format_ir_prints_the_whole_graph(tmp_path: Path) -> None:
    c = check(tmp_path, FLOW, params={"n": "5"})
    assert c.diagnostics == ()
    assert c.ir is not None
    assert format_ir(c.ir).replace(str(tmp_path), "DIR") == EXPECTED
    assert str(c.ir) == format_ir(c.ir)


def test_format_ir_is_stable(tmp_path: Path) -> None:
    first = check(tmp_path, FLOW).ir
    second = check(tmp_path, FLOW).ir
    assert first is not None and second is not None
    assert format_ir(first) == format_ir(second)
    assert first == second


def test_spans_take_no_part_in_equality() -> None:
    a = Span("a.flow", 1, 1, 1, 5)
    b = Span("b.flow", 9, 3, 9, 9)
    key = ir.Key(a, "field", field="user")
    assert ir.Order(a, "keyed", key) == ir.Order(
        b, "keyed", dataclasses.replace(key, span=b)
    )
    assert ir.Order(a, "keyed", key) != ir.Order(a, "keyed", ir.Key(a, "self"))


def test_every_stream_and_stage_is_annotated(tmp_path: Path) -> None:
    flow = check(tmp_path, FLOW).ir
    assert flow is not None
    assert all(stage.order is not None for stage in flow.stages)
    assert all(stream.order is not None for stream in flow.streams)


def test_values_print_as_flow_literals() -> None:
    values = [True, 'a"b', [1, 2.5, "x"], None]
    assert [ir.format_value(v) for v in values] == [
        "true",
        '"a\\"b"',
        '[1, 2.5, "x"]',
        "none",
    ]

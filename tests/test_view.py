"""Tests of the live view, progress lines and summary (`reflow_lang.runtime.view`).

The statistics are built by hand, so these tests need no running job and no clock.
"""

from __future__ import annotations

import io
from dataclasses import replace

import pytest
from rich.console import Console
from syrupy.assertion import SnapshotAssertion

from reflow_lang.runtime.statistics import JobStatistics, StageStatistics
from reflow_lang.runtime.view import (
    LiveView,
    ProgressLines,
    format_duration,
    live_renderable,
    progress_line,
    stage_table,
    summary_table,
)


def _stage(name: str, kind: str, **counts: object) -> StageStatistics:
    values: dict[str, object] = {
        "workers": 1,
        "order": "total",
        "events_in": 0,
        "events_out": 0,
        "errors": 0,
        "skipped": 0,
        "retried": 0,
        "dead_lettered": 0,
        "held": 0,
        "queue_depth": 0,
        "queue_capacity": 2048,
        "rate": 0.0,
    }
    values.update(counts)
    return StageStatistics(name, kind, **values)  # type: ignore[arg-type]


def _job(elapsed: float = 3.5) -> JobStatistics:
    stages = (
        _stage("lines", "source", events_out=120_000, rate=34_285.7, queue_depth=512),
        _stage(
            "words/flat_map",
            "flat_map",
            events_in=119_488,
            events_out=1_194_880,
            queue_depth=None,
            queue_capacity=None,
            rate=341_394.3,
        ),
        _stage(
            "words/map",
            "map",
            workers=4,
            order="partial",
            events_in=1_194_880,
            events_out=1_194_870,
            errors=12,
            skipped=10,
            dead_lettered=2,
            held=256,
            queue_depth=2048,
            rate=341_391.4,
        ),
        _stage(
            "bad/sink",
            "sink",
            events_in=2,
            events_out=2,
            queue_depth=None,
            queue_capacity=None,
        ),
        _stage(
            "line9/count",
            "count",
            order="keyed(self)",
            events_in=1_194_870,
            queue_depth=0,
        ),
        _stage(
            "line9/sink", "sink", events_in=0, queue_depth=None, queue_capacity=None
        ),
    )
    return JobStatistics("wordcount", elapsed, stages)


def _render(renderable: object) -> str:
    console = Console(record=True, width=100, file=io.StringIO(), color_system=None)
    console.print(renderable)
    return console.export_text()


def test_stage_table_matches_snapshot(snapshot: SnapshotAssertion) -> None:
    assert _render(stage_table(_job())) == snapshot


def test_summary_table_matches_snapshot(snapshot: SnapshotAssertion) -> None:
    assert _render(summary_table(_job(75.0), "finished")) == snapshot


def test_live_frame_matches_snapshot(snapshot: SnapshotAssertion) -> None:
    assert _render(live_renderable(_job())) == snapshot


def test_stage_table_shows_what_the_error_policy_did() -> None:
    text = _render(stage_table(_job()))

    assert "words/map: 10 skipped, 2 dead-lettered" in text.splitlines()


def test_summary_title_names_flow_outcome_and_time() -> None:
    text = _render(summary_table(_job(75.0), "failed"))

    assert text.splitlines()[0].strip() == "flow wordcount: failed in 1m15s"


def test_progress_line_counts_reads_writes_errors_and_fullest_queue() -> None:
    assert progress_line(_job()) == (
        "wordcount 3.50s: 120,000 read, 2 written, 12 errors; "
        "fullest queue words/map 2,048/2,048"
    )


def test_progress_line_without_a_used_queue_leaves_it_out() -> None:
    job = JobStatistics("empty", 0.0, (_stage("s", "source"),))

    assert progress_line(job) == "empty 0.00s: 0 read, 0 written, 0 errors"


def test_progress_lines_print_once_per_period_of_job_time() -> None:
    stream = io.StringIO()
    progress = ProgressLines(stream, every=5.0)

    for elapsed in (0.25, 4.99, 5.0, 7.5, 12.0, 14.9, 31.0):
        progress.update(replace(_job(), elapsed=elapsed))

    printed = [line.split(":")[0] for line in stream.getvalue().splitlines()]
    assert printed == ["wordcount 5.00s", "wordcount 12.0s", "wordcount 31.0s"]


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0.0, "0.00s"),
        (9.994, "9.99s"),
        (12.34, "12.3s"),
        (245.0, "4m05s"),
        (7_380.0, "2h03m"),
    ],
)
def test_format_duration_is_short(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


def test_live_view_draws_each_update_and_clears_on_exit() -> None:
    stream = io.StringIO()
    console = Console(file=stream, force_terminal=True, width=100, color_system=None)

    with LiveView(console, redirect_stdout=False) as view:
        view.update(_job(1.0))
        view.update(_job(2.0))

    drawn = stream.getvalue()
    assert "running for 1.00s" in drawn
    assert "running for 2.00s" in drawn
    assert "words/map" in drawn


def test_progress_lines_every_zero_prints_each_tick() -> None:
    stream = io.StringIO()
    progress = ProgressLines(stream, every=0.0)

    for elapsed in (0.0, 0.0, 0.5):
        progress.update(replace(_job(), elapsed=elapsed))

    assert len(stream.getvalue().splitlines()) == 3

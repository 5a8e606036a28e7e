"""What a person watching a job sees: the live table, progress lines, the summary.

Everything here reads `JobStatistics` snapshots and draws them with rich; nothing
here changes the job. The clock is the snapshot's own `elapsed`, so the drawings are
pure functions of the statistics and can be tested without waiting.
"""

from __future__ import annotations

from types import TracebackType
from typing import TYPE_CHECKING, TextIO

from rich import box
from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

if TYPE_CHECKING:
    from rich.console import JustifyMethod

    from reflow_lang.runtime.statistics import JobStatistics, StageStatistics

_COLUMNS: tuple[tuple[str, JustifyMethod], ...] = (
    ("stage", "left"),
    ("kind", "left"),
    ("order", "left"),
    ("in", "right"),
    ("out", "right"),
    ("rate/s", "right"),
    ("queue", "right"),
    ("held", "right"),
    ("errors", "right"),
)


def stage_table(
    statistics: JobStatistics, *, title: str | None = None, average: bool = False
) -> Group:
    """One row per stage: events in and out, rate, queue fill, held outputs, errors.

    The rate is the recent one, or with `average` the mean over the whole job.
    Under the table, one line per stage whose error policy did something says what
    (skipped, retried, dead-lettered events).
    """
    table = Table(
        box=box.SIMPLE_HEAD,
        show_edge=False,
        pad_edge=False,
        collapse_padding=True,
    )
    for header, justify in _COLUMNS:
        name = "mean/s" if header == "rate/s" and average else header
        table.add_column(name, justify=justify, no_wrap=True)
    for stage in statistics.stages:
        rate = _mean_rate(stage, statistics.elapsed) if average else stage.rate
        table.add_row(*_row(stage, rate), style="red" if stage.errors else None)

    notes = [
        Text(f"{stage.name}: {handled}", style="yellow")
        for stage in statistics.stages
        if (handled := _handled(stage))
    ]
    # The title is a line of its own: as the table's title, rich pads it to the
    # table's width, and a file would get trailing spaces.
    heading = [Text(title, style="table.title")] if title is not None else []
    return Group(*heading, table, *notes)


def live_renderable(statistics: JobStatistics) -> Group:
    """The live view's frame: the table under a line naming the flow and the time."""
    heading = Text.assemble(
        ("flow ", "bold"),
        (statistics.flow, "bold cyan"),
        f"  running for {format_duration(statistics.elapsed)}",
        ("  (Ctrl-C drains and stops; twice stops at once)", "dim"),
    )
    return Group(heading, stage_table(statistics))


def summary_table(statistics: JobStatistics, outcome: str) -> Group:
    """The table printed when the job has ended; `outcome` says how it ended."""
    elapsed = format_duration(statistics.elapsed)
    title = f"flow {statistics.flow}: {outcome} in {elapsed}"
    return stage_table(statistics, title=title, average=True)


def progress_line(statistics: JobStatistics) -> str:
    """One line for a log or a pipe: read from sources, written to sinks, trouble."""
    stages = statistics.stages
    read = sum(s.events_out for s in stages if s.kind == "source")
    written = sum(s.events_in for s in stages if s.kind == "sink")
    errors = sum(s.errors for s in stages)
    line = (
        f"{statistics.flow} {format_duration(statistics.elapsed)}: "
        f"{read:,} read, {written:,} written, {errors:,} errors"
    )
    fullest = _fullest_queue(stages)
    if fullest is not None:
        depth, capacity = fullest.queue_depth or 0, fullest.queue_capacity or 0
        line += f"; fullest queue {fullest.name} {depth:,}/{capacity:,}"
    return line


def format_duration(seconds: float) -> str:
    """`0.25s`, `12.3s`, `4m05s`, `2h03m`: short and of constant meaning."""
    if seconds < 10:
        return f"{seconds:.2f}s"
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


class LiveView:
    """The live table on a terminal, redrawn at each statistics tick.

    Use as a context manager around the run, and pass `update` as the run's
    `on_tick`. The table is transient: it disappears when the view closes, so that
    the summary printed next stands alone.
    """

    def __init__(self, console: Console, *, redirect_stdout: bool) -> None:
        # The flow's own output goes to stdout: only when stdout is the same terminal
        # may rich take it over, to print it above the table instead of through it.
        # What is written on stderr while the table is up (the lines a supervisor
        # passes on from its workers, a user function's prints) goes above it too:
        # written past the table, it would be glued to it and erased with it.
        self._live = Live(
            console=console,
            auto_refresh=False,
            transient=True,
            redirect_stdout=redirect_stdout,
            redirect_stderr=True,
        )

    def __enter__(self) -> LiveView:
        self._live.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._live.stop()

    def update(self, statistics: JobStatistics) -> None:
        """Redraws the table from a new snapshot."""
        self._live.update(live_renderable(statistics), refresh=True)


class ProgressLines:
    """Plain progress lines for a stream that is not a terminal, every few seconds.

    Time is read from the snapshots (`elapsed`), so the first tick at or past each
    multiple of `every` prints and the ones between are dropped.
    """

    def __init__(self, stream: TextIO, *, every: float = 5.0) -> None:
        self._stream = stream
        self._every = every
        self._next = every

    def update(self, statistics: JobStatistics) -> None:
        """Prints a line if `every` seconds of the job passed since the last one."""
        if statistics.elapsed < self._next:
            return

        print(progress_line(statistics), file=self._stream, flush=True)
        # The next line is due at the next multiple of `every`: a slow tick that
        # jumped over several deadlines prints once, not a burst.
        periods = statistics.elapsed // self._every if self._every > 0 else 0.0
        self._next = (periods + 1) * self._every


def _row(stage: StageStatistics, rate: float) -> tuple[str, ...]:
    queue = "-"
    if stage.queue_depth is not None:
        queue = f"{stage.queue_depth}/{stage.queue_capacity or 0}"
    kind = stage.kind if stage.workers == 1 else f"{stage.kind} ×{stage.workers}"
    return (
        stage.name,
        kind,
        stage.order,
        f"{stage.events_in:,}",
        f"{stage.events_out:,}",
        _compact(rate),
        queue,
        f"{stage.held:,}",
        f"{stage.errors:,}",
    )


def _mean_rate(stage: StageStatistics, elapsed: float) -> float:
    return stage.events_out / elapsed if elapsed > 0 else 0.0


def _handled(stage: StageStatistics) -> str:
    """What the error policy made of the errors: `10 skipped, 2 dead-lettered`."""
    counts = (
        (stage.skipped, "skipped"),
        (stage.retried, "retried"),
        (stage.dead_lettered, "dead-lettered"),
        (stage.restarts, "restart" + "s" * (stage.restarts != 1) + " of its worker"),
    )
    return ", ".join(f"{count:,} {label}" for count, label in counts if count)


def _compact(rate: float) -> str:
    """A rate in three or four characters: `950`, `34k`, `1.2M`."""
    if rate < 10_000:
        return f"{rate:,.0f}"
    if rate < 1_000_000:
        return f"{rate / 1000:.0f}k"
    return f"{rate / 1_000_000:.1f}M"


def _fullest_queue(stages: tuple[StageStatistics, ...]) -> StageStatistics | None:
    """The stage whose output queue is fullest by share; `None` if all are empty."""
    best: StageStatistics | None = None
    best_share = 0.0
    for stage in stages:
        if not stage.queue_depth or not stage.queue_capacity:
            continue
        share = stage.queue_depth / stage.queue_capacity
        if share > best_share:
            best, best_share = stage, share
    return best

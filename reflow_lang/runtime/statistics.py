"""What a running job reports: per-stage counters, snapshots and the final result.

Workers bump the mutable `StageCounters` of their stages per batch; `statistics()`
turns them into frozen `StageStatistics` snapshots, cheap enough to call at any time.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from reflow_lang.errors import ReflowError


@dataclass(frozen=True, slots=True)
class StageStatistics:
    """A snapshot of one stage."""

    name: str
    """The task's name in the plan."""
    kind: str
    """The stage kind (`source`, `map`, ...)."""
    workers: int
    """Parallel workers (calls in flight at once) of the stage."""
    order: str
    """The order the stage keeps (`total`, `partial`, `keyed(K)`, `none`)."""
    events_in: int
    """Events taken from the input (for a source: read from its function)."""
    events_out: int
    """Events produced (for the last stage of a worker: accepted downstream; for a
    sink: accepted by its function)."""
    errors: int
    """Exceptions raised by the stage's function (each retry that fails counts)."""
    skipped: int
    """Events dropped under `on_error = skip`."""
    retried: int
    """Calls made again under `on_error = retry(N)`."""
    dead_lettered: int
    """Events sent to the dead-letter stream."""
    held: int
    """Outputs computed but not yet accepted downstream, reorder buffer included
    (stages fused into one worker report it on their last stage)."""
    queue_depth: int | None
    """Events in the stage's output queue; `None` for a sink or a stage fused with
    the next one (no queue between them)."""
    queue_capacity: int | None
    """The bound of that queue; `None` when `queue_depth` is."""
    rate: float
    """Events out per second, over the last sampling interval."""
    restarts: int = 0
    """In process mode, how often the worker process of the stage's unit was
    restarted (counted on the unit's first stage)."""


@dataclass(frozen=True, slots=True)
class JobStatistics:
    """A snapshot of a whole job."""

    flow: str
    """The flow's name."""
    elapsed: float
    """Seconds since the job started."""
    stages: tuple[StageStatistics, ...]
    """Every stage, in the plan's (topological) order."""


@dataclass(frozen=True, slots=True)
class JobResult:
    """How a job ended."""

    ok: bool
    """No stage failed and the job was not aborted (a stopped job that drained is
    ok, and `interrupted`)."""
    interrupted: bool
    """`stop()` or `abort()` was called (a first or second Ctrl-C)."""
    aborted: bool
    """`abort()` cancelled the job before it drained."""
    error: ReflowError | None
    """What failed: a `StageError` for a user function, a `PlanError` for a plan
    this runtime cannot run."""
    statistics: JobStatistics
    """The last snapshot."""


class StageCounters:
    """The live, mutable counters of one stage (bumped per batch, never per event)."""

    __slots__ = (
        "dead_lettered",
        "errors",
        "events_in",
        "events_out",
        "held",
        "retried",
        "skipped",
    )

    def __init__(self) -> None:
        self.events_in = 0
        self.events_out = 0
        self.errors = 0
        self.skipped = 0
        self.retried = 0
        self.dead_lettered = 0
        self.held = 0


class RateMeter:
    """Events per second over the last interval of at least `interval` seconds."""

    __slots__ = ("_clock", "_count", "_interval", "_rate", "_time")

    def __init__(self, clock: Callable[[], float], interval: float = 0.5) -> None:
        self._clock = clock
        self._interval = interval
        self._time = clock()
        self._count = 0
        self._rate = 0.0

    def sample(self, count: int) -> float:
        """The rate, given the running total `count`; resamples when due."""
        now = self._clock()
        elapsed = now - self._time
        if elapsed >= self._interval:
            self._rate = (count - self._count) / elapsed
            self._time = now
            self._count = count
        return self._rate

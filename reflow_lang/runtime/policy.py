"""Error policies: what an exception in a user function does to its event.

`ErrorHandler.recover` is called with the exception of one event's call and a way to
call the function again; by the stage's `on_error` it raises a `StageError` (`fail`),
calls again with exponential backoff then fails (`retry(N)`), or drops the event,
counted (`skip`) or sent on as a dead letter (`dead_letter(NAME)`).
"""

from __future__ import annotations

import logging
import reprlib
from collections.abc import Awaitable, Callable
from typing import Any

from reflow_lang.errors import StageError
from reflow_lang.plan import ErrorPolicy
from reflow_lang.runtime.events import Batch, EventId, Listed
from reflow_lang.runtime.statistics import StageCounters

logger = logging.getLogger(__name__)

# Retry delays: 10 ms, 20 ms, 40 ms, ... at most one second.
BACKOFF_BASE = 0.01
BACKOFF_CAP = 1.0

Sleep = Callable[[float], Awaitable[None]]

# How many skipped (or dead-lettered) events a stage logs one by one.
LOGGED_PER_STAGE = 10
SKIPPED = (
    "stage `%s` skipped event %r: %s: %s",
    "stage `%s` has skipped %d events; further ones are counted in the summary, "
    "not logged",
)
DEAD_LETTERED = (
    "stage `%s` sent event %r to its dead letters: %s: %s",
    "stage `%s` has sent %d events to its dead letters; further ones are counted "
    "in the summary, not logged",
)

_short = reprlib.Repr()
_short.maxstring = 60
_short.maxother = 60


class _Drop:
    """The marker of an event that gave nothing because its call failed."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "DROP"

    def __bool__(self) -> bool:
        # A dropped event fails a filter like an event the filter rejected.
        return False


DROP: Any = _Drop()


class CallTimeout(TimeoutError):
    """A call of a user function ran longer than the stage's `timeout`."""

    def __init__(self, timeout: float) -> None:
        super().__init__(f"call took longer than the stage's timeout of {timeout:g}s")


def short_repr(value: Any) -> str:
    """A repr of an event short enough for a message."""
    return _short.repr(value)


def backoff(attempt: int) -> float:
    """The delay before retry number `attempt` (from 0)."""
    return min(BACKOFF_BASE * 2.0**attempt, BACKOFF_CAP)


class ErrorHandler:
    """Applies one stage's error policy; collects its dead letters for the worker."""

    def __init__(
        self,
        stage: str,
        function: str,
        policy: ErrorPolicy,
        counters: StageCounters,
        sleep: Sleep,
    ) -> None:
        self.stage = stage
        self.function = function
        self.policy = policy
        self.counters = counters
        self.sleep = sleep
        self.dead: list[Batch] = []

    async def recover(
        self,
        error: Exception,
        value: Any,
        event_id: EventId | None,
        again: Callable[[], Awaitable[Any]],
    ) -> Any:
        """The result for an event whose call raised `error`: a value, or `DROP`.

        Raises:
            StageError: under `fail`, or once `retry(N)` has used its retries.
        """
        self.counters.errors += 1
        kind = self.policy.kind
        if kind == "retry":
            return await self._retry(error, value, event_id, again)
        if kind == "skip":
            self.counters.skipped += 1
            self._log_event(
                logging.WARNING, SKIPPED, self.counters.skipped, event_id, error
            )
            return DROP
        if kind == "dead_letter":
            self._dead_letter(error, value, event_id)
            return DROP
        raise self.failure(error, value, event_id) from error

    async def _retry(
        self,
        error: Exception,
        value: Any,
        event_id: EventId | None,
        again: Callable[[], Awaitable[Any]],
    ) -> Any:
        for attempt in range(self.policy.retries):
            logger.warning(
                "stage `%s` retries event %r (%d of %d) after %s: %s",
                self.stage,
                event_id,
                attempt + 1,
                self.policy.retries,
                type(error).__name__,
                error,
            )
            await self.sleep(backoff(attempt))
            self.counters.retried += 1
            try:
                return await again()
            except Exception as exc:  # the user's function: any exception is data
                self.counters.errors += 1
                error = exc
        raise self.failure(error, value, event_id) from error

    def _dead_letter(
        self, error: Exception, value: Any, event_id: EventId | None
    ) -> None:
        self.counters.dead_lettered += 1
        record = {
            "value": value,
            "error": {"type": type(error).__name__, "message": str(error)},
            "stage": self.stage,
            "id": event_id,
        }
        origin = str(event_id[0]) if event_id else self.stage
        stamp = tuple(event_id[1:]) if event_id else (self.counters.dead_lettered,)
        self.dead.append(Batch([record], Listed(origin, (stamp,))))
        self._log_event(
            logging.ERROR, DEAD_LETTERED, self.counters.dead_lettered, event_id, error
        )

    def _log_event(
        self,
        level: int,
        what: tuple[str, str],
        count: int,
        event_id: EventId | None,
        error: Exception,
    ) -> None:
        # A flow with many bad lines would flood stderr: the first few events are
        # logged one by one, the rest only counted (the summary shows the counts).
        if count > LOGGED_PER_STAGE:
            return
        one, many = what
        logger.log(level, one, self.stage, event_id, type(error).__name__, error)
        if count == LOGGED_PER_STAGE:
            logger.log(level, many, self.stage, count)

    def failure(
        self, error: Exception, value: Any, event_id: EventId | None
    ) -> StageError:
        """The error that stops the job for this event."""
        return StageError(self.stage, self.function, event_id, short_repr(value), error)

    def take_dead(self) -> list[Batch]:
        """The dead letters collected since the last call."""
        dead, self.dead = self.dead, []
        return dead

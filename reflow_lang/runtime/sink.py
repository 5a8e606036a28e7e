"""The output side of a sink: offering batches to a sink function.

A sink function is called with a list of event values and answers how many it
accepted (`None`: all). That answer is its credit: the rest of the batch is offered
again, after a backoff (growing to a second) when it accepted nothing; a sink that
keeps accepting nothing is waited for (it is back-pressure), with a warning every
`REFUSALS_WARNED` refusals in a row. An answer that is not `None` or an int from 0
to the batch's length is a broken sink: it fails the job whatever the policy, as no
policy can tell which events it took. A `BrokenPipeError` (the reader of the sink's
output went away) fails the job at once whatever the policy, with that error as
the cause. A batch call that raises is
retried event by event under the stage's error policy, so the good events still go
through. When end-of-source arrives, the function's optional `end` attribute is
called with the sink's arguments (the stdlib file sinks close their files there).

A sink function may also offer `checkpoint(*args)` (where its output stands, after
what it accepted: a file sink answers the file's size) and `restore(value, *args)`
(back to such a point: a file sink truncates its file there). Then `changes` answers
the checkpoint after each batch accepted, which the worker saves with the batch's
acknowledgement, and a restarted sink worker `restore`s it before reading again from
the committed offset: what the sink wrote after its last acknowledgement is undone
and written once more, so it sees every event exactly once. A sink without them
(standard output) is at least once across a restart. `checkpoint` runs on the event
loop, after every batch: it must be quick.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from reflow_lang.runtime.events import Batch, Instruction, Item
from reflow_lang.runtime.functions import UserFunction
from reflow_lang.runtime.offload import Offload
from reflow_lang.runtime.policy import (
    DROP,
    CallTimeout,
    ErrorHandler,
    backoff,
    short_repr,
)
from reflow_lang.runtime.queue import Credit
from reflow_lang.runtime.statistics import StageCounters

logger = logging.getLogger(__name__)

# The room a sink answers: it cannot tell how much it will take next, so the worker
# offers it whatever it holds (a sink's back-pressure is its partial answers).
SINK_ROOM = 1 << 30

# Refusals in a row between two warnings: about 30 s once the backoff is at its cap.
REFUSALS_WARNED = 36


class SinkOutput:
    """Offers batches to a sink function; see the module docstring."""

    def __init__(
        self,
        function: UserFunction,
        handler: ErrorHandler,
        counters: StageCounters,
        offload: Offload,
        timeout: float | None,
        sleep: Callable[[float], Awaitable[None]],
    ) -> None:
        self.function = function
        self.handler = handler
        self.counters = counters
        self.offload = offload
        self.timeout = timeout
        self.sleep = sleep
        self._refusals = 0
        self._checkpoint = getattr(function.function, "checkpoint", None)
        self._written = False  # accepted a batch since the last checkpoint

    def changes(self) -> dict[str, Any] | None:
        """`{"sink": checkpoint}` when a batch was accepted since the last call and
        the function has a `checkpoint` (that answers a value); else `None`."""
        if not self._written or self._checkpoint is None:
            return None
        self._written = False
        try:
            value = self._checkpoint(*self.function.args)
        except Exception as exc:  # the user's checkpoint: it fails the job
            raise self.handler.failure(exc, None, None) from exc
        return None if value is None else {"sink": value}

    def restore(self, state: Mapping[Any, Any]) -> None:
        """Brings the sink back to the checkpoint in `state`, if any (a restarted
        worker, before it reads again). The function's `restore` runs here, on the
        event loop, once: it must not wait on anything but its own file."""
        restore = getattr(self.function.function, "restore", None)
        if restore is None or state.get("sink") is None:
            return
        try:
            restore(state["sink"], *self.function.args)
        except Exception as exc:  # the user's `restore`: it fails the job
            raise self.handler.failure(exc, None, None) from exc

    async def put(self, item: Item) -> Credit:
        if isinstance(item, Instruction):
            await self._end()
            return Credit(1, SINK_ROOM)

        accepted = await self._offer(item)
        self.counters.events_out += accepted
        self._written = self._written or accepted > 0
        self._refusals = 0 if accepted else self._refusals + 1
        if self._refusals and self._refusals % REFUSALS_WARNED == 0:
            logger.warning(
                "sink `%s` has accepted nothing of its last %d offers; "
                "it is waited for (stop the job to give up)",
                self.handler.stage,
                self._refusals,
            )
        return Credit(accepted, SINK_ROOM)

    async def wait_room(self, at_least: int = 1) -> int:
        # A sink tells no one when it has room again: back off before offering again.
        await self.sleep(backoff(self._refusals))
        return SINK_ROOM

    async def _offer(self, batch: Batch) -> int:
        try:
            result = await self._call(batch.values)
        except BrokenPipeError as exc:
            raise self._reader_gone(exc, batch, 0) from exc
        except Exception:  # the user's sink: found again event by event
            return await self._one_by_one(batch)
        return self._accepted(result, batch, 0)

    async def _one_by_one(self, batch: Batch) -> int:
        for position, value in enumerate(batch.values):
            try:
                result = await self._call([value])
            except BrokenPipeError as exc:
                raise self._reader_gone(exc, batch, position) from exc
            except Exception as exc:  # the user's sink: its policy decides
                result = await self.handler.recover(
                    exc,
                    value,
                    batch.event_id(position),
                    _again(self._call, value),
                )
                if result is DROP:
                    continue
            if self._accepted(result, batch, position, 1) == 0:
                return position
        return len(batch)

    def _reader_gone(self, error: BrokenPipeError, batch: Batch, at: int) -> Exception:
        # Whoever read the sink's output went away (`reflowc run ... | head`): no
        # event can be delivered any more, so no policy applies; the caller (the
        # CLI) sees the `BrokenPipeError` as the failure's cause.
        return self.handler.failure(error, batch.values[at], batch.event_id(at))

    def _accepted(
        self, result: Any, batch: Batch, position: int, offered: int | None = None
    ) -> int:
        offered = len(batch) - position if offered is None else offered
        if result is None:
            return offered
        if not isinstance(result, bool) and isinstance(result, int):
            if 0 <= result <= offered:
                return result
        error = SinkAnswerError(
            f"`{self.handler.function}` returned {short_repr(result)}; a sink returns "
            f"how many of the {offered} events offered it accepted (an int from 0 "
            f"to {offered}) or None for all"
        )
        value = batch.values[position]
        raise self.handler.failure(error, value, batch.event_id(position)) from error

    async def _call(self, values: list[Any]) -> Any:
        function = self.function
        if function.is_async:
            call = function.call(values)
            if self.timeout is None:
                return await call
            try:
                return await asyncio.wait_for(call, self.timeout)
            except TimeoutError as exc:
                raise CallTimeout(self.timeout) from exc
        if function.inline and self.timeout is None:
            return function.call(values)
        try:
            return await self.offload.run(function.call, values, deadline=self.timeout)
        except TimeoutError as exc:
            if isinstance(exc, CallTimeout) or self.timeout is None:
                raise
            raise CallTimeout(self.timeout) from exc

    async def _end(self) -> None:
        end = getattr(self.function.function, "end", None)
        if end is None:
            return
        try:
            result = await self.offload.run(end, *self.function.args)
            if inspect.isawaitable(result):
                await result
        except Exception as exc:  # the user's `end`: it fails the job, whatever policy
            raise self.handler.failure(exc, None, None) from exc


class SinkAnswerError(TypeError):
    """A sink function answered something other than how many events it accepted."""


def _again(
    call: Callable[[list[Any]], Awaitable[Any]], value: Any
) -> Callable[[], Any]:
    async def again() -> Any:
        return await call([value])

    return again

"""The output side of a sink: offering batches to a sink function.

A sink function is called with a list of event values and answers how many it
accepted (`None`: all). That answer is its credit: the rest of the batch is offered
again, after a short backoff when it accepted nothing. A batch call that raises is
retried event by event under the stage's error policy, so the good events still go
through. When end-of-source arrives, the function's optional `end` attribute is
called with the sink's arguments (the stdlib file sinks close their files there).
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable
from typing import Any

from reflow_lang.runtime.events import Batch, Instruction, Item
from reflow_lang.runtime.functions import UserFunction
from reflow_lang.runtime.offload import Offload
from reflow_lang.runtime.policy import DROP, CallTimeout, ErrorHandler, backoff
from reflow_lang.runtime.queue import Credit
from reflow_lang.runtime.statistics import StageCounters


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

    async def put(self, item: Item) -> Credit:
        if isinstance(item, Instruction):
            await self._end()
            return Credit(1, 0)

        accepted = await self._offer(item)
        self.counters.events_out += accepted
        self._refusals = 0 if accepted else self._refusals + 1
        return Credit(accepted, 0)

    async def wait_room(self, at_least: int = 1) -> int:
        # A sink tells no one when it has room again: back off before offering again.
        await self.sleep(backoff(self._refusals))
        return 1

    async def _offer(self, batch: Batch) -> int:
        try:
            result = await self._call(batch.values)
        except Exception:  # the user's sink: found again event by event
            return await self._one_by_one(batch)
        return _accepted(result, len(batch))

    async def _one_by_one(self, batch: Batch) -> int:
        for position, value in enumerate(batch.values):
            try:
                result = await self._call([value])
            except Exception as exc:  # the user's sink: its policy decides
                result = await self.handler.recover(
                    exc,
                    value,
                    batch.event_id(position),
                    _again(self._call, value),
                )
                if result is DROP:
                    continue
            if _accepted(result, 1) == 0:
                return position
        return len(batch)

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


def _accepted(result: Any, offered: int) -> int:
    if isinstance(result, bool) or not isinstance(result, int):
        return offered
    return max(0, min(result, offered))


def _again(
    call: Callable[[list[Any]], Awaitable[Any]], value: Any
) -> Callable[[], Any]:
    async def again() -> Any:
        return await call([value])

    return again

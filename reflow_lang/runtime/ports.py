"""Where a worker takes its inputs from and offers its outputs to.

Inputs: `QueueInput` (one or more queues, as a merge reads them) and `SourceInput`
(a source function, sync or async, rewindable or not). Outputs: `QueueOutput` (a
queue) and `SinkOutput` (a sink function, whose return value is its credit). The
worker loop is the same for every stage kind; only these ends and the step differ.

An acknowledgement may carry changes to the stage's saved state (a sink's
checkpoint, an aggregate's entries): they ride on the acknowledgements of the first
input queue only, so that one queue holds all of a stage's state. A `join` instead
saves each side's table with its own queue's acknowledgements (`ack_each`), and
gets each queue's state back from `attach` (`states`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from reflow_lang.runtime.events import Item, size, slice_item
from reflow_lang.runtime.queue import Credit, EventQueue


class Input(Protocol):
    """The input side of a worker."""

    inputs: int

    async def take(self, limit: int) -> tuple[int, Item]:
        """The next item (at most `limit` events) and the input it came from."""
        ...

    async def poll(self, limit: int) -> tuple[int, Item] | None:
        """The next item if one is there now."""
        ...

    async def ack(
        self, delivered: Sequence[int], changes: Mapping[Any, Any] | None = None
    ) -> None:
        """`delivered[i]` more events of input `i` are fully delivered; `changes`
        to the stage's saved state are stored with them (see the module docstring)."""
        ...

    def end_of(self, index: int) -> bool:
        """Input `index` ended; answers whether every input has."""
        ...


class Output(Protocol):
    """The output side of a worker."""

    async def put(self, item: Item) -> Credit:
        """Offers an item; the answer says how much of it was taken."""
        ...

    async def wait_room(self, at_least: int = 1) -> int:
        """Waits until `at_least` more may be offered; answers the credit."""
        ...


class QueueInput:
    """A worker's input queues, read as one consumer; several for a merge."""

    def __init__(self, queues: Sequence[EventQueue], consumer: str) -> None:
        self.queues = list(queues)
        self.consumer = consumer
        self.inputs = len(self.queues)
        self._offsets = [0] * self.inputs
        self._open = set(range(self.inputs))
        self._next = 0
        # The state saved with each queue's acknowledgements, as `attach` found it.
        self.states: list[dict[Any, Any]] = [{} for _ in self.queues]

    async def take(self, limit: int) -> tuple[int, Item]:
        if self.inputs == 1:
            return 0, await self.queues[0].get(self.consumer, limit)
        while True:
            taken = await self.poll(limit)
            if taken is not None:
                return taken
            await self._wait_any()

    async def poll(self, limit: int) -> tuple[int, Item] | None:
        # Round robin over the open inputs, so that a busy input starves no other.
        count = self.inputs
        for step in range(count):
            index = (self._next + step) % count
            if index not in self._open:
                continue
            item = await self.queues[index].poll(self.consumer, limit)
            if item is not None:
                self._next = (index + 1) % count
                return index, item
        return None

    async def _wait_any(self) -> None:
        waits = [
            asyncio.ensure_future(self.queues[index].wait_data(self.consumer))
            for index in sorted(self._open)
        ]
        try:
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for wait in waits:
                wait.cancel()

    async def attach(self) -> dict[Any, Any]:
        """Moves back to the committed offset of every input queue (a restarted
        worker reads again what it had not acknowledged); answers the state saved
        with the first queue's acknowledgements (every queue's: `states`).

        An input whose end-of-source was acknowledged is closed; when all are
        (`finished`), the worker had ended before it died: it has nothing to run.
        """
        state: dict[Any, Any] = {}
        for index, queue in enumerate(self.queues):
            saved = await queue.attach(self.consumer)
            self._offsets[index] = saved.committed
            if saved.ended:
                self._open.discard(index)
            self.states[index] = saved.state
            if index == 0:
                state = saved.state
        return state

    @property
    def offsets(self) -> tuple[int, ...]:
        """The offset acknowledged on each input queue: after `attach`, where the
        worker reads again."""
        return tuple(self._offsets)

    @property
    def finished(self) -> bool:
        """Every input's end-of-source was acknowledged (see `attach`)."""
        return not self._open

    async def ack(
        self, delivered: Sequence[int], changes: Mapping[Any, Any] | None = None
    ) -> None:
        for index, count in enumerate(delivered):
            if count:
                self._offsets[index] += count
            if changes and index == 0:
                await self.queues[0].ack(self.consumer, self._offsets[0], changes)
            elif count:
                await self.queues[index].ack(self.consumer, self._offsets[index])

    async def take_from(self, index: int, limit: int) -> Item:
        """The next item of input `index` (which must be open), waiting for it."""
        return await self.queues[index].get(self.consumer, limit)

    async def poll_from(self, index: int, limit: int) -> Item | None:
        """The next item of input `index` if one is there now."""
        return await self.queues[index].poll(self.consumer, limit)

    def is_open(self, index: int) -> bool:
        """Whether input `index` has not ended (see `attach`, `end_of`)."""
        return index in self._open

    async def flush(self) -> None:
        """Waits until every acknowledgement made has been applied by its queue."""
        for queue in self.queues:
            await queue.flush()

    async def ack_each(
        self, delivered: Sequence[int], changes: Sequence[Mapping[Any, Any] | None]
    ) -> None:
        """Like `ack`, with `changes[i]` stored with the acknowledgement of queue `i`
        (a join's sides each save their table with their own queue)."""
        for index, count in enumerate(delivered):
            self._offsets[index] += count
            if changes[index]:
                await self.queues[index].ack(
                    self.consumer, self._offsets[index], changes[index]
                )
            elif count:
                await self.queues[index].ack(self.consumer, self._offsets[index])

    def end_of(self, index: int) -> bool:
        self._open.discard(index)
        return not self._open


class QueueOutput:
    """A worker's output queue."""

    def __init__(self, queue: EventQueue) -> None:
        self.queue = queue

    async def put(self, item: Item) -> Credit:
        return await self.queue.put(item)

    async def wait_room(self, at_least: int = 1) -> int:
        return await self.queue.wait_room(at_least)


async def put_all(queue: EventQueue, item: Item) -> None:
    """Puts the whole item, waiting for room as often as needed (dead letters, ends)."""
    while True:
        credit = await queue.put(item)
        total = size(item)
        if credit.accepted >= total:
            return
        if credit.accepted:
            item = slice_item(item, credit.accepted, total)
        await queue.wait_room()

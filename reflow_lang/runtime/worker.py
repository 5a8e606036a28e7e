"""The worker loop: the same six steps for every stage kind (RUNTIME.md).

1. If outputs are still held, go to 4. 2. Take a batch from the input. 3. Run the
step over it under the error policy, record in the input/output map what each input
became, hold the outputs. 4. Offer the held outputs; the output takes a prefix and
answers with its credit. 5. Acknowledge the inputs the map says are fully delivered
(once half the input queue is, and before waiting for input or room: `_acknowledge`).
6. If outputs are still held, wait for room, then go to 4.

The step never runs again for inputs whose outputs are held. With `workers > 1`
several batches are processed at once, but their outputs are released in the order
the batches were taken (a reorder buffer of at most `workers` batches, counted as
held), so a stage keeps its input's order whatever its workers. A stage that keeps
only `partial`, `keyed` or `none` order is scheduled by `reorder` instead, with more
parallelism.

Inside a split that a rejoin closes, a batch whose events all vanished still goes
on, empty, as a trace that counts them for the rejoin (see `rejoin`).

End-of-source is an input like the others: it is acted on (an aggregate emits its
results, a merge waits for its other inputs) after everything taken before it, it is
forwarded behind the data, and it is acknowledged once forwarded.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Sequence
from typing import Any, Protocol

from reflow_lang.plan import Order
from reflow_lang.runtime.chain import Outcome
from reflow_lang.runtime.events import (
    END_OF_SOURCE,
    Batch,
    Instruction,
    Item,
    size,
    slice_item,
)
from reflow_lang.runtime.iomap import IOMap
from reflow_lang.runtime.policy import ErrorHandler
from reflow_lang.runtime.ports import Input, Output, QueueInput, put_all
from reflow_lang.runtime.queue import EventQueue
from reflow_lang.runtime.rejoin import is_trace
from reflow_lang.runtime.reorder import Scheduler, scheduled

logger = logging.getLogger(__name__)

DEFAULT_BATCH = 256

# Inputs taken while a flat-map has no observation of its expansion yet.
PROBE_BATCH = 8

# Weight of the newest observation in the moving average of the expansion.
EXPANSION_WEIGHT = 0.25


class Step(Protocol):
    """What turns an input batch into outputs."""

    async def process(self, batch: Batch) -> Outcome:
        """The outcome of one batch."""
        ...

    def finish(self) -> Batch | None:
        """What to emit when the input ends."""
        ...


class Worker:
    """Runs one stage (or a fused chain of stages) from its input to its output."""

    def __init__(
        self,
        name: str,
        input: Input,
        step: Step,
        output: Output,
        *,
        handlers: Sequence[ErrorHandler] = (),
        dead_letters: dict[str, EventQueue] | None = None,
        workers: int = 1,
        batch: int | None = None,
        expansion: float | None = None,
        expands: bool = False,
        credit: int = DEFAULT_BATCH,
        traces: bool = False,
        order: Order | None = None,
    ) -> None:
        self.name = name
        self.input = input
        self.step = step
        self.output = output
        self.handlers = list(handlers)
        self.dead_letters = dead_letters or {}
        self.workers = max(1, workers)
        self.batch = batch or DEFAULT_BATCH
        self.expands = expands
        self.estimate = expansion
        self.credit = credit
        # Wait for this much room at least before offering again: half the queue.
        # `Rejoin._holdable` relies on this fraction; change both together, or a
        # rejoin and its producer can wait on each other for ever.
        self.wake = max(1, credit // 2)
        # Inside a split that a rejoin closes: batches that vanish travel as traces.
        self.traces = traces
        # `partial`, `keyed` and `none` with several workers are scheduled by
        # `reorder`; `total` is resequenced here.
        self.order = order
        self._scheduler: Scheduler | None = None
        self.iomap = IOMap(input.inputs)
        # Events delivered and not acknowledged yet, per input (see `_acknowledge`).
        self.ack_every = _ack_every(input)
        self._unacked = [0] * input.inputs
        self._held = 0
        self._inflight: deque[asyncio.Future[tuple[int, Item, Outcome | None]]] = (
            deque()
        )

    def held(self) -> int:
        """Outputs held, the finished batches of the reorder buffer included (and
        a rejoin's parts of incomplete parents)."""
        buffered = 0
        for future in self._inflight:
            if future.done() and not future.cancelled() and future.exception() is None:
                outcome = future.result()[2]
                if outcome is not None and outcome.outputs is not None:
                    buffered += sum(map(len, (outcome.outputs, *outcome.more)))
        if self._scheduler is not None:
            buffered += self._scheduler.held()
        step_held = getattr(self.step, "held", None)  # a rejoin's incomplete parents
        if step_held is not None:
            buffered += step_held()
        return self._held + buffered

    async def run(self) -> None:
        """Runs until end-of-source has been forwarded and acknowledged."""
        logger.debug("worker `%s` starts", self.name)
        if self.workers == 1:
            await self._run_serial()
        elif self.order is not None and scheduled(self.order, self.workers):
            scheduler = Scheduler(
                self.order,
                self.input,
                self.step,
                self.workers,
                self._limit,
                self.name,
                split=self.traces,
            )
            self._scheduler, self.input = scheduler, scheduler.input
            self.ack_every = 0  # the scheduler takes its inputs itself
            try:
                await self._run_scheduled(scheduler)
            finally:
                scheduler.cancel()
        else:
            try:
                await self._run_parallel()
            finally:
                for future in self._inflight:
                    future.cancel()
        logger.debug("worker `%s` ends", self.name)

    async def _run_scheduled(self, scheduler: Scheduler) -> None:
        while True:
            index, item, outcome = await scheduler.next()
            if outcome is None:
                if await self._end(index):
                    return
                continue
            assert isinstance(item, Batch)
            await self._handle(index, item, outcome)

    async def _run_serial(self) -> None:
        while True:
            if self.expands and self.credit < self.wake:
                # Little room left: wait for more before sizing the next batch by
                # it, or a fast flat-map would run ever smaller batches.
                await self._send_acks()
                self.credit = await self.output.wait_room(self.wake)
            index, item = await self._take()
            if isinstance(item, Instruction):
                if await self._end(index):
                    return
                continue
            outcome = await self.step.process(item)
            await self._handle(index, item, outcome)

    async def _run_parallel(self) -> None:
        inflight = self._inflight
        while True:
            await self._fill(inflight)
            index, item, outcome = await inflight.popleft()
            if outcome is None:
                if await self._end(index):
                    return
                continue
            assert isinstance(item, Batch)
            await self._handle(index, item, outcome)

    async def _fill(
        self, inflight: deque[asyncio.Future[tuple[int, Item, Outcome | None]]]
    ) -> None:
        # Take more batches while workers are free; wait only when none is in flight.
        while len(inflight) < self.workers:
            if inflight:
                taken = await self.input.poll(self._limit())
                if taken is None:
                    return
            else:
                taken = await self._take()
            index, item = taken
            if isinstance(item, Instruction):
                done = asyncio.get_running_loop().create_future()
                done.set_result((index, item, None))
                inflight.append(done)
                return
            inflight.append(asyncio.ensure_future(self._process(index, item)))

    async def _take(self) -> tuple[int, Item]:
        # Acknowledgements held back leave before the worker waits for input: the
        # room they free may be what its producer waits for.
        if any(self._unacked):
            taken = await self.input.poll(self._limit())
            if taken is not None:
                return taken
            await self._send_acks()
        return await self.input.take(self._limit())

    async def _process(
        self, index: int, item: Batch
    ) -> tuple[int, Item, Outcome | None]:
        return index, item, await self.step.process(item)

    def _limit(self) -> int:
        # A flat-map takes as many inputs as the last credit has room for outputs.
        if not self.expands:
            return self.batch
        if self.estimate is None:
            return PROBE_BATCH
        return max(
            1, min(self.batch, int(max(self.credit, 1) / max(self.estimate, 1e-9)))
        )

    async def _handle(self, index: int, item: Batch, outcome: Outcome) -> None:
        # A flat-map wraps a trace in its own split (an empty one), so that the
        # rejoins of inner and outer splits tell their traces apart.
        takes = getattr(self.step, "takes_traces", False) or self.expands
        if is_trace(item) and not takes:
            await self._pass_trace(index, item)
            return
        outputs = outcome.outputs
        produced = 0 if outputs is None else len(outputs)
        produced += sum(map(len, outcome.more))
        if self.traces and outputs is not None and not produced:
            # Every event vanished: the empty batch still counts them for the rejoin.
            # (A rejoin records only the inputs whose parents it closed.)
            rejoin = getattr(self.step, "takes_traces", False)
            inputs = len(outcome.ends or ()) if rejoin else size(item)
            if not inputs:
                return
            self.iomap.batch(inputs, 1, index)
            self._observe(len(item), 0)
            await self._flush_dead()
            await self._deliver(deque([outputs]))
            return
        if outcome.filtered or produced == 0 and outcome.ends is None:
            self.iomap.filtered(len(item), index)
        elif outcome.ends is None:
            self.iomap.one_to_one(len(item), index)
        else:
            self.iomap.ends(outcome.ends, index)
        self._observe(len(item), produced)

        await self._flush_dead()
        await self._deliver(
            deque([outputs, *outcome.more])
            if outputs is not None and produced
            else deque()
        )

    async def _pass_trace(self, index: int, item: Batch) -> None:
        # A trace goes on towards its rejoin; a stage outside the split drops it.
        if not self.traces:
            self.iomap.filtered(1, index)
            await self._acknowledge(0)
            return
        self.iomap.one_to_one(1, index)
        await self._deliver(deque([item]))

    def _observe(self, inputs: int, outputs: int) -> None:
        if not self.expands or not inputs:
            return
        seen = outputs / inputs
        if self.estimate is None:
            self.estimate = seen
        else:
            self.estimate += EXPANSION_WEIGHT * (seen - self.estimate)

    async def _end(self, index: int) -> bool:
        # End-of-source from one input; the stage ends once every input has ended.
        if not self.input.end_of(index):
            self.iomap.instruction(0, index)
            await self._acknowledge(0)
            return False

        held: deque[Item] = deque()
        flushed = self.step.finish()
        if flushed is not None and len(flushed):
            self.iomap.no_input(len(flushed))
            held.append(flushed)
        self.iomap.instruction(1, index)
        held.append(END_OF_SOURCE)

        await self._flush_dead()
        if self.dead_letters:
            await self._send_acks()  # before waiting for room in a dead-letter queue
        for queue in self.dead_letters.values():
            await put_all(queue, END_OF_SOURCE)
        await self._deliver(held)
        await self._send_acks()
        return True

    async def _deliver(self, held: deque[Item]) -> None:
        self._held = sum(map(size, held))
        await self._acknowledge(0)  # inputs that gave nothing need no room
        start = 0  # how much of the first held item was delivered
        while held:
            item = held[0]
            total = size(item)
            wanted = min(total - start, self.wake)
            if self.credit < wanted:
                # Little room left: wait for more rather than offer a sliver. Each
                # queue item costs its consumer a round, so slivers would slow it
                # down, leaving less room still.
                await self._send_acks()
                self.credit = await self.output.wait_room(wanted)
            # A large item is offered a credit's worth at a time, so that an output
            # taken a little at a time is copied once, not once per partial put.
            # (A known gap: a flat_map's call is drained into a list, so the held
            # outputs of one input that expands to a million parts are all in memory.)
            stop = min(total, start + max(self.credit, 1))
            whole = start == 0 and stop == total
            credit = await self.output.put(
                item if whole else slice_item(item, start, stop)
            )
            accepted = credit.accepted
            # Only an output that took nothing is waited for here: a queue that took
            # part of the offer answers no room, which the next round waits for, and
            # a sink that took part is offered the rest at once.
            refused = accepted == 0
            start += accepted
            if start == total:
                held.popleft()
                start = 0
            self._held -= accepted
            self.credit = credit.room

            await self._flush_dead()
            await self._acknowledge(accepted)
            if refused:  # a sink answers room even when it refuses: back off
                await self._send_acks()
                self.credit = await self.output.wait_room(min(total - start, self.wake))

    async def _acknowledge(self, accepted: int) -> None:
        # Inputs fully delivered are acknowledged once half the smallest input queue
        # is (`ack_every`), and before the worker would wait (for input, for room,
        # at the end): fewer acknowledgements, and a stateful step's changes to
        # several batches coalesce in one. The room they hold back is never what
        # the worker itself waits for.
        delivered = self.iomap.advance(accepted)
        if not any(delivered):
            return
        unacked = self._unacked
        for index, count in enumerate(delivered):
            unacked[index] += count
        if sum(unacked) >= self.ack_every:
            await self._send_acks()

    async def _send_acks(self) -> None:
        if not any(self._unacked):
            return
        delivered, self._unacked = self._unacked, [0] * len(self._unacked)

        # The state the step and the output changed travels with the acknowledgement
        # (a sink's checkpoint, an aggregate's entries): see `ports`.
        changes = _changes(self.step, None)
        changes = _changes(self.output, changes)
        if changes is None:
            await self.input.ack(delivered)
        else:
            await self.input.ack(delivered, changes)

    async def _flush_dead(self) -> None:
        # Dead letters are delivered before the outputs of their batch, so that an
        # input is never acknowledged before its dead letter is accepted. (The
        # acknowledgements held back are of inputs delivered before: they leave
        # first, since a put may wait for room.)
        if any(handler.dead for handler in self.handlers):
            await self._send_acks()
        for handler in self.handlers:
            if handler.dead:
                queue = self.dead_letters[handler.stage]
                for letter in handler.take_dead():
                    await put_all(queue, letter)


def _ack_every(input: Input) -> int:
    # Half the smallest input queue; other inputs (a source, a join's sides, which
    # save state per side) are acknowledged as soon as they are delivered.
    if type(input) is not QueueInput:
        return 0
    return max(1, min(queue.capacity for queue in input.queues) // 2)


def _changes(part: object, changes: dict[Any, Any] | None) -> dict[Any, Any] | None:
    # What `part` changed since it last answered, added to `changes`.
    method = getattr(part, "changes", None)
    found = None if method is None else method()
    if not found:
        return changes
    return dict(found) if changes is None else {**changes, **found}

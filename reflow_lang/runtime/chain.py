"""The step of stateless stages: a chain of map, filter, flat_map and key_by links.

A worker runs one chain, of one stage or of several fused ones (one queue hop saved
per fused pair, as Flink chains operators). A batch of plain functions runs the
whole chain in one thread-pool submission; each link applies its function to the
batch with `map` (no per-event Python frame), and the chain composes, per input,
how many outputs it gave, so the worker's input/output map relates chain inputs to
chain outputs directly.

When a call raises, the thread stops at that event and hands the partial results
back; the loop applies the link's error policy to that one event (retrying with
backoff, or dropping it) and resubmits the rest of the batch. Async functions run on
the event loop, one event after another.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from itertools import accumulate, chain, compress, repeat
from typing import Any

from reflow_lang.runtime.events import Batch, EventId, Stamps, derive
from reflow_lang.runtime.functions import UserFunction
from reflow_lang.runtime.offload import Offload
from reflow_lang.runtime.policy import DROP, CallTimeout, ErrorHandler
from reflow_lang.runtime.statistics import StageCounters


@dataclass(slots=True)
class State:
    """A batch between two links: values, keys, stamps, and outputs per chain input.

    `ends[i]` is the cumulative count of current events that chain input `i` gave;
    `None` while every input gave exactly one.
    """

    values: list[Any]
    keys: list[Any] | None
    stamps: Stamps
    ends: list[int] | None

    def event_id(self, index: int) -> EventId:
        """The id of event `index` (materialises stamps: for the error path only)."""
        stamp = self.stamps.slice(index, index + 1).materialise()[0]
        return (self.stamps.origin, *stamp)


@dataclass(frozen=True, slots=True)
class Outcome:
    """What a step made of a batch: the outputs, and per input how many (cumulative)."""

    outputs: Batch | None
    ends: list[int] | None
    """Cumulative outputs per input; `None`: one each; see `State`."""
    filtered: bool = False
    """Every input was consumed without output (a `count`, a `reduce`)."""
    more: tuple[Batch, ...] = ()
    """Output batches after `outputs`, each with events (a rejoin's round whose
    parents have several origins: one batch per origin); `ends` count them all."""


def compose(ends: list[int] | None, counts: list[int]) -> list[int]:
    """Outputs per chain input after a link that gave `counts[j]` for event j."""
    cumulative = list(accumulate(counts))
    if ends is None:
        return cumulative
    cumulative.insert(0, 0)
    return [cumulative[end] for end in ends]


class Link:
    """One stateless stage of a chain."""

    def __init__(
        self,
        kind: str,
        function: UserFunction,
        handler: ErrorHandler,
        counters: StageCounters,
        timeout: float | None,
        clock: Callable[[], float],
    ) -> None:
        self.kind = kind
        self.function = function
        self.handler = handler
        self.counters = counters
        self.timeout = timeout
        self._call: Callable[..., Any] = function.function
        self.inline = function.inline and timeout is None
        if timeout is not None:
            self._call = _timed(function.function, timeout, clock)

    def results(self, values: list[Any], start: int) -> Iterator[Any]:
        """The function's results over `values[start:]`, lazily (for `list.extend`)."""
        values = values[start:] if start else values
        args = self.function.args
        results = map(self._call, values, *(repeat(arg) for arg in args))
        return map(list, results) if self.kind == "flat_map" else results

    async def call_one(self, value: Any, offload: Offload) -> Any:
        """The function on one event: in the pool, or awaited when it is async."""
        if self.function.is_async:
            return await self._await_one(value)
        result = await offload.run(self._call, value, *self.function.args)
        return list(result) if self.kind == "flat_map" else result

    async def _await_one(self, value: Any) -> Any:
        result = self.function.call(value)
        if self.timeout is not None:
            try:
                result = await asyncio.wait_for(result, self.timeout)
            except TimeoutError as exc:
                raise CallTimeout(self.timeout) from exc
        else:
            result = await result
        if self.kind != "flat_map":
            return result
        if hasattr(result, "__aiter__"):
            return [part async for part in result]
        return list(result)

    def shape(self, state: State, results: list[Any], dropped: bool) -> State:
        """The state after this link, given its function's result per event."""
        self.counters.events_in += len(state.values)
        new = self._shape(state, results, dropped)
        self.counters.events_out += len(new.values)
        return new

    def _shape(self, state: State, results: list[Any], dropped: bool) -> State:
        kind = self.kind
        if kind == "filter":
            return _keep(state, state.values, list(map(bool, results)))
        if kind == "flat_map":
            return _split(state, results)
        if kind == "key_by":
            if not dropped:
                return State(state.values, results, state.stamps, state.ends)
            keyed = State(state.values, results, state.stamps, state.ends)
            return _keep(keyed, state.values, [r is not DROP for r in results])
        if not dropped:
            return State(results, state.keys, state.stamps, state.ends)
        return _keep(state, results, [r is not DROP for r in results])


def _keep(state: State, values: list[Any], keep: list[bool]) -> State:
    kept = list(compress(values, keep))
    if len(kept) == len(values):
        return State(kept, state.keys, state.stamps, state.ends)
    keys = None if state.keys is None else list(compress(state.keys, keep))
    stamps = derive(state.stamps, keep, split=False)
    return State(kept, keys, stamps, compose(state.ends, keep))  # type: ignore[arg-type]


def _split(state: State, parts: list[list[Any]]) -> State:
    counts = list(map(len, parts))
    values = list(chain.from_iterable(parts))
    keys = None
    if state.keys is not None:
        keys = list(chain.from_iterable(map(repeat, state.keys, counts)))
    stamps = derive(state.stamps, counts, split=True)
    return State(values, keys, stamps, compose(state.ends, counts))


def _timed(
    function: Callable[..., Any], timeout: float, clock: Callable[[], float]
) -> Callable[..., Any]:
    # A thread cannot be interrupted: a call is measured, and one that took too long
    # is an error once it returns (a call that never returns is the watchdog's case).
    def timed(*args: Any) -> Any:
        began = clock()
        result = function(*args)
        if clock() - began > timeout:
            raise CallTimeout(timeout)
        return result

    return timed


class _Progress:
    """How far a submission got: shared with its thread, replaced when abandoned.

    `cursor` is `(link index, state, results so far)`, assigned in one go so that
    the loop never reads a half-updated position.
    """

    __slots__ = ("cursor", "dropped", "error")

    def __init__(self, link: int, state: State) -> None:
        self.cursor: tuple[int, State, list[Any]] = (link, state, [])
        self.dropped = False
        self.error: Exception | None = None


def _run_links(links: list[Link], stop: int, progress: _Progress) -> None:
    # Runs in the pool: links from the cursor's up to `stop`, resuming a link's
    # partial results where an earlier submission left them.
    index, state, results = progress.cursor
    while index < stop:
        link = links[index]
        try:
            results.extend(link.results(state.values, len(results)))
        except Exception as exc:  # the user's function: handled by the loop
            progress.error = exc
            return
        state = link.shape(state, results, progress.dropped)
        index += 1
        results = []
        progress.dropped = False
        progress.cursor = (index, state, results)


class Chain:
    """A worker's step for stateless stages; see the module docstring."""

    def __init__(self, links: list[Link], offload: Offload) -> None:
        self.links = links
        self.offload = offload

    async def process(self, batch: Batch) -> Outcome:
        """Runs the chain over one batch."""
        state = State(batch.values, batch.keys, batch.stamps, None)
        index = 0
        while index < len(self.links):
            if self.links[index].function.is_async:
                state = await self._run_async(self.links[index], state)
                index += 1
                continue
            stop = index
            while stop < len(self.links) and not self.links[stop].function.is_async:
                stop += 1
            state = await self._run_sync(index, stop, state)
            index = stop
        return Outcome(Batch(state.values, state.stamps, state.keys), state.ends)

    def finish(self) -> Batch | None:
        """Stateless: nothing to emit at end-of-source."""
        return None

    async def _run_sync(self, first: int, stop: int, state: State) -> State:
        progress = _Progress(first, state)
        inline = all(link.inline for link in self.links[first:stop])
        while True:
            deadline = self._deadline(first, stop, state)
            try:
                if inline:
                    _run_links(self.links, stop, progress)
                else:
                    await self.offload.run(
                        _run_links, self.links, stop, progress, deadline=deadline
                    )
            except TimeoutError:
                progress = self._abandoned(progress, deadline)
            if progress.error is None:
                return progress.cursor[1]
            await self._recover(progress)
            first = progress.cursor[0]

    def _deadline(self, first: int, stop: int, state: State) -> float | None:
        # A hung call is found within (events + 1) times the timeouts of the links.
        timeouts = [link.timeout for link in self.links[first:stop] if link.timeout]
        if not timeouts:
            return None
        return sum(timeouts) * (len(state.values) + 1)

    def _abandoned(self, progress: _Progress, deadline: float | None) -> _Progress:
        # The thread still holds the old progress and may write to it: copy it.
        index, state, results = progress.cursor
        fresh = _Progress(index, state)
        fresh.cursor = (index, state, list(results))
        fresh.dropped = progress.dropped
        fresh.error = CallTimeout(self.links[index].timeout or deadline or 0.0)
        return fresh

    async def _recover(self, progress: _Progress) -> None:
        index, state, results = progress.cursor
        link = self.links[index]
        error, progress.error = progress.error, None
        position = len(results)
        value = state.values[position]
        result = await link.handler.recover(
            error,  # type: ignore[arg-type]
            value,
            state.event_id(position),
            lambda: link.call_one(value, self.offload),
        )
        if result is DROP:
            progress.dropped = True
            result = [] if link.kind == "flat_map" else DROP
        results.append(result)

    async def _run_async(self, link: Link, state: State) -> State:
        results: list[Any] = []
        dropped = False
        for position, value in enumerate(state.values):
            try:
                result = await link.call_one(value, self.offload)
            except Exception as exc:  # the user's function: its policy decides
                result = await link.handler.recover(
                    exc,
                    value,
                    state.event_id(position),
                    functools.partial(link.call_one, value, self.offload),
                )
                if result is DROP:
                    dropped = True
                    result = [] if link.kind == "flat_map" else DROP
            results.append(result)
        return link.shape(state, results, dropped)

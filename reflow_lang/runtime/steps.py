"""The steps of stages that are not stateless chains: pass-through and aggregates.

A step turns one input batch into an `Outcome`; `finish` gives what it emits when
its input ends. `Passthrough` serves sources, merges and sinks (their work happens
when reading or offering, not in between). `Aggregate` serves `count` and `reduce`:
it folds every event into per-key state, acknowledges its inputs as consumed, and
emits `(key, value)` pairs in key order at end-of-source.

An aggregate's state can outlive its worker (`reflowc run --processes`, where a
dead worker is restarted): once `track_changes` is on, `changes` answers the
accumulators changed since the last call, which travel with the acknowledgement of
the inputs that changed them, and a restarted worker `restore`s them before it
reads again. Off (the local runtime), tracking costs one test per batch.
"""

from __future__ import annotations

import copy
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from reflow_lang.runtime.chain import Outcome
from reflow_lang.runtime.events import Batch, EventId, Offsets
from reflow_lang.runtime.functions import UserFunction
from reflow_lang.runtime.offload import Offload
from reflow_lang.runtime.policy import DROP, ErrorHandler
from reflow_lang.runtime.statistics import StageCounters


class Passthrough:
    """A step that hands its input on unchanged."""

    def __init__(
        self, counters: StageCounters | None, *, count_out: bool = True
    ) -> None:
        self.counters = counters
        self.count_out = count_out  # a sink counts what its function accepted instead

    async def process(self, batch: Batch) -> Outcome:
        """The batch itself, one output per input."""
        if self.counters is not None:
            self.counters.events_in += len(batch)
            if self.count_out:
                self.counters.events_out += len(batch)
        return Outcome(batch, None)

    def finish(self) -> Batch | None:
        """Nothing to emit at end-of-source."""
        return None


class Aggregate:
    """`count` (no function) or `reduce` (with one), grouped by an optional key."""

    def __init__(
        self,
        name: str,
        key: Callable[[Any], Any] | None,
        function: UserFunction | None,
        initial: Any,
        handler: ErrorHandler,
        counters: StageCounters,
        offload: Offload,
        *,
        grouped: bool = True,
    ) -> None:
        self.name = name
        self.key = key
        self.grouped = grouped  # without `by`, every event is in the group `None`
        self.function = function
        self.initial = initial
        self.handler = handler
        self.counters = counters
        self.offload = offload
        self.state: dict[Any, Any] = Counter() if function is None else {}
        self._error: Exception | None = None
        self._changed: set[Any] | None = None  # keys changed; `None`: not tracked

    def track_changes(self) -> None:
        """Records which accumulators change, for `changes` (a job turns it on
        where acknowledgements carry state: in process mode)."""
        if self._changed is None:
            self._changed = set()

    def changes(self) -> dict[Any, Any] | None:
        """`{("acc", key): accumulator}` for every key changed since the last call;
        `None` when tracking is off.

        The values are the live accumulators: the caller stores (or serialises)
        them before the step folds another batch.
        """
        changed = self._changed
        if changed is None:
            return None
        self._changed = set()
        state = self.state
        return {("acc", key): state[key] for key in changed if key in state}

    def restore(self, state: Mapping[Any, Any]) -> None:
        """Puts back the accumulators that `changes` gave (a restarted worker,
        before it reads again); entries that are not an aggregate's are ignored."""
        for entry, value in state.items():
            if isinstance(entry, tuple) and len(entry) == 2 and entry[0] == "acc":
                self.state[entry[1]] = value

    async def process(self, batch: Batch) -> Outcome:
        """Folds the batch into the state; every input is consumed, none forwarded."""
        self.counters.events_in += len(batch)
        keys = await self._keys(batch)
        if self.function is None:
            await self._count(batch, keys)
        else:
            await self._reduce(batch, keys)
        return Outcome(None, None, filtered=True)

    def finish(self) -> Batch:
        """The `(key, value)` pairs, in key order."""
        pairs = [(key, self.state[key]) for key in _sorted_keys(self.state)]
        self.counters.events_out += len(pairs)
        return Batch(pairs, Offsets(self.name, 0, len(pairs)))

    async def _keys(self, batch: Batch) -> list[Any]:
        if not self.grouped:
            return [None] * len(batch)
        if self.key is None:
            return batch.values
        return await self._apply(self.key, batch)

    async def _apply(self, function: Callable[[Any], Any], batch: Batch) -> list[Any]:
        # A key that cannot be read drops its event under the stage's policy.
        results: list[Any] = []
        values = batch.values
        while len(results) < len(values):
            try:
                await self.offload.run(_extend, results, function, values)
            except Exception as exc:  # the user's key function
                position = len(results)
                value = values[position]
                results.append(
                    await self.handler.recover(
                        exc,
                        value,
                        _id(batch, position),
                        _again(self.offload, function, value),
                    )
                )
        return results

    async def _count(self, batch: Batch, keys: list[Any]) -> None:
        counts = self.state
        start = 0
        while start < len(keys):
            rest = keys[start:] if start else keys
            try:
                counts.update(rest)
                self._mark(rest)
                break
            except TypeError as exc:
                # Counted in order up to the unhashable key: find it and go on after.
                position = start + _first_unhashable(rest)
                self._mark(keys[start:position])
                value = batch.values[position]
                await self.handler.recover(
                    exc, value, _id(batch, position), _raise(exc)
                )
                start = position + 1
        counts.pop(DROP, None)  # events whose key could not be read

    def _mark(self, keys: Iterable[Any]) -> None:
        # Tracking on: these keys' accumulators changed (`DROP` is no key).
        changed = self._changed
        if changed is not None:
            changed.update(keys)
            changed.discard(DROP)

    async def _reduce(self, batch: Batch, keys: list[Any]) -> None:
        assert self.function is not None
        position = 0
        while position < len(keys):
            start = position
            position = await self.offload.run(self._fold, keys, batch.values, position)
            if self._changed is not None:
                self._mark(keys[start:position])
            if position < len(keys):
                await self._fold_one(batch, keys, position)
                position += 1

    def _fold(self, keys: list[Any], values: list[Any], start: int) -> int:
        # Runs in the pool; answers the position of the first failing event, if any.
        assert self.function is not None
        state, call, initial = self.state, self.function.call, self.initial
        for position in range(start, len(keys)):
            key = keys[position]
            if key is DROP:
                continue
            accumulator = state[key] if key in state else copy.deepcopy(initial)
            try:
                state[key] = call(accumulator, values[position])
            except Exception as exc:  # the user's function: the loop applies the policy
                self._error = exc
                return position
        return len(keys)

    async def _fold_one(self, batch: Batch, keys: list[Any], position: int) -> None:
        assert self.function is not None
        function, key, value = self.function, keys[position], batch.values[position]
        accumulator = (
            self.state[key] if key in self.state else copy.deepcopy(self.initial)
        )
        assert self._error is not None
        result = await self.handler.recover(
            self._error,
            value,
            _id(batch, position),
            _again(
                self.offload, lambda event: function.call(accumulator, event), value
            ),
        )
        if result is not DROP:
            self.state[key] = result
            self._mark((key,))


def _extend(
    results: list[Any], function: Callable[[Any], Any], values: list[Any]
) -> None:
    start = len(results)
    results.extend(map(function, values[start:] if start else values))


def _again(
    offload: Offload, function: Callable[[Any], Any], value: Any
) -> Callable[[], Any]:
    async def again() -> Any:
        return await offload.run(function, value)

    return again


def _raise(error: Exception) -> Callable[[], Any]:
    async def again() -> Any:
        raise error

    return again


def _first_unhashable(keys: list[Any]) -> int:
    for position, key in enumerate(keys):
        try:
            hash(key)
        except TypeError:
            return position
    return len(keys)


def _id(batch: Batch, position: int) -> EventId:
    return batch.event_id(position)


def _sorted_keys(state: dict[Any, Any]) -> list[Any]:
    try:
        return sorted(state)
    except TypeError:
        # Keys of mixed types: group by type name, then by repr, for a stable order.
        return sorted(state, key=lambda key: (type(key).__name__, repr(key)))

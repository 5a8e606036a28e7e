"""`join`: a symmetric hash join of two streams, and the input that feeds it fairly.

Every event is kept in the table of its side, under its key, and paired at once with
every event of the other side already kept under the same key, so pairs flow as
matches arrive and neither side waits for the other to end. When both sides have
ended, a `left` join emits each left event that never found a match as `(left,
None)`, an `outer` join also each such right event as `(None, right)`, and then
end-of-source goes on.

The worker reads both input queues as one (`JoinInput`): whichever has data, round
robin when both have, so that neither upstream blocks on a full queue while the join
waits on the other; a side that ended, idles or had everything filtered out is simply
never waited for. Inputs are acknowledged once their pairs are accepted downstream;
the tables are the join's state, as a `count`'s counts are.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from reflow_lang.runtime.chain import Outcome
from reflow_lang.runtime.events import Batch, Item, Offsets
from reflow_lang.runtime.policy import DROP, ErrorHandler
from reflow_lang.runtime.ports import Input
from reflow_lang.runtime.statistics import StageCounters

LEFT = 0
RIGHT = 1

KeyReader = Callable[[Any], Any] | None


class Join:
    """The step of a `join` stage; see the module docstring.

    Args:
        name: the stage's name: the origin of the pairs' ids.
        keys: the left and right key readers (`None`: the event itself).
        how: `inner`, `left` or `outer`.
        handler: the stage's error policy, for a key that cannot be read.
        counters: the stage's counters.
    """

    def __init__(
        self,
        name: str,
        keys: tuple[KeyReader, KeyReader],
        how: str,
        handler: ErrorHandler,
        counters: StageCounters,
    ) -> None:
        self.name = name
        self.keys = keys
        self.how = how
        self.handler = handler
        self.counters = counters
        self.side = LEFT  # set by `JoinInput` to the side of the batch taken
        self.tables: tuple[dict[Any, list[Any]], dict[Any, list[Any]]] = ({}, {})
        self._emitted = 0

    def stored(self) -> int:
        """Events kept in the tables."""
        return sum(len(values) for table in self.tables for values in table.values())

    async def process(self, batch: Batch) -> Outcome:
        """Keeps the batch's events and pairs each with the other side's matches."""
        side = self.side
        self.counters.events_in += len(batch)
        keys = await self._keys(batch, side)
        mine, theirs = self.tables[side], self.tables[1 - side]

        pairs: list[tuple[Any, Any]] = []
        ends: list[int] = []
        for value, key in zip(batch.values, keys, strict=True):
            if key is not DROP:
                mine.setdefault(key, []).append(value)
                for other in theirs.get(key, ()):
                    pairs.append((value, other) if side == LEFT else (other, value))
            ends.append(len(pairs))
        return Outcome(self._batch(pairs), ends)

    def finish(self) -> Batch | None:
        """The unmatched rows of a `left` or `outer` join, once both sides ended."""
        left, right = self.tables
        rows: list[tuple[Any, Any]] = []
        if self.how in ("left", "outer"):
            rows.extend(
                (value, None) for key in left if key not in right for value in left[key]
            )
        if self.how == "outer":
            rows.extend(
                (None, value)
                for key in right
                if key not in left
                for value in right[key]
            )
        return self._batch(rows) if rows else None

    def _batch(self, pairs: list[tuple[Any, Any]]) -> Batch:
        start = self._emitted
        self._emitted += len(pairs)
        self.counters.events_out += len(pairs)
        return Batch(pairs, Offsets(self.name, start, self._emitted))

    async def _keys(self, batch: Batch, side: int) -> list[Any]:
        # A key that cannot be read, or cannot be hashed, drops its event under
        # the stage's policy.
        reader = self.keys[side]
        keys: list[Any] = []
        for position, value in enumerate(batch.values):
            try:
                key = value if reader is None else reader(value)
                hash(key)
            except Exception as exc:  # the user's key: the stage's policy decides
                key = await self.handler.recover(
                    exc, value, batch.event_id(position), _raise(exc)
                )
            keys.append(key)
        return keys


def _raise(error: Exception) -> Callable[[], Any]:
    async def again() -> Any:
        raise error

    return again


class JoinInput:
    """The two input queues of a join, read fairly; tells the step each batch's side."""

    def __init__(self, input: Input, step: Join) -> None:
        self.input = input
        self.step = step
        self.inputs = input.inputs

    async def take(self, limit: int) -> tuple[int, Item]:
        index, item = await self.input.take(limit)
        self.step.side = index
        return index, item

    async def poll(self, limit: int) -> tuple[int, Item] | None:
        taken = await self.input.poll(limit)
        if taken is not None:
            self.step.side = taken[0]
        return taken

    async def ack(
        self, delivered: Sequence[int], changes: Mapping[Any, Any] | None = None
    ) -> None:
        await self.input.ack(delivered, changes)

    def end_of(self, index: int) -> bool:
        return self.input.end_of(index)

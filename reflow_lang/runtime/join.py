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
never waited for. Inputs are acknowledged once their pairs are accepted downstream.

A pair's stamp is the positions of its two events (their offsets in their input
queues), `(left, right)`; its origin is the join. A queue offset does not change
once an event is stored, so the ids do not depend on how the two inputs
interleaved, and a replay gives the same ids as the first run (which the output
queue drops, see `dedup`). These stamps do not grow in the order pairs leave:
nothing downstream asks them to (a `keyed` stage keeps the order it receives, see
`reorder`). An unmatched row is stamped `(left, -1)` or `(-1, right)`, with the
origin `<join>:unmatched`, and the rows leave in stamp order: a restarted join asks
its output queue for the last of them it holds and emits only those after it
(`resume`), however many they are.

The tables are the join's state. With tracking on (process mode), each side's kept
events are saved as `("join", position) -> (key, value)` with the acknowledgements
of that side's own queue, exactly those acknowledged (`JoinInput.ack`), so that
each side's saved table is the events before its committed offset. A restarted join
`restore`s both and reads again from both commits: the pairs of two restored events
were delivered before the commits, every other pair is made again, with its id.
The output queue knows a replayed pair by its recent ids only, so the replayed pairs
must come before new ones: before pairing a batch, a tracking join saves which side
it came from (`TAKEN`), once everything before it is acknowledged, and a restarted
join takes that side first (`JoinInput`).
"""

from __future__ import annotations

from bisect import bisect_right
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from reflow_lang.runtime.chain import Outcome
from reflow_lang.runtime.events import Batch, Item, Listed, Stamp, size
from reflow_lang.runtime.policy import DROP, ErrorHandler
from reflow_lang.runtime.ports import QueueInput
from reflow_lang.runtime.statistics import StageCounters

LEFT = 0
RIGHT = 1

# The position on the side an unmatched row has no event of.
NO_MATCH = -1

# What the origin of the unmatched rows adds to the join's name.
UNMATCHED = ":unmatched"

# The tag of a saved table entry: `("join", position) -> (key, value)`.
ENTRY = "join"

# The saved entry naming the side of the batch a join took last and the position
# after it: `[side, stop]` (see `JoinInput`).
TAKEN = ("join-taken", 0)

KeyReader = Callable[[Any], Any] | None

# A kept event: its position in its input queue and its value.
Row = tuple[int, Any]


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
        # Set by `JoinInput` for each batch taken: its side, and the position (the
        # input queue's offset) of its first event.
        self.side = LEFT
        self.position = 0
        self.tables: tuple[dict[Any, list[Row]], dict[Any, list[Row]]] = ({}, {})
        # Per side, the kept events not yet saved, as `(position, key, value)`, in
        # position order; `None`: not tracked.
        self._pending: tuple[deque[tuple[int, Any, Any]], ...] | None = None
        # The origin of the unmatched rows, and the last of them already emitted.
        self.unmatched = f"{name}{UNMATCHED}"
        self._resumed: Stamp | None = None
        # The side of the batch the previous run took last and the position after
        # it, to take first (`restore`).
        self.first: tuple[int, int] | None = None

    def stored(self) -> int:
        """Events kept in the tables."""
        return sum(len(rows) for table in self.tables for rows in table.values())

    @property
    def tracking(self) -> bool:
        """Whether the tables are saved with the acknowledgements (process mode)."""
        return self._pending is not None

    def track_changes(self) -> None:
        """Records the events kept, for `changes_before` (a job turns it on where
        acknowledgements carry state: in process mode)."""
        if self._pending is None:
            self._pending = (deque(), deque())

    def changes_before(self, side: int, offset: int) -> dict[Any, Any] | None:
        """The entries of the events of `side` kept before position `offset` and not
        answered yet, to save with the acknowledgement up to `offset`; `None` when
        tracking is off."""
        if self._pending is None:
            return None
        pending = self._pending[side]
        changes: dict[Any, Any] = {}
        while pending and pending[0][0] < offset:
            position, key, value = pending.popleft()
            changes[(ENTRY, position)] = (key, value)
        return changes

    def restore(self, states: Sequence[Mapping[Any, Any]]) -> None:
        """Rebuilds each side's table from what its queue saved (`states[side]`; a
        restarted worker, before it reads again); other entries are ignored."""
        for side, state in enumerate(states):
            entries = sorted(
                (
                    (entry[1], saved)
                    for entry, saved in state.items()
                    if isinstance(entry, tuple)
                    and len(entry) == 2
                    and entry[0] == ENTRY
                ),
                key=_position,
            )
            table = self.tables[side]
            for position, (key, value) in entries:
                table.setdefault(key, []).append((position, value))
        taken = states[LEFT].get(TAKEN) if states else None
        self.first = None if taken is None else (int(taken[0]), int(taken[1]))

    async def process(self, batch: Batch) -> Outcome:
        """Keeps the batch's events and pairs each with the other side's matches."""
        side, start = self.side, self.position
        self.counters.events_in += len(batch)
        keys = await self._keys(batch, side)
        mine, theirs = self.tables[side], self.tables[1 - side]
        pending = None if self._pending is None else self._pending[side]

        pairs: list[tuple[Any, Any]] = []
        stamps: list[Stamp] = []
        ends: list[int] = []
        for position, value, key in zip(
            range(start, start + len(batch)), batch.values, keys, strict=True
        ):
            if key is not DROP:
                mine.setdefault(key, []).append((position, value))
                if pending is not None:
                    pending.append((position, key, value))
                for other, match in theirs.get(key, ()):
                    if side == LEFT:
                        pairs.append((value, match))
                        stamps.append((position, other))
                    else:
                        pairs.append((match, value))
                        stamps.append((other, position))
            ends.append(len(pairs))
        return Outcome(self._batch(pairs, stamps), ends)

    def finish(self) -> Batch | None:
        """The unmatched rows of a `left` or `outer` join, once both sides ended,
        those the output queue already holds (`resume`) left out."""
        left, right = self.tables
        rows: list[tuple[Any, Any]] = []
        stamps: list[Stamp] = []
        # The right rows first: `(-1, r)` stamps sort before `(l, -1)` ones, so
        # the rows leave in stamp order (which `resume` relies on).
        if self.how == "outer":
            for position, value in _unmatched(right, left):
                rows.append((None, value))
                stamps.append((NO_MATCH, position))
        if self.how in ("left", "outer"):
            for position, value in _unmatched(left, right):
                rows.append((value, None))
                stamps.append((position, NO_MATCH))
        skip = self._skip(stamps)
        if skip == len(rows):
            return None
        self.counters.events_out += len(rows) - skip
        return Batch(rows[skip:], Listed(self.unmatched, tuple(stamps[skip:])))

    def resume(self, high: Stamp | None) -> None:
        """The output queue holds the unmatched rows up to the stamp `high` (a
        restarted join, killed while it emitted them): `finish` leaves them out.

        They are the only outputs a replay could repeat beyond what the queue's
        recent ids cover (one row per unmatched event), and the only ones after
        which a consumer may have ended; pairs are left to the queue's ids."""
        self._resumed = high

    def _skip(self, stamps: list[Stamp]) -> int:
        high = self._resumed
        return 0 if high is None else bisect_right(stamps, high)

    def _batch(self, pairs: list[tuple[Any, Any]], stamps: list[Stamp]) -> Batch:
        self.counters.events_out += len(pairs)
        return Batch(pairs, Listed(self.name, tuple(stamps)))

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


def _unmatched(mine: dict[Any, list[Row]], theirs: dict[Any, list[Row]]) -> list[Row]:
    # The rows of `mine` whose key `theirs` never had, in position order.
    rows = [row for key, kept in mine.items() if key not in theirs for row in kept]
    rows.sort(key=_position)
    return rows


def _position(row: Row) -> int:
    return row[0]


def _raise(error: Exception) -> Callable[[], Any]:
    async def again() -> Any:
        raise error

    return again


class JoinInput:
    """The two input queues of a join, read fairly; tells the step each batch's side
    and position, and saves each side's kept events with its own queue's
    acknowledgements (see the module docstring).

    The positions start at the queues' acknowledged offsets when the first item is
    taken: where `attach` put a restarted worker's cursors (0 for a new one).
    """

    def __init__(self, input: QueueInput, step: Join) -> None:
        self.input = input
        self.step = step
        self.inputs = input.inputs
        self._read: list[int] | None = None  # the next position of each side

    async def take(self, limit: int) -> tuple[int, Item]:
        side = self._first()
        if side is not None:
            # What is left of that batch is in its queue: this waits for nothing.
            index, item = side, await self.input.take_from(side, limit)
            self.step.first = None
        else:
            index, item = await self.input.take(limit)
        await self._taken(index, item)
        return index, item

    async def poll(self, limit: int) -> tuple[int, Item] | None:
        side = self._first()
        if side is None:
            taken = await self.input.poll(limit)
        else:
            found = await self.input.poll_from(side, limit)
            taken = None if found is None else (side, found)
            self.step.first = None if found is not None else self.step.first
        if taken is not None:
            await self._taken(*taken)
        return taken

    def _first(self) -> int | None:
        # The side a restarted join takes first: that of the batch the previous
        # run took last, while some of it is not acknowledged.
        first = self.step.first
        if first is None or self.input.offsets[first[0]] >= first[1]:
            self.step.first = None
            return None
        return first[0]

    async def _taken(self, index: int, item: Item) -> None:
        read = self._read
        if read is None:
            read = self._read = list(self.input.offsets)
        self.step.side = index
        self.step.position = read[index]
        read[index] += size(item)  # an instruction, or a trace, takes a slot too
        if self.step.tracking and isinstance(item, Batch) and item.values:
            await self._save_taken(index, read[index])

    async def _save_taken(self, side: int, stop: int) -> None:
        # Which side a batch came from is saved before the batch is paired, once
        # everything before it is acknowledged. A restarted join takes that side
        # first: the pairs it makes again then come first and in their first
        # order, with the other side's table as it was, so the output queue still
        # remembers them (its recent ids) however the inputs interleave next.
        # Without it, pairs of events of the other side, new ones, could come
        # first and push the replayed ones out of that memory.
        await self.input.flush()
        changes: list[Mapping[Any, Any] | None] = [None] * self.inputs
        changes[LEFT] = {TAKEN: [side, stop]}
        await self.input.ack_each([0] * self.inputs, changes)
        await self.input.flush()

    async def ack(
        self, delivered: Sequence[int], changes: Mapping[Any, Any] | None = None
    ) -> None:
        # Exactly the entries of the events acknowledged, not of every event
        # processed: the worker acknowledges a prefix as pairs are accepted.
        offsets = self.input.offsets
        sides = [
            self.step.changes_before(side, offsets[side] + count)
            for side, count in enumerate(delivered)
        ]
        if changes:  # the output's state, if it had any, rides on the first queue
            sides[0] = {**changes, **(sides[0] or {})}
        await self.input.ack_each(delivered, sides)

    def end_of(self, index: int) -> bool:
        return self.input.end_of(index)

"""The input/output map: what each input became, and which inputs are delivered.

A worker records, per batch and in order, how its inputs turned into outputs, then
tells the map how many more outputs downstream accepted; the map answers how many
more inputs are fully delivered, i.e. may be acknowledged. An input is fully
delivered when every output that came from it is accepted and every input before it
is delivered too (acknowledgement is by offset, a prefix).

Records are runs, not events: 256 one-to-one inputs are one record, and a split or
filter of 256 inputs is one record holding the cumulative output counts.

The kinds of record (RUNTIME.md): one to one; filtered (an input with no output); a
split into n (a flat_map part list); a batch of m inputs into n outputs; no input (an
output that frees nothing, such as an inserted instruction); instruction in (an input
instruction, delivered once the outputs the worker produced for it are accepted).
"""

from __future__ import annotations

import itertools
from bisect import bisect_right
from collections import deque
from collections.abc import Sequence
from itertools import accumulate


class _Record:
    """A run of inputs from one input queue and the outputs they gave.

    `ends` holds, per input, the cumulative count of outputs up to and including it
    (a split run); `None` with `block` false is a one-to-one run; `block` means no
    input is delivered before the last output is.
    """

    __slots__ = ("accepted", "acked", "block", "ends", "input", "inputs", "outputs")

    def __init__(
        self,
        input: int,
        inputs: int,
        outputs: int,
        ends: Sequence[int] | None,
        block: bool,
    ) -> None:
        self.input = input
        self.inputs = inputs
        self.outputs = outputs
        self.ends = ends
        self.block = block
        self.accepted = 0
        self.acked = 0

    def delivered(self) -> int:
        if self.block:
            return self.inputs if self.accepted >= self.outputs else 0
        if self.ends is None:
            return self.accepted
        return bisect_right(self.ends, self.accepted)


class IOMap:
    """The input/output map of one worker; `inputs` is its number of input queues."""

    def __init__(self, inputs: int = 1) -> None:
        self._inputs = inputs
        self._records: deque[_Record] = deque()
        self._outputs = 0

    @property
    def pending_outputs(self) -> int:
        """Outputs recorded and not yet accepted."""
        return self._outputs

    def __len__(self) -> int:
        """Records kept (the map's memory)."""
        return len(self._records)

    def one_to_one(self, count: int, input: int = 0) -> None:
        """`count` inputs gave one output each (a map, a run of passing events)."""
        if count:
            self._add(_Record(input, count, count, None, False))

    def counts(self, counts: Sequence[int], input: int = 0) -> None:
        """Input `i` gave `counts[i]` outputs: a split, a filter or a mix."""
        if counts:
            ends = list(accumulate(counts))
            self._add(_Record(input, len(ends), ends[-1], ends, False))

    def ends(self, ends: Sequence[int], input: int = 0) -> None:
        """Like `counts`, given the cumulative counts already."""
        if ends:
            self._add(_Record(input, len(ends), ends[-1], ends, False))

    def filtered(self, count: int = 1, input: int = 0) -> None:
        """`count` inputs gave nothing: delivered once everything before them is."""
        if count:
            self._add(_Record(input, count, 0, None, True))

    def batch(self, inputs: int, outputs: int, input: int = 0) -> None:
        """`inputs` inputs together gave `outputs` outputs (delivered with the last).

        With `inputs == 0` it records outputs that no input produced; with one input
        instruction, what the worker produced acting on it.
        """
        if inputs or outputs:
            self._add(_Record(input, inputs, outputs, None, True))

    def no_input(self, outputs: int) -> None:
        """Outputs no input produced (an instruction a source inserts)."""
        self.batch(0, outputs)

    def instruction(self, outputs: int, input: int = 0) -> None:
        """An input instruction, acted on by producing `outputs` outputs."""
        self.batch(1, outputs, input)

    def _add(self, record: _Record) -> None:
        self._records.append(record)
        self._outputs += record.outputs

    def advance(self, accepted: int) -> list[int]:
        """Downstream accepted `accepted` more outputs; the inputs newly delivered.

        Answers a count per input queue.

        Also trims the records that are done with.
        """
        if accepted > self._outputs:
            msg = f"accepted {accepted} outputs; only {self._outputs} are pending"
            raise ValueError(msg)

        self._outputs -= accepted
        delivered = [0] * self._inputs
        records = self._records
        while records:
            record = records[0]
            take = min(accepted, record.outputs - record.accepted)
            record.accepted += take
            accepted -= take
            done = record.delivered()
            delivered[record.input] += done - record.acked
            record.acked = done
            if record.accepted < record.outputs:
                if not record.inputs:
                    self._free_behind(delivered)
                break
            records.popleft()
        return delivered

    def _free_behind(self, delivered: list[int]) -> None:
        # The head holds outputs that no input produced: inputs that gave nothing
        # behind it wait for no output, so they are delivered already.
        for record in itertools.islice(self._records, 1, None):
            done = record.delivered()  # nothing of it is accepted yet
            delivered[record.input] += done - record.acked
            record.acked = done
            if record.inputs and record.outputs:
                return

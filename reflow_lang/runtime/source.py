"""The input side of a source: reading batches from a source function.

A source function returns an iterable or an async iterable. A plain iterator is read
in the worker's thread pool, a batch per submission; an async one on the event loop.
A batch is handed on when it is full or, once it has an event, when the source has
kept it waiting for `flush_after` seconds, so that a slow source is not held back
for a whole batch (a single call that blocks cannot be interrupted, though: the
batch goes once that call returns).

A source whose function accepts `start` is rewindable: it is opened with
`start=` the offset to resume from, which also lets `retry` and `skip` reopen it
after an error (a generator that raised cannot go on). A source that is not
rewindable ends at an error that is skipped or dead-lettered.

A restarted source resumes after the last of its events its output queue holds
(`resume`, from the queue's `resume_point`): a rewindable source opens at the next
offset; a source that had ended gives end-of-source at once (the queue drops it: it
has one); a source that is not rewindable cannot resume past its first event, and
fails the job with `SourceResumeError`.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from reflow_lang.errors import ReflowError
from reflow_lang.runtime.events import END_OF_SOURCE, Batch, Item, Offsets
from reflow_lang.runtime.functions import UserFunction
from reflow_lang.runtime.offload import Offload
from reflow_lang.runtime.policy import DROP, ErrorHandler
from reflow_lang.runtime.queue import Resume
from reflow_lang.runtime.statistics import StageCounters

logger = logging.getLogger(__name__)

FLUSH_AFTER = 0.05


class SourceResumeError(ReflowError):
    """A restarted source cannot go on from where its events stopped."""


class _Exhausted(BaseException):
    """The source has no more events (raised by a retry that found the end).

    A `BaseException`, so that the retry loop, which catches the user's exceptions,
    lets it through.
    """


def _read_into(
    iterator: Iterator[Any],
    items: list[Any],
    limit: int,
    flush_after: float,
    clock: Callable[[], float],
) -> tuple[bool, Exception | None]:
    # Runs in the pool. Answers (exhausted, error); `items` keeps what was read.
    try:
        items.append(next(iterator))
        deadline = clock() + flush_after
        while len(items) < limit:
            items.append(next(iterator))
            if clock() > deadline:
                break
    except StopIteration:
        return True, None
    except Exception as exc:  # the user's source: its policy decides
        return False, exc
    return False, None


class SourceInput:
    """Reads a source function in batches; see the module docstring."""

    inputs = 1

    def __init__(
        self,
        name: str,
        function: UserFunction,
        rewindable: bool,
        handler: ErrorHandler,
        counters: StageCounters,
        offload: Offload,
        clock: Callable[[], float],
    ) -> None:
        self.name = name
        self.function = function
        self.rewindable = rewindable
        self.handler = handler
        self.counters = counters
        self.offload = offload
        self.clock = clock
        self.offset = 0  # the offset of the next event to read
        self.committed = 0  # events delivered downstream
        self._iterator: Any = None
        self._is_async = False
        self._pending: asyncio.Future[Any] | None = None
        self._waiting: asyncio.Future[Any] | None = None
        self._ended = False
        self._stopping = False

    def stop(self) -> None:
        """Ends the source at the next batch boundary, or now if it is waiting."""
        self._stopping = True
        if self._waiting is not None and not self._waiting.done():
            self._waiting.cancel()

    async def take(self, limit: int) -> tuple[int, Item]:
        if self._ended or self._stopping:
            return 0, self._end()
        try:
            values = await self._read(limit)
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if self._stopping and task is not None and not task.cancelling():
                return 0, self._end()
            raise
        if not values:
            return 0, self._end()

        start = self.offset - len(values)
        self.counters.events_in += len(values)
        self.counters.events_out += len(values)
        return 0, Batch(values, Offsets(self.name, start, self.offset))

    async def poll(self, limit: int) -> tuple[int, Item] | None:
        return await self.take(limit)

    def resume(self, point: Resume) -> None:
        """Goes on after the events its output queue holds; see the module docstring.

        Raises:
            SourceResumeError: the source is not rewindable and had given events.
        """
        if point.ended:
            self._ended = True
            return
        if point.high is None:
            return

        start = point.high[0] + 1
        if not self.rewindable:
            msg = (
                f"source `{self.name}` cannot resume at offset {start} after its "
                "worker restarted: its function takes no `start`"
            )
            raise SourceResumeError(msg)
        self.offset = self.committed = start

    async def ack(
        self, delivered: Sequence[int], changes: Mapping[Any, Any] | None = None
    ) -> None:
        self.committed += delivered[0]

    def end_of(self, index: int) -> bool:
        return True

    def _end(self) -> Item:
        self._ended = True
        if self._pending is not None:
            self._pending.cancel()
        return END_OF_SOURCE

    async def _read(self, limit: int) -> list[Any]:
        # The events read (the offset moved past them); empty at the end.
        values: list[Any] = []
        while not values and not self._ended:
            exhausted, error = await self._read_some(values, limit)
            self.offset += len(values)
            if error is not None:
                values.extend(await self._recover(error))
            elif exhausted:
                self._ended = True
        return values

    async def _read_some(
        self, values: list[Any], limit: int
    ) -> tuple[bool, Exception | None]:
        if self._iterator is None:
            try:
                await self._open()
            except Exception as exc:  # the user's source failed to start
                return False, exc
        if self._is_async:
            return await self._read_async(values, limit)
        if self.function.inline:
            return _read_into(self._iterator, values, limit, FLUSH_AFTER, self.clock)
        self._waiting = self.offload.submit(
            _read_into, self._iterator, values, limit, FLUSH_AFTER, self.clock
        )
        exhausted, error = await self._waiting
        return exhausted, error

    async def _open(self) -> None:
        kwargs = {"start": self.offset} if self.rewindable else {}
        call = self.function.function
        args = self.function.args
        if self.function.is_async or self.function.inline:
            produced = call(*args, **kwargs)
        else:
            produced = await self.offload.run(lambda: call(*args, **kwargs))
        if inspect.isawaitable(produced):
            produced = await produced
        self._is_async = hasattr(produced, "__aiter__")
        self._iterator = aiter(produced) if self._is_async else iter(produced)

    async def _read_async(
        self, values: list[Any], limit: int
    ) -> tuple[bool, Exception | None]:
        deadline: float | None = None
        while len(values) < limit:
            if self._pending is None:
                self._pending = asyncio.ensure_future(anext(self._iterator))
            timeout = None if deadline is None else max(0.0, deadline - self.clock())
            self._waiting = self._pending
            done, _ = await asyncio.wait({self._pending}, timeout=timeout)
            if not done:
                break
            pending, self._pending = self._pending, None
            try:
                values.append(pending.result())
            except StopAsyncIteration:
                return True, None
            except Exception as exc:  # the user's source: its policy decides
                return False, exc
            if deadline is None:
                deadline = self.clock() + FLUSH_AFTER
        return False, None

    async def _recover(self, error: Exception) -> list[Any]:
        # The iterator is unusable after raising: a retry reopens it at the offset.
        self._iterator = None

        async def again() -> Any:
            if not self.rewindable:
                logger.warning(
                    "source `%s` cannot retry: it does not accept `start`", self.name
                )
                raise error
            return await self._read_one_again()

        try:
            result = await self.handler.recover(
                error, None, (self.name, self.offset), again
            )
        except _Exhausted:
            self._ended = True
            return []
        if result is DROP:
            self.offset += 1
            if not self.rewindable:
                logger.warning("source `%s` is not rewindable: it ends here", self.name)
                self._ended = True
            return []
        self.offset += 1
        return [result]

    async def _read_one_again(self) -> Any:
        await self._open()
        values: list[Any] = []
        if self._is_async:
            exhausted, error = await self._read_async(values, 1)
        else:
            exhausted, error = await self.offload.run(
                _read_into, self._iterator, values, 1, FLUSH_AFTER, self.clock
            )
        if error is not None:
            self._iterator = None
            raise error
        if exhausted:
            raise _Exhausted
        return values[0]

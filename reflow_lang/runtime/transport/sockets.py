"""Waiting on a ZeroMQ socket from asyncio, for code that sends and receives without
waiting.

The transport calls plain sockets with `NOBLOCK` and waits only when a call would
block, since an awaited `zmq.asyncio` call costs about 10 us a message. Waiting
means watching the socket's file descriptor, which ZeroMQ signals by edges: reading
`EVENTS` (and every send or receive, which reads them too) consumes the signal. So
whoever sends or receives while another task waits on the socket must `notify()`,
which looks at the events again and wakes the waiters they concern; otherwise a
reply already in the socket would wait for the next edge, which may never come.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import cast

import zmq


class Readiness:
    """Waits until a socket can receive (`zmq.POLLIN`) or send (`zmq.POLLOUT`).

    With `on_input`, that callback is called whenever the socket may have something
    to receive (it must receive until it has nothing left, or look again later):
    a reader that needs no task, and no future per wake-up.
    """

    def __init__(
        self,
        socket: zmq.Socket[bytes],
        on_input: Callable[[], None] | None = None,
    ) -> None:
        self.socket = socket
        self._fd = cast(int, socket.getsockopt(zmq.FD))
        self._waiters: list[tuple[int, asyncio.Future[None]]] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._on_input = on_input
        if on_input is not None:
            loop = asyncio.get_running_loop()
            self._watch(loop)
            loop.call_soon(on_input)  # something may be there already

    async def wait(self, event: int) -> None:
        """Returns once `event` is possible (at once if it is already)."""
        loop = asyncio.get_running_loop()
        while not self._look() & event:
            future = loop.create_future()
            self._waiters.append((event, future))
            self._watch(loop)
            try:
                await future
            finally:
                if not future.done():
                    self._waiters.remove((event, future))

    def notify(self) -> None:
        """Wakes the waiters whose event is possible (and calls `on_input` if there
        is input); call after sending or receiving in a task other than the
        waiters'."""
        if self._waiters or self._on_input is not None:
            self._look()

    def close(self) -> None:
        """Stops watching the descriptor (before the socket closes) and wakes no one."""
        self._on_input = None
        self._unwatch()
        for _, future in self._waiters:
            future.cancel()
        self._waiters.clear()

    def _look(self) -> int:
        events = cast(int, self.socket.getsockopt(zmq.EVENTS))
        if events and (self._waiters or self._on_input is not None):
            self._wake(events)
        return events

    def _wake(self, events: int) -> None:
        if events & zmq.POLLIN and self._on_input is not None:
            self._on_input()
        if not self._waiters:
            return
        waiting = []
        for event, future in self._waiters:
            if events & event:
                if not future.done():
                    future.set_result(None)
            else:
                waiting.append((event, future))
        self._waiters = waiting

    def _watch(self, loop: asyncio.AbstractEventLoop) -> None:
        # Watched from the first wait until `close`: registering the descriptor
        # anew for every wait would cost two system calls each time.
        if self._loop is None:
            loop.add_reader(self._fd, self._signalled)
            self._loop = loop

    def _unwatch(self) -> None:
        if self._loop is not None:
            self._loop.remove_reader(self._fd)
            self._loop = None

    def _signalled(self) -> None:
        # The descriptor only says "look again": the events say what changed.
        self._wake(cast(int, self.socket.getsockopt(zmq.EVENTS)))

"""Running plain user functions off the event loop, one submission per batch.

Each worker has its own thread pool, sized for the stage's workers, so a slow
function, a blocking source or a blocking sink never stalls another stage. A call
that outlives its deadline cannot be interrupted (Python threads cannot be killed):
the worker gives up waiting, leaves the thread to finish on its own and takes a fresh
pool so that later calls do not queue behind it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

logger = logging.getLogger(__name__)

T = TypeVar("T")


class Offload:
    """A worker's thread pool."""

    def __init__(self, name: str, threads: int) -> None:
        self._name = name
        self._threads = max(1, threads)
        self._pool = self._new_pool()

    def _new_pool(self) -> ThreadPoolExecutor:
        return ThreadPoolExecutor(
            self._threads, thread_name_prefix=f"reflow-{self._name}"
        )

    async def run(
        self, function: Callable[..., T], *args: Any, deadline: float | None = None
    ) -> T:
        """`function(*args)` in the pool; `TimeoutError` after `deadline` seconds."""
        future = asyncio.get_running_loop().run_in_executor(self._pool, function, *args)
        if deadline is None:
            return await future
        try:
            return await asyncio.wait_for(future, deadline)
        except TimeoutError:
            self._abandon()
            raise

    def submit(self, function: Callable[..., T], *args: Any) -> asyncio.Future[T]:
        """`function(*args)` in the pool, as a future one may stop waiting for."""
        return asyncio.get_running_loop().run_in_executor(self._pool, function, *args)

    def _abandon(self) -> None:
        logger.warning(
            "stage `%s`: a call outlived its deadline; its thread is left to finish",
            self._name,
        )
        self._pool.shutdown(wait=False)
        self._pool = self._new_pool()

    def close(self) -> None:
        """Lets the threads end; does not wait for a call still running."""
        self._pool.shutdown(wait=False, cancel_futures=True)

"""A bounded job queue in front of the inference threads.

At most ``max_concurrency`` jobs run (each in a worker thread, off the event loop) and at
most ``queue_limit`` wait for a slot; a job beyond that is refused at once with
:class:`Overloaded` (the app answers ``503``) instead of piling up requests that would
time out anyway.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")


class Overloaded(RuntimeError):
    """Every worker is busy and the queue is full."""


class JobGate:
    """Admission control + a private thread pool.

    Args:
        max_concurrency: jobs running at once (also the thread count).
        queue_limit: jobs allowed to wait.
    """

    def __init__(self, max_concurrency: int, queue_limit: int) -> None:
        self.max_concurrency = max_concurrency
        self.queue_limit = queue_limit
        self._executor = ThreadPoolExecutor(max_concurrency, thread_name_prefix="unitalker-infer")
        self._sem: asyncio.Semaphore | None = None
        self.running = 0
        self.waiting = 0
        self.completed = 0
        self.rejected = 0

    def _semaphore(self) -> asyncio.Semaphore:
        # Created lazily so it binds to the server's event loop, not the importer's.
        if self._sem is None:
            self._sem = asyncio.Semaphore(self.max_concurrency)
        return self._sem

    async def run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run ``fn(*args, **kwargs)`` in a worker thread once a slot is free.

        Raises:
            Overloaded: when ``running + waiting`` already fills every slot and the queue.
        """
        if self.running + self.waiting >= self.max_concurrency + self.queue_limit:
            self.rejected += 1
            raise Overloaded(
                f"server busy: {self.running} jobs running and {self.waiting} queued "
                f"(limits: {self.max_concurrency} concurrent, {self.queue_limit} queued)"
            )
        sem = self._semaphore()
        self.waiting += 1
        try:
            await sem.acquire()
        finally:
            self.waiting -= 1
        self.running += 1
        try:
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(
                self._executor, functools.partial(fn, *args, **kwargs)
            )
        finally:
            self.running -= 1
            self.completed += 1
            sem.release()

    async def run_unqueued(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run in a worker thread without admission control (small jobs of an admitted stream)."""
        sem = self._semaphore()
        async with sem:
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(
                self._executor, functools.partial(fn, *args, **kwargs)
            )

    def stats(self) -> dict[str, int]:
        return {
            "running": self.running,
            "waiting": self.waiting,
            "completed": self.completed,
            "rejected": self.rejected,
            "max_concurrency": self.max_concurrency,
            "queue_limit": self.queue_limit,
        }

    def shutdown(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)

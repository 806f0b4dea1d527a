"""A bounded job queue in front of the inference threads.

At most ``max_concurrency`` jobs run (each in a worker thread, off the event loop) and at
most ``queue_limit`` more are admitted to wait; one beyond that is refused at once with
:class:`Overloaded` (the app answers ``503``) instead of piling up requests that would
time out anyway.

A request is admitted (:meth:`JobGate.admit`) *before* its body is read, so the uploads
being received count against the same limits as the jobs waiting and running: a flood of
uploads is refused before any of it is buffered.
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


class Admission:
    """A place in the gate, held from admission (before the body is read) to the job's end.

    :meth:`release` is idempotent; the request's owner calls it when the request ends,
    whatever happened.
    """

    def __init__(self, gate: JobGate) -> None:
        self._gate = gate
        self.released = False

    def release(self) -> None:
        if not self.released:
            self.released = True
            self._gate._admitted -= 1  # noqa: SLF001 - the gate's own bookkeeping


class JobGate:
    """Admission control + a private thread pool.

    Args:
        max_concurrency: jobs running at once (also the thread count).
        queue_limit: jobs allowed to wait (including requests still receiving their body).
    """

    def __init__(self, max_concurrency: int, queue_limit: int) -> None:
        self.max_concurrency = max_concurrency
        self.queue_limit = queue_limit
        self._executor = ThreadPoolExecutor(max_concurrency, thread_name_prefix="unitalker-infer")
        self._sem: asyncio.Semaphore | None = None
        self._admitted = 0  # admitted and not yet finished: receiving + waiting + running
        self.running = 0
        self.waiting = 0
        self.completed = 0
        self.rejected = 0

    def _semaphore(self) -> asyncio.Semaphore:
        # Created lazily so it binds to the server's event loop, not the importer's.
        if self._sem is None:
            self._sem = asyncio.Semaphore(self.max_concurrency)
        return self._sem

    def admit(self) -> Admission:
        """Take a place for one job, or refuse at once.

        Raises:
            Overloaded: when every running and queued place is taken.
        """
        if self._admitted >= self.max_concurrency + self.queue_limit:
            self.rejected += 1
            receiving = self._admitted - self.running - self.waiting
            raise Overloaded(
                f"server busy: {self.running} jobs running, {self.waiting} queued and "
                f"{receiving} uploads arriving (limits: {self.max_concurrency} concurrent, "
                f"{self.queue_limit} queued)"
            )
        self._admitted += 1
        return Admission(self)

    async def run(
        self, fn: Callable[..., T], *args: Any, admission: Admission | None = None, **kwargs: Any
    ) -> T:
        """Run ``fn(*args, **kwargs)`` in a worker thread once a slot is free.

        Args:
            admission: the place taken by :meth:`admit` for this request (given back when
                the job ends); without one, a place is taken (or refused) now.

        Raises:
            Overloaded: no admission given and every place is taken.
        """
        place = self.admit() if admission is None else admission
        try:
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
        finally:
            place.release()

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
            "receiving": self._admitted - self.running - self.waiting,
            "completed": self.completed,
            "rejected": self.rejected,
            "max_concurrency": self.max_concurrency,
            "queue_limit": self.queue_limit,
        }

    def shutdown(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)

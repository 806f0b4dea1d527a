"""A bounded job queue in front of the inference threads.

At most ``max_concurrency`` jobs run (each in a worker thread, off the event loop) and at
most ``queue_limit`` more are admitted to wait; one beyond that is refused at once with
:class:`Overloaded` (the app answers ``503``) instead of piling up requests that would
time out anyway.

A request is admitted (:meth:`JobGate.admit`) *before* its body is read, so the uploads
being received count against the same limits as the jobs waiting and running: a flood of
uploads is refused before any of it is buffered.

:class:`UploadGateMiddleware` is the HTTP side: it takes that place before an endpoint
runs and bounds the body's size and arrival time.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from unitalker.serve.errors import error_response

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


ADMISSION_KEY = "unitalker.admission"  # where the middleware leaves a request's gate place


class UploadGateMiddleware:
    """Admission, size and time limits for request bodies, before any endpoint runs.

    For a request with a body: a declared ``Content-Length`` over ``limit`` is refused at
    once (``413``); otherwise a place is taken in ``gate`` *before* the body is read
    (``503`` when full) and left in ``scope[ADMISSION_KEY]`` for the endpoint. The body
    then streams through to the app (FastAPI spools the upload to a temporary file; it is
    never held whole in memory here) while its bytes are counted (``413`` as soon as they
    pass ``limit``, whatever the headers said) and the whole body must arrive within
    ``timeout`` seconds (``408``), so a client trickling bytes cannot hold a place.

    A refused body (413 or 503) is drained (discarded) up to a bound, so a client still
    sending reads the error instead of a reset connection.
    """

    def __init__(self, app: Any, gate: JobGate, limit: int, timeout: float) -> None:
        self.app, self.gate, self.limit, self.timeout = app, gate, limit, timeout
        self.drain_cap = limit + (8 << 20)

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["method"] not in ("POST", "PUT", "PATCH"):
            await self.app(scope, receive, send)
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            if int(declared) <= self.drain_cap:
                await self._drain(receive, 0, deadline)
            await self._refuse(scope, send, *self._too_big())
            return
        try:
            admission = self.gate.admit()
        except Overloaded as e:
            # Discard the (bounded) body first, as for 413: a client still sending would
            # otherwise see a reset connection instead of the 503. Nothing is kept.
            await self._drain(receive, 0, deadline)
            await self._refuse(scope, send, 503, "overloaded", str(e), jobs=self.gate.stats())
            return
        scope[ADMISSION_KEY] = admission
        failure: tuple[int, str, str] | None = None
        size, body_done = 0, False

        async def limited_receive() -> dict:
            nonlocal failure, size, body_done
            if failure is not None:
                return {"type": "http.disconnect"}
            if body_done:  # the app listening for a disconnect: no deadline on that
                return await receive()
            try:
                msg = await asyncio.wait_for(receive(), max(0.0, deadline - loop.time()))
            except asyncio.TimeoutError:
                failure = self._too_slow()
                return {"type": "http.disconnect"}
            if msg["type"] == "http.request":
                size += len(msg.get("body", b""))
                body_done = not msg.get("more_body", False)
                if size > self.limit:
                    failure = self._too_big()
                    if not body_done and not await self._drain(receive, size, deadline):
                        failure = self._too_slow()
                    return {"type": "http.disconnect"}
            return msg

        started = False

        async def guarded_send(msg: dict) -> None:
            nonlocal started
            if failure is not None and not started:
                return  # the app's answer to the cut-off body; ours is sent below
            started = True
            await send(msg)

        try:
            await self.app(scope, limited_receive, guarded_send)
        except Exception:
            if failure is None:
                raise
        finally:
            admission.release()
        if failure is not None and not started:
            await self._refuse(scope, send, *failure)

    def _too_big(self) -> tuple[int, str, str]:
        return 413, "too_large", f"request body over the {self.limit / (1 << 20):g} MiB limit"

    def _too_slow(self) -> tuple[int, str, str]:
        return 408, "timeout", f"request body not received within {self.timeout:g} s"

    async def _drain(self, receive: Any, size: int, deadline: float) -> bool:
        """Read and discard the rest of a refused body (bounded); False on the deadline."""
        loop = asyncio.get_running_loop()
        while size <= self.drain_cap:
            try:
                msg = await asyncio.wait_for(receive(), max(0.0, deadline - loop.time()))
            except asyncio.TimeoutError:
                return False
            if msg["type"] != "http.request":
                break
            size += len(msg.get("body", b""))
            if not msg.get("more_body", False):
                break
        return True

    async def _refuse(
        self, scope: dict, send: Any, status: int, code: str, detail: str, **extra: Any
    ) -> None:
        async def no_body() -> dict:
            return {"type": "http.disconnect"}

        resp = error_response(status, code, detail, **extra)
        # The rest of the body is not read: the connection cannot be reused.
        resp.headers["Connection"] = "close"
        if status == 503:
            resp.headers["Retry-After"] = "1"
        await resp(scope, no_body, send)

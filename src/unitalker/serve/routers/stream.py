"""``WS /v1/stream``: PCM16 in, frames out as soon as the look-ahead allows.

The wire protocol is :mod:`unitalker.serve.protocol`; one :class:`StreamSession` runs it
for one connection. The incremental inference is
:class:`unitalker.inference.streaming.Streamer`; audio not sent at 16 kHz goes through
:class:`unitalker.audio.StreamResampler` first.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from typing import Any

import numpy as np
from fastapi import APIRouter, WebSocket
from starlette.websockets import WebSocketDisconnect

from unitalker.audio import (
    SAMPLE_RATE,
    AudioError,
    StreamResampler,
    check_sample_rate,
    pcm16_to_float,
)
from unitalker.serve import protocol
from unitalker.serve.errors import ApiError
from unitalker.serve.protocol import json_floats
from unitalker.serve.routers.models import head_info
from unitalker.serve.state import ServeState, state_of

log = logging.getLogger(__name__)

router = APIRouter()


@router.websocket("/v1/stream")
async def stream(ws: WebSocket) -> None:
    await StreamSession(ws, state_of(ws)).serve()


class StreamSession:
    """One WebSocket stream: its header, the audio it sends, the frames it is sent.

    :meth:`serve` runs the whole connection: a place among ``max_streams``, the header
    (within ``stream_idle_seconds``), then a reader (audio chunks, resampled to 16 kHz and
    counted against ``max_seconds``) and a processor (the streamer's new frames, sent as
    they come) until the client's ``end`` and the ``done`` message. Every send is bounded
    by ``stream_send_timeout_seconds``: a client that stops reading is closed and its
    place given back. A failure ends this stream only, never the server.
    """

    # Set once the header is read (_run), then by _exchange:
    hdr: protocol.StreamHeader
    names: list[str]  # the stream's heads, in the ready message's order
    index: dict[str, int]  # head -> index in binary frames
    counts: dict[str, int]  # frames sent per head
    streamer: Any  # unitalker.inference.streaming.Streamer
    sender: Any  # the Live Link UDP sender, or None
    resample: StreamResampler | None  # None: sent at 16 kHz
    max_raw: int  # the duration limit, in samples as sent
    raw: int  # samples received, at the sent rate
    samples: int  # samples given to the streamer, at 16 kHz
    odd: bytes  # a trailing odd byte, kept for the next chunk
    pending: list[np.ndarray]  # 16 kHz samples not yet pushed
    ended: bool  # the client sent "end"
    wake: asyncio.Event  # the reader's signal to the processor

    def __init__(self, ws: WebSocket, state: ServeState) -> None:
        self.ws, self.state = ws, state
        self.settings = state.settings
        self.idle = self.settings.stream_idle_seconds
        self.send_timeout = self.settings.stream_send_timeout_seconds

    # ---- the connection -----------------------------------------------------------------
    async def serve(self) -> None:
        """Accept, take a place (or refuse: close 1013), run the stream, give the place back."""
        ws, st = self.ws, self.state
        await ws.accept()
        if st.streams >= self.settings.max_streams:
            await self.fail(protocol.CLOSE_TRY_LATER, f"server busy: {st.streams} streams open")
            return
        st.streams += 1
        try:
            await self._run()
        except WebSocketDisconnect:
            log.info("stream client went away")
        except ApiError as e:
            await self.end(e)
        except Exception as e:  # noqa: BLE001 - a stream never takes the server down
            log.exception("stream failed")
            await self.fail(protocol.CLOSE_INTERNAL, f"internal error: {type(e).__name__}: {e}")
        finally:
            st.streams -= 1

    async def fail(self, code: int, message: str) -> None:
        """Send an error message and close with ``code``, bounded in time."""

        # Bounded: a client that reads nothing must not hold the handler (and its place).
        async def say() -> None:
            await self.ws.send_text(json.dumps({"type": "error", "message": message}))
            await self.ws.close(code)

        with contextlib.suppress(Exception):  # the client may be gone or stuck already
            await asyncio.wait_for(say(), self.send_timeout)

    async def end(self, e: ApiError) -> None:
        """Close the stream for ``e`` (a slow reader is only counted: it cannot be told)."""
        if e.code == "not_reading":
            # Its buffer is full: an error message would wait like the frames did.
            log.info("stream closed: %s", e.detail)
            self.state.streams_not_reading += 1
            return
        await self.fail(e.status, e.detail)

    async def send(self, text: str | None = None, data: bytes | None = None) -> None:
        """Send one message; :class:`ApiError` ``not_reading`` past the send timeout."""
        # A client that stops reading fills its socket buffer and every send waits;
        # past the timeout the stream is closed and its place given back.
        try:
            if data is not None:
                await asyncio.wait_for(self.ws.send_bytes(data), self.send_timeout)
            else:
                await asyncio.wait_for(self.ws.send_text(text or ""), self.send_timeout)
        except asyncio.TimeoutError:
            raise ApiError(
                protocol.CLOSE_POLICY,
                "not_reading",
                f"client read nothing for {self.send_timeout:g} s",
            ) from None

    # ---- the protocol -------------------------------------------------------------------
    async def _read_header(self) -> tuple[protocol.StreamHeader, list[str], str | None] | None:
        """The first message, parsed and checked; None when the stream already ended."""
        try:
            first = await asyncio.wait_for(self.ws.receive(), self.idle)
        except asyncio.TimeoutError:
            await self.fail(protocol.CLOSE_POLICY, f"no header within {self.idle:g} s")
            return None
        if first["type"] == "websocket.disconnect":
            return None
        check = self.state.check_request
        try:
            hdr = protocol.StreamHeader.parse(first.get("text"))
            names, ident = check(",".join(hdr.heads or ()), None)
            if hdr.identity is not None:
                names, ident = check(",".join(names), str(hdr.identity))
            # The rule of every input (files, uploads, streams) lives in audio.py.
            check_sample_rate(hdr.sample_rate, "stream header")
        except (protocol.ProtocolError, ApiError, AudioError) as e:
            await self.fail(protocol.CLOSE_POLICY, getattr(e, "detail", str(e)))
            return None
        return hdr, names, ident

    async def _run(self) -> None:
        parsed = await self._read_header()
        if parsed is None:
            return
        hdr, names, ident = parsed
        from unitalker.inference.streaming import Streamer

        model = self.state.model
        self.hdr, self.names = hdr, names
        self.streamer = Streamer(model, heads=names, identity=ident, lookahead=hdr.lookahead)
        self.index = {h: i for i, h in enumerate(names)}
        self.counts = dict.fromkeys(names, 0)
        self.sender = self._livelink_sender(names)
        try:
            await self.send(json.dumps(self._ready(model)))
            await self._exchange()
        finally:
            if self.sender is not None:
                self.sender.close()

    def _ready(self, model: Any) -> dict[str, Any]:
        hdr = self.hdr
        ready = {
            "type": "ready",
            "sample_rate": hdr.sample_rate,
            "lookahead": hdr.lookahead,
            "heads": [head_info(model, h) | {"index": self.index[h]} for h in self.names],
        }
        if self.sender is not None:
            ready["livelink"] = {"head": self.sender.head, "subject": self.sender.subject}
        return ready

    async def _exchange(self) -> None:
        """Run the reader and the processor until ``done`` or the first failure."""
        rate = self.hdr.sample_rate
        self.resample = StreamResampler(rate, SAMPLE_RATE) if rate != SAMPLE_RATE else None
        self.max_raw = int(self.settings.max_seconds * rate)
        self.raw = self.samples = 0
        self.odd = b""
        self.pending = []
        self.ended = False
        self.wake = asyncio.Event()
        tasks = [asyncio.create_task(self._reader()), asyncio.create_task(self._processor())]
        try:
            while tasks:
                done_set, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
                for t in done_set:
                    tasks.remove(t)
                    t.result()  # re-raise a failure
        except ApiError as e:
            await self.end(e)
        finally:
            for t in tasks:
                t.cancel()

    def _feed(self, x: np.ndarray) -> None:
        """Queue ``[S]`` samples at 16 kHz for the processor."""
        self.samples += len(x)
        self.pending.append(x)
        self.wake.set()

    async def _reader(self) -> None:
        """Receive audio chunks until the client's ``end``."""
        while True:
            try:
                msg = await asyncio.wait_for(self.ws.receive(), self.idle)
            except asyncio.TimeoutError:
                raise ApiError(1008, "idle", f"no data for {self.idle:g} s") from None
            if msg["type"] == "websocket.disconnect":
                raise WebSocketDisconnect(msg.get("code", 1000))
            if msg.get("bytes") is not None:
                b = self.odd + msg["bytes"]
                b, self.odd = (b[:-1], b[-1:]) if len(b) % 2 else (b, b"")
                self.raw += len(b) // 2
                if self.raw > self.max_raw:
                    raise ApiError(
                        protocol.CLOSE_TOO_BIG,
                        "too_long",
                        f"stream over the {self.settings.max_seconds:g} s limit",
                    )
                x = pcm16_to_float(b)
                self._feed(self.resample(x) if self.resample else x)
            else:
                try:
                    m = json.loads(msg.get("text") or "")
                except ValueError:
                    raise ApiError(1008, "bad_message", "text messages must be JSON") from None
                if isinstance(m, dict) and m.get("type") == "end":
                    tail = self.resample.flush() if self.resample else None
                    if tail is not None and tail.size:  # the last half filter's worth
                        self._feed(tail)
                    self.ended = True
                    self.wake.set()
                    return
                raise ApiError(1008, "bad_message", f"unexpected message {str(m)[:80]!r}")

    async def _processor(self) -> None:
        """Push what arrived to the streamer and send its frames; ``done`` at the end."""
        gate = self.state.gate
        while True:
            await self.wake.wait()
            self.wake.clear()
            if self.pending:
                chunk = np.concatenate(self.pending)
                self.pending.clear()
                await self._send_frames(await gate.run_unqueued(self.streamer.push, chunk))
            if self.ended and not self.pending:
                await self._send_frames(await gate.run_unqueued(self.streamer.flush))
                n = self.samples
                done = {"type": "done", "frames": self.counts, "samples": n}
                done["seconds"] = n / SAMPLE_RATE
                await self.send(json.dumps(done))
                await asyncio.wait_for(self.ws.close(protocol.CLOSE_NORMAL), self.send_timeout)
                return

    async def _send_frames(self, new: dict[str, np.ndarray]) -> None:
        counts, sender = self.counts, self.sender
        for h, f in new.items():
            if len(f) == 0:
                continue
            if sender is not None and h == sender.head:
                sender.send(f, counts[h])  # UDP: never blocks the loop for long
            if self.hdr.format == "binary":
                await self.send(data=protocol.pack_frames(self.index[h], counts[h], f))
            else:
                msg = {"type": "frames", "head": h, "start": counts[h], "frames": json_floats(f)}
                await self.send(json.dumps(msg))
            counts[h] += len(f)

    def _livelink_sender(self, names: list[str]) -> Any:
        """The Live Link UDP sender of this stream's ARKit head, or None."""
        if self.settings.livelink is None:
            return None
        from unitalker.export.livelink_udp import LiveLinkSender, arkit_heads, parse_address

        heads = arkit_heads(names)
        if not heads:
            log.info("Live Link: this stream has no ARKit head; nothing is sent")
            return None
        host, port = parse_address(self.settings.livelink)
        return LiveLinkSender(host, port, heads[0], subject=self.settings.livelink_subject)

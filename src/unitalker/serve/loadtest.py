"""Load test for the server: concurrent clients posting clips and streaming them.

``unitalker loadtest`` (see :mod:`unitalker.commands.loadtest`) runs ``clients`` concurrent
clients on loopback, each making up to ``requests`` requests (alternating ``POST
/v1/animate`` and ``WS /v1/stream`` in ``mixed`` mode) until ``duration`` seconds have
passed. Every answer is checked: the frame count of every head must equal
``round(seconds * fps)`` for the clip. A request is *ok* (verified), *rejected* (``503`` /
close 1013: the server said it is full) or an *error* (anything else: a wrong count, an
exception, another status); ``lost`` counts requests that got no answer at all and must
be 0.

It also measures the streaming latency on an otherwise idle server: the clip is sent at
real-time pace in 20 ms chunks and the time from the first chunk to the first frame is
recorded, together with the part of it that is not the look-ahead wait (from the chunk
that made frame 0 ready to its arrival).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import statistics
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from unitalker.audio import SAMPLE_RATE, frame_count


@dataclass
class KindStats:
    """Results of one request kind (``animate`` or ``stream``)."""

    sent: int = 0
    ok: int = 0
    rejected: int = 0
    errors: int = 0
    latencies: list[float] = field(default_factory=list)  # seconds, verified answers only
    messages: list[str] = field(default_factory=list)  # first few error messages

    @property
    def lost(self) -> int:
        return self.sent - self.ok - self.rejected - self.errors

    def summary(self, wall: float) -> dict[str, Any]:
        lat = sorted(self.latencies)
        return {
            "sent": self.sent,
            "ok": self.ok,
            "rejected": self.rejected,
            "errors": self.errors,
            "lost": self.lost,
            "throughput_rps": self.ok / wall if wall > 0 else 0.0,
            "p50_ms": 1000 * _pct(lat, 50),
            "p95_ms": 1000 * _pct(lat, 95),
            "max_ms": 1000 * lat[-1] if lat else float("nan"),
            "error_messages": self.messages[:5],
        }


def _pct(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    return float(np.percentile(np.asarray(sorted_values), q))


@dataclass
class LoadReport:
    clients: int
    requests_per_client: int
    clip_seconds: float
    wall_s: float
    kinds: dict[str, dict[str, Any]]
    first_frame: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def table(self) -> str:
        """A Markdown table of the run."""
        rows = [
            "| kind | clients | requests | ok | 503 | errors | lost | req/s | p50 ms | p95 ms |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for k, s in self.kinds.items():
            rows.append(
                f"| {k} | {self.clients} | {s['sent']} | {s['ok']} | {s['rejected']} | "
                f"{s['errors']} | {s['lost']} | {s['throughput_rps']:.2f} | "
                f"{s['p50_ms']:.0f} | {s['p95_ms']:.0f} |"
            )
        ff = self.first_frame
        if ff:
            rows.append("")
            rows.append(
                f"streaming first frame (real-time pace, look-ahead {ff['lookahead']:g} s, "
                f"{ff['runs']} runs): median {ff['first_frame_ms']:.0f} ms after the first chunk; "
                f"{ff['processing_ms']:.0f} ms after the look-ahead was filled"
            )
        return "\n".join(rows)


def _pcm16(wav: np.ndarray) -> bytes:
    return (np.clip(wav, -1, 1) * 32767).astype("<i2").tobytes()


async def _animate_once(client: Any, clip: bytes, expected: dict[str, int], st: KindStats) -> None:
    from unitalker.serve import protocol

    st.sent += 1
    t0 = time.perf_counter()
    try:
        files = {"audio": ("loadtest.wav", clip, "audio/wav")}
        data = {"heads": ",".join(expected), "format": "bin"}
        r = await client.post("/v1/animate", files=files, data=data)
        if r.status_code == 503:
            st.rejected += 1
            return
        if r.status_code != 200:
            raise RuntimeError(f"HTTP {r.status_code}: {r.text[:200]}")
        arrays, _ = protocol.unpack_arrays(r.content)
        got = {h: int(a.shape[0]) for h, a in arrays.items()}
        if got != expected:
            raise RuntimeError(f"frame counts {got} != expected {expected}")
        st.latencies.append(time.perf_counter() - t0)
        st.ok += 1
    except Exception as e:  # noqa: BLE001 - every failure is counted and reported
        st.errors += 1
        st.messages.append(f"animate: {type(e).__name__}: {e}")


async def _stream_once(
    ws_url: str,
    pcm: bytes,
    expected: dict[str, int],
    st: KindStats | None,
    *,
    chunk_s: float = 0.1,
    pace: bool = False,
    lookahead: float = 0.2,
) -> dict[str, float] | None:
    """Stream the clip; verify counts; return timing marks (seconds, perf_counter)."""
    import websockets

    from unitalker.serve import protocol

    if st is not None:
        st.sent += 1
    t0 = time.perf_counter()
    marks: dict[str, float] = {}
    try:
        async with websockets.connect(ws_url + "/v1/stream", max_size=None) as ws:
            hdr = {"heads": list(expected), "format": "binary", "lookahead": lookahead}
            await ws.send(json.dumps(hdr))
            ready = json.loads(await ws.recv())
            if ready.get("type") == "error":
                if st is not None and "busy" in ready.get("message", ""):
                    st.rejected += 1
                    return None
                raise RuntimeError(ready.get("message"))
            counts = dict.fromkeys(expected, 0)
            names = [h["name"] for h in ready["heads"]]
            done: dict[str, Any] = {}

            async def receive() -> None:
                async for msg in ws:
                    if isinstance(msg, bytes):
                        i, start, f = protocol.unpack_frames(msg)
                        if start != counts[names[i]]:
                            raise RuntimeError(f"gap in {names[i]}: start {start}")
                        counts[names[i]] += len(f)
                        marks.setdefault("first_frame", time.perf_counter())
                    else:
                        m = json.loads(msg)
                        if m["type"] == "done":
                            done.update(m)
                        elif m["type"] == "error":
                            raise RuntimeError(m["message"])

            rx = asyncio.create_task(receive())
            step = int(chunk_s * SAMPLE_RATE) * 2
            need = int((lookahead + 0.05) * SAMPLE_RATE) * 2  # frame 0 ready past this byte
            start = time.perf_counter()
            for i in range(0, len(pcm), step):
                if pace:  # real time: chunk k leaves at k * chunk_s
                    await asyncio.sleep(
                        max(0.0, start + (i // step) * chunk_s - time.perf_counter())
                    )
                await ws.send(pcm[i : i + step])
                marks.setdefault("first_chunk", time.perf_counter())
                if i + step >= need:
                    marks.setdefault("lookahead_filled", time.perf_counter())
            await ws.send(json.dumps({"type": "end"}))
            await asyncio.wait_for(rx, 120)
        if done.get("frames") != expected or counts != expected:
            raise RuntimeError(f"frame counts {counts} / done {done.get('frames')} != {expected}")
        if st is not None:
            st.latencies.append(time.perf_counter() - t0)
            st.ok += 1
        return marks
    except Exception as e:  # noqa: BLE001
        if st is None:
            raise
        if _closed_busy(e):  # the server said "full, try later": a refusal, not an error
            st.rejected += 1
            return None
        st.errors += 1
        st.messages.append(f"stream: {type(e).__name__}: {e}")
        return None


def _closed_busy(e: BaseException) -> bool:
    """Whether ``e`` is the server closing the WebSocket with 1013 (try again later).

    The server may close before the client's header is even sent, so the refusal can
    surface on send or on receive, as a ConnectionClosed carrying the close frame.
    """
    from unitalker.serve import protocol

    rcvd = getattr(e, "rcvd", None)
    return rcvd is not None and getattr(rcvd, "code", None) == protocol.CLOSE_TRY_LATER


async def _run(
    url: str,
    wav: np.ndarray,
    clients: int,
    requests: int,
    duration: float,
    mode: str,
    heads: list[str] | None,
    latency_runs: int,
    lookahead: float,
) -> LoadReport:
    import io

    import httpx
    import soundfile as sf

    ws_url = "ws" + url[len("http") :]
    async with httpx.AsyncClient(base_url=url, timeout=120) as client:
        info = (await client.get("/v1/models")).raise_for_status().json()["models"][0]
        fps = {h["name"]: h["fps"] for h in info["heads"]}
        heads = heads or list(fps)
        unknown = [h for h in heads if h not in fps]
        if unknown:
            raise ValueError(f"the server has no heads {unknown}; it has {list(fps)}")
        expected = {h: frame_count(len(wav), fps[h]) for h in heads}
        buf = io.BytesIO()
        sf.write(buf, np.clip(wav, -1, 1), SAMPLE_RATE, format="WAV", subtype="PCM_16")
        clip = buf.getvalue()
        pcm = _pcm16(wav)

        # Streaming latency first, on an idle server.
        ff: dict[str, Any] = {}
        firsts, procs = [], []
        for _ in range(latency_runs):
            marks = await _stream_once(
                ws_url, pcm, expected, None, chunk_s=0.02, pace=True, lookahead=lookahead
            )
            if marks and "first_frame" in marks:
                firsts.append(marks["first_frame"] - marks["first_chunk"])
                procs.append(max(0.0, marks["first_frame"] - marks["lookahead_filled"]))
        if firsts:
            ff = {
                "runs": len(firsts),
                "lookahead": lookahead,
                "first_frame_ms": 1000 * statistics.median(firsts),
                "processing_ms": 1000 * statistics.median(procs),
                "all_first_frame_ms": [round(1000 * x, 1) for x in firsts],
            }

        stats = {"animate": KindStats(), "stream": KindStats()}
        deadline = time.perf_counter() + duration

        async def one_client(c: int) -> None:
            for i in range(requests):
                if time.perf_counter() > deadline:
                    return
                kind = mode if mode != "mixed" else ("animate", "stream")[(i + c) % 2]
                if kind == "animate":
                    await _animate_once(client, clip, expected, stats["animate"])
                else:
                    await _stream_once(ws_url, pcm, expected, stats["stream"])

        t0 = time.perf_counter()
        await asyncio.gather(*(one_client(c) for c in range(clients)))
        wall = time.perf_counter() - t0
    kinds = {k: s.summary(wall) for k, s in stats.items() if s.sent}
    return LoadReport(clients, requests, len(wav) / SAMPLE_RATE, wall, kinds, ff)


def synthetic_clip(seconds: float, seed: int = 0) -> np.ndarray:
    """A speech-like test signal (modulated chirp + noise) at 16 kHz."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    env = 0.5 + 0.5 * np.sin(2 * np.pi * 3 * t)
    wav = 0.3 * env * np.sin(2 * np.pi * (150 + 100 * np.sin(2 * np.pi * 0.7 * t)) * t)
    return (wav + 0.02 * rng.standard_normal(t.size)).astype(np.float32)


def run_loadtest(
    url: str,
    wav: np.ndarray,
    *,
    clients: int = 4,
    requests: int = 8,
    duration: float = 60.0,
    mode: str = "mixed",
    heads: list[str] | None = None,
    latency_runs: int = 3,
    lookahead: float = 0.2,
) -> LoadReport:
    """Run the load test against a server at ``url`` (``http://127.0.0.1:PORT``).

    Args:
        url: the server's base URL.
        wav: the clip, float32 ``[S]`` at 16 kHz.
        clients: concurrent clients (at most 256).
        requests: requests per client (at most 10000).
        duration: stop issuing new requests after this many seconds.
        mode: ``mixed``, ``animate`` or ``stream``.
        heads: heads to request (default: all of the server's).
        latency_runs: real-time streams for the first-frame latency (0: skip).
        lookahead: look-ahead of those streams.
    """
    if mode not in ("mixed", "animate", "stream"):
        raise ValueError(f"mode must be mixed, animate or stream, got {mode!r}")
    if not 1 <= clients <= 256 or not 1 <= requests <= 10000 or duration <= 0:
        raise ValueError("need 1 <= clients <= 256, 1 <= requests <= 10000, duration > 0")
    return asyncio.run(
        _run(url, wav, clients, requests, duration, mode, heads, latency_runs, lookahead)
    )


@contextlib.contextmanager
def background_server(app: Any, host: str = "127.0.0.1") -> Iterator[str]:
    """Serve ``app`` with uvicorn in a thread on a free port; yields the base URL."""
    import uvicorn

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, log_level="warning", ws="websockets-sansio", lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            sock.close()
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.02)
    try:
        yield f"http://{host}:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()

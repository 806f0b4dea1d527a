"""``unitalker stream``: PCM16 mono 16 kHz (stdin or a file) in, frames as JSON lines out.

Each output line is one frame of one head::

    {"head": "3DETF_blendshape_weight", "frame": 12, "time": 0.4, "data": [..]}

and a last line ``{"event": "end", "frames": {head: count}, "latency_ms": {...}}``.

With ``--livelink HOST:PORT`` the ARKit head's frames are also sent, as they are
produced, as Live Link Face UDP packets (Unreal's Live Link, see docs/livelink.md);
``--format none`` then keeps stdout to the last line.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

import numpy as np

from unitalker.commands._args import Number

# The WebSocket protocol allows the same look-ahead (unitalker.serve.protocol).
LOOKAHEAD = Number(float, 0, 5)
CONTEXT = Number(float, 0, 60)
CHUNK = Number(float, 1 / 16000, 10)  # at least one sample


def add_parser(sub: Any) -> None:
    p = sub.add_parser("stream", help="stream audio in, animation frames out as JSON lines")
    p.add_argument(
        "source",
        nargs="?",
        default="-",
        help="audio file, or '-' for raw PCM16 mono 16 kHz on stdin (default)",
    )
    p.add_argument(
        "-m",
        "--model",
        default=None,
        help="bundled model name, checkpoint or hub id OWNER/NAME (default: bundled default)",
    )
    p.add_argument("--heads", default=None, help="comma-separated heads (default: all)")
    p.add_argument("--identity", default=None)
    p.add_argument(
        "--lookahead",
        type=LOOKAHEAD,
        default=0.2,
        help="seconds of audio after a frame before it is sent (%(type)s; default 0.2; "
        "--lookahead 0.15 --chunk 0.08 keeps the default model within 250 ms of latency "
        "and 10 %% of its offline lip error, docs/benchmarks.md)",
    )
    p.add_argument(
        "--context",
        type=CONTEXT,
        default=2.0,
        help="seconds of past audio re-run with each window (%(type)s; default 2)",
    )
    p.add_argument(
        "--chunk",
        type=CHUNK,
        default=0.1,
        help="seconds of audio per step (%(type)s; default 0.1)",
    )
    p.add_argument(
        "--realtime", action="store_true", help="pace a file at real time (as a live source)"
    )
    p.add_argument(
        "--format",
        choices=("jsonl", "none"),
        default="jsonl",
        help="frames on stdout as JSON lines (default), or none (only the end line)",
    )
    p.add_argument(
        "--livelink",
        metavar="HOST:PORT",
        default=None,
        help="also send the ARKit head as Live Link Face UDP packets to Unreal "
        "(its Live Link Face source listens on port 11111)",
    )
    p.add_argument(
        "--livelink-subject", default="unitalker", help="Live Link subject name (default unitalker)"
    )
    p.add_argument(
        "--livelink-head",
        default=None,
        help="head sent over Live Link (default: the first with ARKit channels)",
    )
    p.add_argument("--precision", choices=("fp32", "bf16"), default="fp32")
    p.add_argument("--device", default=None)
    p.set_defaults(func=run)


def _chunks_from_stdin(n: int):
    from unitalker.audio import pcm16_to_float

    raw = sys.stdin.buffer
    pending = b""
    while True:
        data = raw.read(2 * n - len(pending))
        if not data:
            break
        pending += data
        if len(pending) >= 2 * n:
            yield pcm16_to_float(pending[: 2 * n])
            pending = pending[2 * n :]
    if len(pending) >= 2:
        pending = pending[: len(pending) // 2 * 2]
        yield pcm16_to_float(pending)


def _chunks_from_file(path: str, n: int):
    from unitalker.audio import load_audio

    wav = load_audio(path)
    for i in range(0, len(wav), n):
        yield wav[i : i + n]


def run(args: argparse.Namespace) -> int:
    from unitalker.audio import SAMPLE_RATE
    from unitalker.inference.streaming import Streamer
    from unitalker.models.checkpoint import load_model

    model = load_model(args.model, device=args.device)
    heads = [h.strip() for h in args.heads.split(",") if h.strip()] if args.heads else None
    streamer = Streamer(
        model,
        heads=heads,
        identity=args.identity,
        lookahead=args.lookahead,
        context=args.context,
        precision=args.precision,
    )
    # after the Streamer, which has checked the heads
    sender = _livelink_sender(args, streamer.heads) if args.livelink else None
    n = max(1, int(args.chunk * SAMPLE_RATE))
    source = _chunks_from_stdin(n) if args.source == "-" else _chunks_from_file(args.source, n)
    out = sys.stdout
    t0 = time.perf_counter()
    fed = 0
    latencies: list[float] = []  # arrival of the audio a frame needs -> frame written

    def emit(frames: dict[str, np.ndarray], start: dict[str, int], now_audio: float) -> None:
        if sender is not None and len(frames.get(sender.head, ())):
            sender.send(frames[sender.head], start[sender.head])
        if args.format == "none":
            return
        for h, arr in frames.items():
            fps = streamer.fps[h]
            for j, row in enumerate(arr):
                k = start[h] + j
                out.write(
                    json.dumps(
                        {
                            "head": h,
                            "frame": k,
                            "time": round(k / fps, 4),
                            "data": [round(float(v), 6) for v in row],
                        }
                    )
                    + "\n"
                )
        out.flush()

    try:
        for chunk in source:
            if args.realtime:  # pace: this chunk may only be read when its audio has "arrived"
                due = t0 + (fed + len(chunk)) / SAMPLE_RATE
                time.sleep(max(0.0, due - time.perf_counter()))
            fed += len(chunk)
            before = streamer.emitted
            arrived = time.perf_counter()
            frames = streamer.push(chunk)
            if any(len(v) for v in frames.values()):
                latencies.append(time.perf_counter() - arrived + args.lookahead)
            emit(frames, before, fed / SAMPLE_RATE)
        before = streamer.emitted
        emit(streamer.flush(), before, fed / SAMPLE_RATE)
    finally:
        if sender is not None:
            sender.close()
    lat = np.array(latencies) * 1000 if latencies else np.zeros(1)
    out.write(
        json.dumps(
            {
                "event": "end",
                "frames": streamer.emitted,
                "seconds": round(fed / SAMPLE_RATE, 3),
                "latency_ms": {
                    "median": round(float(np.median(lat)), 1),
                    "p95": round(float(np.percentile(lat, 95)), 1),
                    "lookahead": args.lookahead * 1000,
                    "chunk": args.chunk * 1000,
                },
            }
            | ({"livelink": {"head": sender.head, "packets": sender.sent}} if sender else {})
        )
        + "\n"
    )
    return 0


def _livelink_sender(args: argparse.Namespace, heads: list[str]) -> Any:
    from unitalker.cli import CLIError
    from unitalker.export.livelink_udp import (
        LiveLinkError,
        LiveLinkSender,
        arkit_heads,
        parse_address,
    )

    try:
        host, port = parse_address(args.livelink)
        candidates = arkit_heads(heads)
        head = args.livelink_head or (candidates[0] if candidates else None)
        if head is None:
            raise LiveLinkError(
                f"--livelink sends ARKit weights; none of the heads has ARKit channels ({', '.join(heads)})"
            )
        if head not in heads:
            raise LiveLinkError(
                f"--livelink-head {head!r} is not streamed; heads: {', '.join(heads)}"
            )
        # A file read faster than real time is paced to the frame clock, so Unreal plays it
        # at speed; a live source (stdin, --realtime) is never held back by it.
        pace = args.source != "-" and not args.realtime
        return LiveLinkSender(host, port, head, subject=args.livelink_subject, pace=pace)
    except LiveLinkError as e:
        raise CLIError(str(e)) from e

"""``unitalker bench``: speed of every inference path, memory, streaming latency, render fps."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from unitalker.commands._args import COUNT, Number


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "bench", help="measure inference speed, memory, streaming latency and render fps"
    )
    p.add_argument(
        "--size",
        choices=("B", "tiny"),
        default="B",
        help="B: UniTalker-B architecture with random weights (default); tiny: a smoke test",
    )
    p.add_argument(
        "--seconds",
        type=Number(float, 0.5, 3600),
        default=10.0,
        help="clip length for the speed table (%(type)s; default 10)",
    )
    p.add_argument("--repeats", type=COUNT, default=3, help="timed runs (%(type)s; default 3)")
    p.add_argument(
        "--quick",
        action="store_true",
        help="one repeat, short memory runs (10 s, 60 s), one look-ahead, no 10-minute run",
    )
    p.add_argument(
        "--skip",
        default="",
        help="comma-separated parts to skip: per_head, one_pass, onnx, bf16, memory, streaming, render",
    )
    p.add_argument(
        "--threads", type=COUNT, default=None, help="torch / onnxruntime threads (%(type)s)"
    )
    p.add_argument(
        "--device", default="cpu", help="torch device of the speed runs: cpu (default), cuda, auto"
    )
    p.add_argument(
        "--compile",
        action="store_true",
        help="also time bf16 + torch.compile (inductor; compiling takes minutes on a CPU)",
    )
    p.add_argument(
        "--synth-data",
        default=None,
        help="A2F-Synth release folder (scripts/prepare_synth.sh): the default model's LVE "
        "on its test split, streamed and offline",
    )
    p.add_argument(
        "--stream-model",
        default=None,
        metavar="MODEL",
        help="model of the default-model streaming rows (a folder or hub name; default: "
        "the bundled default model)",
    )
    p.add_argument(
        "--stream-windowed",
        action="store_true",
        help="stream that model with its encoder's stream_window (a model trained with "
        "data.augment.p_stream_window; default: full attention)",
    )
    p.add_argument(
        "--stream-settings",
        type=_stream_settings,
        default=None,
        metavar="LA:CHUNK,...",
        help="look-ahead:chunk seconds of each default-model stream (default: "
        "0.1:0.05,0.15:0.05,0.15:0.08)",
    )
    p.add_argument(
        "--max-sequences",
        type=COUNT,
        default=None,
        help="at most N test sequences per dataset (%(type)s)",
    )
    p.add_argument(
        "--memory",
        default=None,
        help="comma-separated audio lengths in seconds for the memory runs (default 60,600; "
        "--quick: 10,60)",
    )
    p.add_argument(
        "--train-data",
        metavar="DIR",
        default=None,
        help="also measure training throughput (clips/s of batch size 1 vs bucketed batches, "
        "interleaved) on this manifest / release folder",
    )
    p.add_argument(
        "--train-config",
        metavar="YAML",
        default="configs/default.yaml",
        help="the training config measured with --train-data (default configs/default.yaml)",
    )
    p.add_argument(
        "--train-set",
        dest="train_overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override the training config, e.g. --train-set data.fraction=0.2 (repeatable)",
    )
    p.add_argument(
        "--train-only", action="store_true", help="only the training throughput (--train-data)"
    )
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    if args.train_only and not args.train_data:
        from unitalker.cli import CLIError

        raise CLIError("--train-only needs --train-data DIR")
    train = _train_throughput(args) if args.train_data else None
    if args.train_only:
        print(json.dumps(train.to_dict(), indent=2) if args.json else train.table())
        return 0
    from unitalker.inference.bench import DEFAULT_STREAMS, run_bench

    skip = {s.strip() for s in args.skip.split(",") if s.strip()}
    from unitalker.device import resolve_device

    resolve_device(args.device)  # a clear error before minutes of work
    names = ("per_head", "one_pass", "bf16", "onnx") + (("compile",) if args.compile else ())
    paths = tuple(p for p in names if p not in skip)
    memory = () if "memory" in skip else ((10.0, 60.0) if args.quick else (60.0, 600.0))
    if args.memory and "memory" not in skip:
        memory = tuple(float(x) for x in args.memory.split(",") if x.strip())
    lookaheads = () if "streaming" in skip else ((0.2,) if args.quick else (0.08, 0.2, 0.5))
    report = run_bench(
        args.size,
        args.seconds,
        repeats=1 if args.quick else args.repeats,
        paths=paths,
        memory_seconds=memory,
        lookaheads=lookaheads,
        stream_seconds=4.0 if args.quick else 8.0,
        render="render" not in skip,
        default_streams=() if "streaming" in skip else (args.stream_settings or DEFAULT_STREAMS),
        synth_data=args.synth_data,
        max_sequences=args.max_sequences,
        device=args.device,
        stream_model=args.stream_model,
        stream_windowed=args.stream_windowed,
        progress=lambda msg: print(f"... {msg}", file=sys.stderr, flush=True),
    )
    if args.json:
        doc = json.loads(report.to_json())
        print(json.dumps({**doc, "training": train.to_dict()} if train else doc, indent=2))
    else:
        print(report.table() + ("\n\n" + train.table() if train else ""))
    return 0


def _stream_settings(text: str) -> tuple[tuple[float, float], ...]:
    """``"0.1:0.05,0.15:0.08"`` -> ``((0.1, 0.05), (0.15, 0.08))`` (look-ahead, chunk)."""
    out = []
    for part in text.split(","):
        la, sep, chunk = part.strip().partition(":")
        try:
            pair = (float(la), float(chunk))
        except ValueError:
            pair = None
        if not sep or pair is None or pair[0] < 0 or pair[1] <= 0:
            raise argparse.ArgumentTypeError(
                f"{part.strip()!r}: expected LOOKAHEAD:CHUNK in seconds (look-ahead >= 0, "
                "chunk > 0), e.g. 0.15:0.08"
            )
        out.append(pair)
    return tuple(out)


def _train_throughput(args: argparse.Namespace) -> Any:
    from pathlib import Path

    from unitalker.cli import CLIError
    from unitalker.config import ConfigError
    from unitalker.training.builders import TrainSetupError
    from unitalker.training.throughput import measure_training_throughput

    if not Path(args.train_data).exists():
        raise CLIError(f"--train-data {args.train_data}: no such folder or file")
    if not Path(args.train_config).exists():
        raise CLIError(f"--train-config {args.train_config}: no such file")
    try:
        return measure_training_throughput(
            args.train_data,
            args.train_config,
            overrides=tuple(args.train_overrides),
            rounds=1 if args.quick else args.repeats,
            progress=lambda msg: print(f"... {msg}", file=sys.stderr, flush=True),
        )
    except (ConfigError, TrainSetupError) as e:
        raise CLIError(f"training throughput: {e}") from None

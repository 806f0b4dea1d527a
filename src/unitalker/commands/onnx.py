"""``unitalker export onnx``: the whole one-pass model as one ONNX graph."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from unitalker.commands._args import Number


def add_parser(sub: Any) -> None:
    p = sub.add_parser("export", help="export a model for other runtimes (onnx)")
    targets = p.add_subparsers(dest="target", metavar="TARGET", required=True)
    o = targets.add_parser(
        "onnx",
        help="audio [1, S] (16 kHz, any length) + identity [1] -> one output per head",
    )
    o.add_argument(
        "model",
        nargs="?",
        default=None,
        help="bundled name or checkpoint (default: the bundled default)",
    )
    o.add_argument("-o", "--output", type=Path, required=True, help="the .onnx file to write")
    o.add_argument("--heads", default=None, help="comma-separated heads (default: all)")
    o.add_argument(
        "--opset", type=Number(int, 14, 21), default=17, help="ONNX opset (%(type)s; default 17)"
    )
    o.add_argument(
        "--no-check", action="store_true", help="skip the comparison with the torch model"
    )
    o.add_argument("--overwrite", action="store_true")
    o.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import numpy as np
    import torch

    from unitalker.cli import CLIError
    from unitalker.inference.onnx import OnnxUniTalker, export_onnx
    from unitalker.models.checkpoint import load_model

    if args.output.suffix != ".onnx":
        raise CLIError(f"{args.output}: the output should end in .onnx")
    model = load_model(args.model, device="cpu")
    heads = [h.strip() for h in args.heads.split(",") if h.strip()] if args.heads else None
    path = export_onnx(model, args.output, heads=heads, opset=args.opset, overwrite=args.overwrite)
    print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB)")
    if not args.no_check:
        runner = OnnxUniTalker(path)
        audio = torch.from_numpy(
            np.random.default_rng(0).standard_normal((1, 3 * 16000 + 123)).astype(np.float32) * 0.1
        )
        with torch.no_grad():
            ref = model(audio, heads=runner.heads)
        got = runner(audio)
        err = max(float((ref[h].motion - got[h].motion).abs().max()) for h in runner.heads)
        print(f"check on 3 s of noise: max abs difference to torch fp32 = {err:.2e}")
    return 0

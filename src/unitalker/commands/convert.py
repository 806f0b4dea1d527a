"""``unitalker convert-checkpoint``: an original release ``.pt`` -> our checkpoint folder."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "convert-checkpoint",
        help="convert an original UniTalker .pt (with its data release) to a unitalker checkpoint",
    )
    p.add_argument("checkpoint", type=Path, help="UniTalker-B-D0-D7.pt or UniTalker-L-D0-D7.pt")
    p.add_argument(
        "--data-root",
        type=Path,
        default=None,
        help="unitalker_data_release_V1 folder (pca.npz, id_template.npy)",
    )
    p.add_argument(
        "--encoder",
        default="microsoft/wavlm-base-plus",
        help="hub id or local folder of the encoder (architecture only); default: microsoft/wavlm-base-plus",
    )
    p.add_argument(
        "--encoder-family",
        default=None,
        choices=("wavlm", "wav2vec2", "hubert"),
        help="when it cannot be inferred from --encoder",
    )
    p.add_argument("-o", "--output", type=Path, required=True, help="output checkpoint folder")
    p.add_argument(
        "--overwrite", action="store_true", help="replace a checkpoint in a non-empty folder"
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from unitalker.cli import CLIError
    from unitalker.models.checkpoint import convert_original

    if args.output.exists() and not args.output.is_dir():
        raise CLIError(f"{args.output} exists and is a file")
    out = convert_original(
        args.checkpoint,
        args.output,
        args.data_root,
        args.encoder,
        encoder_family=args.encoder_family,
        overwrite=args.overwrite,
    )
    print(f"wrote {out}")
    return 0

"""``unitalker models``: list the bundled models with their heads and identity counts."""

from __future__ import annotations

import argparse
from typing import Any


def add_parser(sub: Any) -> None:
    p = sub.add_parser("models", help="list bundled models (heads, identities)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import json

    from unitalker.models.checkpoint import DEFAULT_MODEL, MODELS_DIR, available_models, load_model

    rows = []
    for name in available_models():
        m = load_model(name, device="cpu")
        d = m.describe()
        rows.append({"name": name, "default": name == DEFAULT_MODEL, **d})
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    if not rows:
        print(f"no bundled models (looked in {MODELS_DIR}); pass -m CHECKPOINT to animate")
        return 0
    for r in rows:
        star = " (default)" if r["default"] else ""
        print(
            f"{r['name']}{star}: encoder {r['encoder']}, decoder {r['decoder']}, "
            f"{r['n_identities']} identities, {r['parameters'] / 1e6:.1f} M parameters"
        )
        for h, info in r["heads"].items():
            print(f"  {h:32s} {info['dim']:6d} channels @ {info['fps']:g} fps")
    return 0

"""How well a model's viseme classifier (``model.visemes``) hears the mouth's class, per
TTS engine: frame accuracy against the A2F-Synth timelines, pooled per split and engine
of the clip (``engine`` in its ``_timelines`` file), with the recall of the bilabials
(``PP``) and of open vowels (``aa``), the classes that carry most of the held-out
engine's error (docs/a2f-synth.md).

Usage: python scripts/viseme_accuracy.py MODEL [DATA_RELEASE] [--splits ...] [--datasets ...]
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model", help="checkpoint folder or bundled model name")
    ap.add_argument("release", nargs="?", default="data/a2f_synth_release")
    ap.add_argument(
        "--splits", nargs="+", default=["train", "test", "test_unseen_voice", "test_unseen_engine"]
    )
    ap.add_argument("--datasets", nargs="+", default=["V0", "V1", "V2", "V3"])
    ap.add_argument("--train-max", type=int, default=20, help="training clips per dataset")
    args = ap.parse_args()

    import torch

    from unitalker.data import ClipDataset, load_manifest
    from unitalker.data.visemes import IGNORE, timeline_path
    from unitalker.models.checkpoint import load_model
    from unitalker.models.unitalker import VISEME_OUTPUT

    model = load_model(args.model, "cpu")
    if not model.config.visemes:
        raise SystemExit(f"{args.model}: the model has no viseme classifier")
    names = list(model.config.visemes)
    pp, aa = names.index("PP"), names.index("aa")
    m = load_manifest(args.release)
    pooled: dict[tuple[str, str], list[np.ndarray]] = defaultdict(list)  # [2, T] label, pred
    for split in args.splits:
        if not m.has_split(split):
            continue
        for key in args.datasets:
            try:
                ds = ClipDataset(
                    m, split, max_seconds=None, min_seconds=0.0, datasets=(key,), visemes=True
                )
            except ValueError:
                continue
            n = len(ds) if split != "train" else min(len(ds), args.train_max)
            print(f"{split} {key}: {n} clips ...", file=sys.stderr, flush=True)
            for i in range(n):
                item = ds[i]
                tl = timeline_path(ds.entries[i].audio_path, key)
                engine = json.loads(tl.read_text()).get("engine", "?") if tl else "?"
                with torch.no_grad():
                    out = model(
                        torch.from_numpy(item["audio"])[None],
                        heads=[item["convention"]],
                        frames={item["convention"]: [len(item["motion"])]},
                        visemes=True,
                    )
                pred = out[VISEME_OUTPUT].motion[0].argmax(-1).numpy()
                lab = item["visemes"]
                ok = lab != IGNORE
                pooled[(split, engine)].append(np.stack([lab[ok], pred[ok]]))
    if not pooled:
        raise SystemExit(f"{args.release}: no timed clips of {args.datasets} in {args.splits}")
    print("| split | engine | frames | accuracy | PP recall | aa recall | silence-free accuracy |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: |")
    for (split, engine), parts in sorted(pooled.items()):
        lab, pred = np.concatenate(parts, axis=1)
        speech = lab != names.index("sil")
        print(
            f"| {split} | {engine} | {len(lab)} | {np.mean(lab == pred):.0%} | "
            f"{np.mean(pred[lab == pp] == pp):.0%} | {np.mean(pred[lab == aa] == aa):.0%} | "
            f"{np.mean(lab[speech] == pred[speech]):.0%} |"
        )


if __name__ == "__main__":
    main()

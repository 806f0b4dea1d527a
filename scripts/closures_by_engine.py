"""Bilabial closures of a model per TTS engine on the A2F-Synth voices datasets.

Like ``unitalker evaluate MODEL DATA --closures`` (the same rule: the smallest lip
opening inside a /p/, /b/ or /m/ within 0.1 of the open range), but pooled per engine of
the clip (``engine`` in its ``_timelines`` file) over V0-V3, for each split, the
training split included (``--train-max`` clips per dataset).

Usage: python scripts/closures_by_engine.py MODEL [DATA_RELEASE] [--splits train test ...]
"""

from __future__ import annotations

import argparse
import json

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model", help="checkpoint folder or bundled model name")
    ap.add_argument("release", nargs="?", default="data/a2f_synth_release")
    ap.add_argument("--splits", nargs="+", default=["train", "test", "test_unseen_voice"])
    ap.add_argument("--datasets", nargs="+", default=["V0", "V1", "V2", "V3"])
    ap.add_argument("--train-max", type=int, default=40, help="training clips per dataset")
    args = ap.parse_args()

    from unitalker.data import load_manifest
    from unitalker.data.visemes import timeline_path
    from unitalker.evaluation.closures import CLOSURE_TOL, bilabial_intervals, closure_minima
    from unitalker.evaluation.evaluate import evaluate
    from unitalker.evaluation.voices import mouth_gauge, mouth_opening
    from unitalker.models.checkpoint import load_model

    model = load_model(args.model, "cpu")
    m = load_manifest(args.release)
    pooled: dict[tuple[str, str], tuple[list[float], list[float]]] = {}
    gauges: dict = {}  # convention -> its mouth gauge (renders a pose: once each)
    for split in args.splits:
        for key in args.datasets:
            paths = {e.name: e.audio_path for e in m.split(split).entries if e.dataset == key}
            _, kept = evaluate(
                model,
                m,
                split=split,
                datasets=(key,),
                keep_predictions=10**9,
                max_sequences=args.train_max if split == "train" else None,
            )
            for rec in kept:
                conv, item = rec["convention"], rec["item"]
                tl = timeline_path(paths[item["name"]], key)
                if tl is None:
                    continue
                doc = json.loads(tl.read_text())
                intervals = bilabial_intervals(doc["phonemes"])
                gauge = gauges.get(conv) or gauges.setdefault(conv, mouth_gauge(conv))
                fps = float(item["fps"])
                pm = closure_minima(mouth_opening(conv, rec["prediction"], gauge), fps, intervals)
                lm = closure_minima(
                    mouth_opening(conv, np.asarray(item["motion"]), gauge), fps, intervals
                )
                acc = pooled.setdefault((split, doc.get("engine", "?")), ([], []))
                acc[0].extend(pm[np.isfinite(pm)])
                acc[1].extend(lm[np.isfinite(lm)])
    print(
        "| split | engine | bilabials | closed (model) | closed (labels) | median opening (model) |"
    )
    print("| --- | --- | ---: | ---: | ---: | ---: |")
    for (split, engine), (pm, lm) in sorted(pooled.items()):
        p, q = np.asarray(pm), np.asarray(lm)
        print(
            f"| {split} | {engine} | {len(p)} | {np.mean(p <= CLOSURE_TOL):.0%} | "
            f"{np.mean(q <= CLOSURE_TOL):.0%} | {np.median(p):.2f} |"
        )


if __name__ == "__main__":
    main()

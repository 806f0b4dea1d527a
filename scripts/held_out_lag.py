"""How much of a model's error on a voices split is a constant time offset.

For each A2F-Synth voices dataset and split, shift the prediction by -4..+4 frames
against the labels and print LVE-all (max squared vertex error per frame, pooled) at each
shift relative to no shift. ``+1`` compares the prediction's frame ``t + 1`` with the
label's frame ``t``: a minimum there means the model moves one frame late.

Usage: python scripts/held_out_lag.py MODEL [DATA_RELEASE] [--splits test test_unseen_engine]
"""

from __future__ import annotations

import argparse

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model", help="checkpoint folder or bundled model name")
    ap.add_argument("release", nargs="?", default="data/a2f_synth_release")
    ap.add_argument("--splits", nargs="+", default=["test", "test_unseen_engine"])
    ap.add_argument("--datasets", nargs="+", default=["V0", "V1", "V2", "V3"])
    ap.add_argument("--max-lag", type=int, default=4)
    args = ap.parse_args()

    from unitalker.evaluation.evaluate import evaluate
    from unitalker.geometry import vertices
    from unitalker.models.checkpoint import load_model

    model = load_model(args.model, "cpu")
    lags = range(-args.max_lag, args.max_lag + 1)
    print("| split | dataset | " + " | ".join(f"{k:+d}" for k in lags) + " |")
    print("| --- | --- |" + " ---: |" * len(lags))
    for split in args.splits:
        for key in args.datasets:
            _, kept = evaluate(
                model, args.release, split=split, datasets=(key,), keep_predictions=10**9
            )
            sums = {k: [0.0, 0] for k in lags}
            for rec in kept:
                conv = rec["convention"]
                pred = vertices(conv, rec["prediction"])
                gt = vertices(conv, np.asarray(rec["item"]["motion"]))
                n = min(len(pred), len(gt))
                for k in lags:
                    a, b = (pred[k:n], gt[: n - k]) if k >= 0 else (pred[: n + k], gt[-k:n])
                    err = ((a - b) ** 2).sum(-1).max(-1)
                    sums[k][0] += float(err.sum())
                    sums[k][1] += len(err)
            base = sums[0][0] / sums[0][1]
            cells = " | ".join(f"{sums[k][0] / sums[k][1] / base:.2f}" for k in lags)
            print(f"| {split} | {key} | {cells} |")


if __name__ == "__main__":
    main()

"""What the words buy: bilabial closures and lip error of a model with and without its
clips' words (``unitalker animate --text``, :mod:`unitalker.inference.transcript`).

On each split of A2F-Synth's voices datasets (seen voices, unseen voices, the held-out
engine), every clip is run as ``unitalker evaluate`` runs it (its subject's identity and
template); then the clip's words are force-aligned to its audio with PocketSphinx, as the
CLI does, and the mouth is closed on the aligned bilabials. Both outputs are scored
against the clip's own labels and its own phone timeline (the engine's timing, which the
alignment never sees): the share of /p/ /b/ /m/ whose lips close (smallest opening
<= 0.1 of the open range, as ``evaluate --closures``) and LVE / static. Clips whose words
PocketSphinx cannot align are counted and left out of both columns.

Usage: python scripts/transcript_closures.py [MODEL] [--release data/a2f_synth_release]
       [--max-sequences N]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model", nargs="?", default="default")
    ap.add_argument("--release", default="data/a2f_synth_release", type=Path)
    ap.add_argument("--max-sequences", type=int, default=None)
    ap.add_argument("--datasets", nargs="+", default=["V0", "V1", "V2", "V3"])
    args = ap.parse_args()

    from unitalker.animation import Animation
    from unitalker.audio import load_audio
    from unitalker.data import load_manifest
    from unitalker.data.visemes import timeline_path
    from unitalker.evaluation.closures import CLOSURE_TOL, bilabial_intervals, closure_minima
    from unitalker.evaluation.evaluate import evaluate
    from unitalker.evaluation.metrics import score_sequence
    from unitalker.evaluation.voices import _region, mouth_opening
    from unitalker.geometry import vertices as to_vertices
    from unitalker.inference.transcript import TranscriptError, close_bilabials, timeline
    from unitalker.models.checkpoint import load_model

    model = load_model(args.model, device="cpu")
    manifest = load_manifest(args.release)
    print(f"model {args.model}; closed = smallest opening in the bilabial <= {CLOSURE_TOL:g}")
    print(
        "| split | dataset | clips (not aligned) | closed, no words | closed, words | "
        "LVE / static, no words | LVE / static, words |"
    )
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: |")
    for split in ("test", "test_unseen_voice", "test_unseen_engine"):
        entries = {(e.dataset, e.name): e for e in manifest.split(split).entries}
        for key in args.datasets:
            _, kept = evaluate(
                model,
                manifest,
                split=split,
                datasets=(key,),
                max_sequences=args.max_sequences,
                keep_predictions=10**9,
            )
            raw, words, lve = [], [], np.zeros(3)
            failed = 0
            for k in kept:
                item, conv, pred = k["item"], k["convention"], k["prediction"]
                e = entries[(key, item["name"])]
                doc = json.loads(Path(timeline_path(e.audio_path, e.dataset)).read_text())
                try:
                    phones = timeline(load_audio(e.audio_path), doc["text"])
                except TranscriptError:
                    failed += 1
                    continue
                tpl = np.asarray(item["template"], np.float32)
                fps = float(item["fps"])
                new = close_bilabials({conv: Animation(conv, fps, pred)}, phones, {conv: tpl})
                fixed = new[conv].data
                truth = bilabial_intervals(doc["phonemes"])
                raw.append(closure_minima(mouth_opening(conv, pred), fps, truth))
                words.append(closure_minima(mouth_opening(conv, fixed), fps, truth))
                gt = np.asarray(item["motion"])
                pv, fv, gv = (to_vertices(conv, x) for x in (pred, fixed, gt))
                tv = to_vertices(conv, tpl[None])[0]
                lip = _region(conv, "lip")
                static = np.repeat(tv[None], len(gv), 0)
                lve += [
                    score_sequence(item["name"], x, gv, tv, lip, None).lve.sum()
                    for x in (pv, fv, static)
                ]
            r, w = np.concatenate(raw), np.concatenate(words)
            print(
                f"| {split} | {key} | {len(kept)} ({failed}) | "
                f"{100 * np.nanmean(r <= CLOSURE_TOL):.0f} % | "
                f"{100 * np.nanmean(w <= CLOSURE_TOL):.0f} % | "
                f"{lve[0] / lve[2]:.3f} | {lve[1] / lve[2]:.3f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()

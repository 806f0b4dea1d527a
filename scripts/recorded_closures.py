"""Whether a model's missed bilabial closures on recorded speech are a timing offset.

For each recorded set's clips (aligned by PocketSphinx), the smallest mouth opening of the
model inside every aligned /p/ /b/ /m/, with the intervals shifted by -3..+3 frames and
widened by 1 and 2 frames each side: the share closed (<= CLOSURE_TOL of the open range)
and the median smallest opening at each. A late or early model closes more at some shift;
one that stops short closes no more at any. Also prints the bilabials' durations.

Usage: python scripts/recorded_closures.py MODEL [--set pocketsphinx] [--head synth_arkit52]
"""

from __future__ import annotations

import argparse

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model", help="checkpoint folder or bundled model name")
    ap.add_argument("--set", dest="set_name", default="pocketsphinx", choices=("pocketsphinx",))
    ap.add_argument("--head", default="synth_arkit52")
    ap.add_argument("--max-shift", type=int, default=3)
    args = ap.parse_args()

    from unitalker import conventions
    from unitalker.audio import SAMPLE_RATE, load_audio
    from unitalker.evaluation.closures import CLOSURE_TOL, bilabial_intervals, closure_minima
    from unitalker.evaluation.voices import SPEECH_SETS, mouth_opening, predict_heads
    from unitalker.models.checkpoint import load_model
    from unitalker.synth.align import align

    clips = SPEECH_SETS[args.set_name].clips()
    if not clips:
        raise SystemExit(f"--set {args.set_name}: no recordings installed")
    model = load_model(args.model, "cpu")
    fps = conventions.get(args.head).fps
    shifts = range(-args.max_shift, args.max_shift + 1)
    cols: dict[str, list[float]] = {f"{k:+d}": [] for k in shifts} | {"±1": [], "±2": []}
    durations: list[float] = []
    for wav, words in clips:
        audio = load_audio(wav)
        tl = align(audio, SAMPLE_RATE, words)
        op = mouth_opening(args.head, predict_heads(model, audio, [args.head])[args.head])
        iv = bilabial_intervals(tl)
        durations += [e - s for s, e in iv]
        for k in shifts:
            moved = [(s + k / fps, e + k / fps) for s, e in iv]
            cols[f"{k:+d}"] += closure_minima(op, fps, moved).tolist()
        for w in (1, 2):
            wide = [(s - w / fps, e + w / fps) for s, e in iv]
            cols[f"±{w}"] += closure_minima(op, fps, wide).tolist()
    print(f"{len(durations)} bilabials in {len(clips)} clips, head {args.head}")
    print("| intervals (frames) | closed | median smallest opening |")
    print("| --- | ---: | ---: |")
    for name, v in cols.items():
        x = np.asarray(v, float)
        x = x[np.isfinite(x)]
        print(f"| {name} | {np.mean(x <= CLOSURE_TOL):.0%} | {np.median(x):.3f} |")
    d = 1000 * np.asarray(durations)
    print(
        f"bilabial durations: median {np.median(d):.0f} ms, "
        f"10-90 % {np.percentile(d, 10):.0f}-{np.percentile(d, 90):.0f} ms"
    )


if __name__ == "__main__":
    main()

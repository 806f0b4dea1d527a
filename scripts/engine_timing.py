"""Where each TTS engine's phone timeline sits against its sound, on the A2F-Synth voices
datasets: per clip, the shift of the stored timeline (5 ms steps; negative = the sound
comes before the labels) that best matches

* PocketSphinx's forced alignment of the same audio (viseme classes frame by frame,
  speech frames only), and
* the audio's loudness (the correlation of "a vowel is labelled here" with the level in
  dB over the speech frames),

pooled per engine (medians and quartiles of the per-clip shifts). The two are
independent of each other and of the engines; eSpeak NG's own timing is the reference
the default model's data share (S0-S5 are all eSpeak NG).

Usage: python scripts/engine_timing.py [VOICES_DIR] [--clips N] [--datasets V0 V2]
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

FPS = 200.0  # 5 ms frames
SHIFTS = range(-24, 13)  # x 5 ms
LAGS = range(-120, 65, 5)  # ms, the same span


def best_shift(score) -> int:  # noqa: ANN001 - a callable shift -> score
    values = {k: score(k) for k in SHIFTS}
    return int(5 * max(values, key=lambda k: np.nan_to_num(values[k], nan=-2.0)))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("voices", nargs="?", default="data/a2f_synth_voices")
    ap.add_argument("--clips", type=int, default=24, help="clips per engine")
    ap.add_argument("--datasets", nargs="+", default=["V0", "V2"])
    args = ap.parse_args()

    from unitalker.audio import load_audio
    from unitalker.data.visemes import frame_visemes
    from unitalker.evaluation.voices import timeline_lag_ms
    from unitalker.synth.align import AlignmentError, align
    from unitalker.synth.voices import voice_dataset

    root = Path(args.voices)
    aligned: dict[str, list[int]] = defaultdict(list)
    loud: dict[str, list[int]] = defaultdict(list)
    for key in args.datasets:
        folder = root / voice_dataset(key).folder
        paths = sorted((root / "_timelines" / key).glob("*.json"))
        if not paths:
            raise SystemExit(f"{root}: no timelines of {key} (_timelines/{key}/*.json)")
        print(f"{key}: aligning and measuring ...", file=sys.stderr, flush=True)
        for path in paths:
            doc = json.loads(path.read_text())
            engine = doc["engine"]
            if len(loud[engine]) >= args.clips:
                continue
            audio = load_audio(folder / doc["row"]["audio"])
            n = int(len(audio) / 16000 * FPS)
            lab = frame_visemes(doc["phonemes"], n, FPS)
            loud[engine].append(timeline_lag_ms(audio, 16000, doc["phonemes"], LAGS))
            try:
                ref = frame_visemes(align(audio, 16000, doc["text"]), n, FPS)
            except AlignmentError:  # PocketSphinx found none
                continue

            def by_alignment(k: int, lab=lab, ref=ref) -> float:
                shifted = np.roll(lab, k)
                m = (shifted != 0) & (ref != 0)
                return float(np.mean(shifted[m] == ref[m]))

            aligned[engine].append(best_shift(by_alignment))
    print(
        "| engine | clips | vs PocketSphinx: median (quartiles) | vs loudness: median (quartiles) |"
    )
    print("| --- | ---: | --- | --- |")
    for engine in sorted(loud):
        cells = []
        for v in (aligned[engine], loud[engine]):
            q = np.percentile(v, [25, 50, 75]) if v else [np.nan] * 3
            cells.append(f"{q[1]:.0f} ms ({q[0]:.0f} .. {q[2]:.0f})")
        print(f"| {engine} | {len(loud[engine])} | {cells[0]} | {cells[1]} |")


if __name__ == "__main__":
    main()

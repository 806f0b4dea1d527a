"""Where the audio of each /p/ after a vowel goes quiet, against its label's start, per
engine of an A2F-Synth voices folder.

A /p/ after a vowel is heard as the vowel's sound stopping: the lips close. For each such
/p/ this finds the steepest fall of the audio's level (10 ms RMS windows centred every 5 ms,
in dB) within 60 ms either side of the phone's labelled start, and prints, per engine, the
median and quartiles of (fall - start). Negative: the sound stops before the label says
the /p/ begins; positive: after it.

Usage: python scripts/closure_onsets.py [VOICES_DIR]   (default data/a2f_synth_voices)
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np


def level_db(x: np.ndarray, sr: int, hop_s: float = 0.005) -> np.ndarray:
    """dB of the RMS over 10 ms windows centred every ``hop_s``, relative to the loudest,
    floored at -60 (:func:`unitalker.evaluation.voices.loudness_db` at 1 / hop_s fps)."""
    from unitalker.evaluation.voices import loudness_db

    n = max(1, int(len(x) / sr / hop_s))
    return np.maximum(loudness_db(x, sr, 1.0 / hop_s, n, win_s=0.01), -60.0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("voices", nargs="?", default="data/a2f_synth_voices")
    args = ap.parse_args()

    import soundfile as sf

    from unitalker.synth.articulation import phoneme_to_viseme

    root, hop = Path(args.voices), 0.005
    offsets: dict[str, list[float]] = {}
    for tl in sorted(root.glob("_timelines/*/*.json")):
        doc = json.loads(tl.read_text())
        folder = next(root.glob(f"{tl.parent.name}_*"))
        x, sr = sf.read(folder / doc["row"]["audio"], dtype="float32")
        db = level_db(x, sr, hop)
        ph = doc["phonemes"]
        for k in range(1, len(ph)):
            p, s, _ = ph[k]
            prev = ph[k - 1][0]
            if p.strip("ˈˌː") != "p" or prev == "_":
                continue
            if phoneme_to_viseme(str(prev)) not in ("aa", "E", "ih", "oh", "ou"):
                continue
            a = max(0, int((s - 0.06) / hop))
            b = min(len(db) - 1, int((s + 0.06) / hop))
            if b - a < 2:
                continue
            j = int(np.argmin(np.diff(db[a : b + 1])))
            offsets.setdefault(doc["engine"], []).append(1000 * ((a + j + 1) * hop - s))
    print("| engine | /p/ after a vowel | fall - label start, median (ms) | quartiles (ms) |")
    print("| --- | ---: | ---: | --- |")
    for eng, v in sorted(offsets.items()):
        q1, q2, q3 = np.percentile(v, [25, 50, 75])
        print(f"| {eng} | {len(v)} | {q2:+.0f} | {q1:+.0f} .. {q3:+.0f} |")


if __name__ == "__main__":
    main()

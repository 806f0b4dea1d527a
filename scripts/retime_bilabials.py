"""Copy an A2F-Synth voices folder with the bilabials of its neural-engine training clips
re-timed to their acoustic closure, and relabel it (a pilot, docs/a2f-synth.md).

For each /p/, /b/, /m/ between two phones (not pauses) of a Kokoro or Piper clip of the
``train`` split, the closure is taken to start at the steepest fall of the audio's level
(10 ms RMS windows centred every 5 ms) from 60 ms before to 30 ms after the labelled start, and to
end at the steepest rise from 15 ms after that fall (or 40 ms before the labelled end) to
60 ms after the labelled end; the phone and its neighbours' boundaries move there when
the closure lasts 20-200 ms and both neighbours keep 10 ms. Test splits and the other
engines are left as they are. Then every annotation is recomputed from the timelines
(:func:`unitalker.synth.voices.relabel_voices`).

Usage: python scripts/retime_bilabials.py SRC_VOICES DST_VOICES [--preset large]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

import numpy as np

ENGINES = ("kokoro", "piper")


def retime(phones: list[list], db: np.ndarray, hop: float) -> tuple[list[list], list[tuple]]:
    """The timeline with its inner bilabials moved to the closure found in ``db``, and the
    ``(start shift, end shift)`` seconds of each moved one."""
    from unitalker.synth.articulation import phoneme_to_viseme

    ph = [list(p) for p in phones]
    shifts = []
    for k in range(1, len(ph) - 1):
        p, s, e = ph[k]
        if phoneme_to_viseme(str(p)) != "PP" or "_" in (ph[k - 1][0], ph[k + 1][0]):
            continue
        a, b = max(0, int((s - 0.06) / hop)), min(len(db) - 2, int((s + 0.03) / hop))
        if b - a < 2:
            continue
        fall = (a + int(np.argmin(np.diff(db[a : b + 1]))) + 1) * hop
        a2 = max(int((fall + 0.015) / hop), int((e - 0.04) / hop))
        b2 = min(len(db) - 2, int((e + 0.06) / hop))
        if b2 - a2 < 2:
            continue
        rise = (a2 + int(np.argmax(np.diff(db[a2 : b2 + 1]))) + 1) * hop
        if not 0.02 <= rise - fall <= 0.2:
            continue
        if fall <= ph[k - 1][1] + 0.01 or rise >= ph[k + 1][2] - 0.01:
            continue
        shifts.append((fall - s, rise - e))
        ph[k - 1][2], ph[k][1], ph[k][2], ph[k + 1][1] = fall, fall, rise, rise
    return ph, shifts


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("src", help="voices folder (unitalker synth voices -o)")
    ap.add_argument("dst", help="new folder to write (must not exist)")
    ap.add_argument("--preset", default="large", help="the preset SRC was made with")
    ap.add_argument("--seed", type=int, default=0, help="the seed SRC was made with")
    args = ap.parse_args()

    import soundfile as sf

    from unitalker.synth.voices import relabel_voices

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from closure_onsets import level_db

    src, dst, hop = Path(args.src), Path(args.dst), 0.005
    if dst.exists():
        sys.exit(f"{dst}: exists; give a new folder")
    print(f"copying {src} -> {dst} ...", flush=True)
    shutil.copytree(src, dst)
    print("re-timing the bilabials ...", flush=True)
    shifts: list[tuple] = []
    for tl in sorted(dst.glob("_timelines/*/*.json")):
        doc = json.loads(tl.read_text(encoding="utf-8"))
        if doc["split"] != "train" or doc["engine"] not in ENGINES:
            continue
        folder = next(dst.glob(f"{tl.parent.name}_*"))
        x, sr = sf.read(folder / doc["row"]["audio"], dtype="float32")
        doc["phonemes"], moved = retime(doc["phonemes"], level_db(x, sr, hop), hop)
        shifts += moved
        tl.write_text(json.dumps(doc), encoding="utf-8")
    print("relabelling every clip ...", flush=True)
    n = relabel_voices(dst, args.preset, args.seed)
    sh = 1000 * np.asarray(shifts).reshape(-1, 2)
    print(
        f"{len(sh)} bilabials re-timed; start moved {np.median(sh[:, 0]):+.0f} ms (median), "
        f"end {np.median(sh[:, 1]):+.0f} ms; {n} clips relabelled -> {dst}"
    )


if __name__ == "__main__":
    main()

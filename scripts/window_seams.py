#!/usr/bin/env python
"""Measure the long-audio seams of ``--windows ours`` against ``--windows original``.

Speech for ``--seconds`` is made by repeating ``examples/hello.wav`` with short pauses;
each layout is compared with one pass over the whole clip (no windows, the reference a
window-free model would give). Reported per head, in units of the head's motion range
(max - min over the whole-clip output, the largest channel):

* ``dev_all`` / ``dev_seam``: mean absolute deviation from the whole-clip output, over all
  frames / over the frames from each window start to 1 s after its overlap ends;
* ``max_dev``: the largest deviation anywhere;
* ``tail``: mean deviation over the last 5 s (where the original's short last window has
  the least context).

    PYTHONPATH=src python scripts/window_seams.py --seconds 47
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=47.0)
    ap.add_argument("-m", "--model", default=None, help="model (default: the bundled one)")
    args = ap.parse_args()

    from unitalker.audio import SAMPLE_RATE, load_audio
    from unitalker.inference.animate import aligned_window_starts, animate, demo_windows, frame_grid
    from unitalker.models.checkpoint import load_model

    model = load_model(args.model, device="cpu")
    hello = load_audio(Path(__file__).resolve().parent.parent / "examples" / "hello.wav")
    gap = np.zeros(int(0.4 * SAMPLE_RATE), np.float32)
    n = int(args.seconds * SAMPLE_RATE)
    wav = np.concatenate([np.concatenate([hello, gap])] * (n // (len(hello) + len(gap)) + 1))[:n]
    whole = animate(model, wav, window=0)
    runs = {"ours": animate(model, wav), "original": animate(model, wav, windows="original")}
    starts = {
        "ours": aligned_window_starts(
            n, 25 * SAMPLE_RATE, 20 * SAMPLE_RATE, frame_grid([a.fps for a in whole.values()])
        ),
        "original": [s for s, _ in demo_windows(n)],
    }
    print(
        f"{args.seconds:.0f} s clip, {len(whole)} heads; deviation from one whole-clip pass, "
        "in units of each head's motion range (mean over heads)"
    )
    print(
        f"{'windows':<10} {'frames':>7} {'dev_all':>9} {'dev_seam':>9} {'max_dev':>9} {'tail':>9}"
    )
    for name, res in runs.items():
        rows = []
        for h, ref in whole.items():
            got = res[h].data
            t = min(len(got), len(ref.data))
            rng = float((ref.data.max(0) - ref.data.min(0)).max()) or 1.0
            dev = np.abs(got[:t] - ref.data[:t]).max(axis=1) / rng  # [T] worst channel
            seam = np.zeros(t, bool)
            for s in starts[name][1:]:
                a = int(round(s / SAMPLE_RATE * ref.fps))
                seam[a : a + int(6 * ref.fps)] = True
            tail = dev[-int(5 * ref.fps) :]
            rows.append((dev.mean(), dev[seam].mean(), dev.max(), tail.mean(), len(got)))
        r = np.mean(rows, axis=0)
        print(f"{name:<10} {int(r[4]):>7} {r[0]:>9.4f} {r[1]:>9.4f} {r[2]:>9.4f} {r[3]:>9.4f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

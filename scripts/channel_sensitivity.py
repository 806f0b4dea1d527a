"""How much a model's error on seen-voice clips grows under channel changes.

Runs the model on the V0-V3 ``test`` clips of an A2F-Synth release after one transform
of the audio at a time (random 7-band EQ of +-12 dB, pre- and de-emphasis, a +4 semitone
pitch shift, a 0.88 vocal-tract-length warp, 8 kHz aliasing with 5-bit quantisation, an
LPC vocoder: the clip's own spectral envelope over a buzz / noise excitation, as formant
and LPC synthesisers such as SAM speak) and
prints LVE-all (max squared vertex error per frame, pooled) per dataset relative to the
untouched audio. A transform the model is fragile to is a candidate for augmentation;
compare with the held-out engine's gap (``unitalker evaluate --unseen``).

Usage: python scripts/channel_sensitivity.py MODEL [DATA_RELEASE] [--split test]
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

import numpy as np

SR = 16000


def lpc_vocode(x: np.ndarray, seed: int, order: int = 18, frame_s: float = 0.025) -> np.ndarray:
    """Resynthesise ``x`` (16 kHz) from its LPC envelope over a pulse or noise excitation.

    Per 25 ms frame (Hann, half overlap): LPC coefficients (``librosa.lpc``), the
    residual's gain, and a voicing decision (the residual's autocorrelation peak at
    60-400 Hz lags above 0.3); voiced frames filter one continuous pulse train (f0 drawn
    in 90-160 Hz, +-5 % slow vibrato), the others white noise. Timing and envelope are
    kept, the source is replaced: a robotic voice. Peak level matched to ``x``.
    """
    import librosa
    from scipy.signal import lfilter

    rng = np.random.default_rng(seed)
    x = np.asarray(x, np.float64)
    n_fft = int(round(frame_s * SR)) // 2 * 2
    hop = n_fft // 2
    win = np.hanning(n_fft + 1)[:-1]  # periodic: sums to 1 at half overlap
    pad = np.concatenate([np.zeros(hop), x, np.zeros(n_fft)])
    t = np.arange(len(pad)) / SR
    f0 = rng.uniform(90.0, 160.0) * (1 + 0.05 * np.sin(2 * np.pi * rng.uniform(0.2, 0.6) * t))
    pulses = np.diff(np.floor(np.cumsum(f0 / SR)), prepend=0.0)
    noise = rng.standard_normal(len(pad))
    lags = slice(SR // 400, SR // 60)
    out = np.zeros(len(pad))
    for s in range(0, len(pad) - n_fft + 1, hop):
        frame = pad[s : s + n_fft] * win
        if np.sum(frame**2) < 1e-10:
            continue
        a = librosa.lpc(frame + 1e-9 * rng.standard_normal(n_fft), order=order)
        if not np.all(np.isfinite(a)):
            continue
        res = lfilter(a, [1.0], frame)
        ac = np.correlate(res, res, "full")[n_fft - 1 :]
        voiced = ac[lags].max() / (ac[0] + 1e-12) > 0.3
        exc = (pulses if voiced else noise)[s : s + n_fft]
        exc = exc / (np.sqrt(np.mean(exc**2)) + 1e-9)
        out[s : s + n_fft] += lfilter([np.sqrt(np.mean(res**2))], a, exc) * win
    y = out[hop : hop + len(x)]
    peak = np.abs(y).max()
    return (y * (np.abs(x).max() / peak if peak > 0 else 1.0)).astype(np.float32)


def transforms() -> dict[str, Callable[[np.ndarray, int], np.ndarray]]:
    import audiomentations as A
    from scipy.signal import lfilter

    from unitalker.data.augment import _seeded_globals, vtln_warp

    def eq(x: np.ndarray, seed: int) -> np.ndarray:
        with _seeded_globals(seed):
            return A.SevenBandParametricEQ(min_gain_db=-12, max_gain_db=12, p=1.0)(x, SR)

    def lofi(x: np.ndarray, _seed: int) -> np.ndarray:
        y = A.Aliasing(min_sample_rate=8000, max_sample_rate=8000, p=1.0)(x, SR)
        return A.BitCrush(min_bit_depth=5, max_bit_depth=5, p=1.0)(y, SR)

    return {
        "eq +-12 dB": eq,
        "pre-emphasis": lambda x, _s: lfilter([1, -0.9], [1], x),
        "de-emphasis": lambda x, _s: 0.1 * lfilter([1], [1, -0.9], x),
        "pitch +4 st": lambda x, _s: A.PitchShift(min_semitones=4, max_semitones=4, p=1.0)(x, SR),
        "vtln 0.88": lambda x, _s: vtln_warp(x, SR, 0.88),
        "8 kHz, 5 bit": lofi,
        "LPC vocoder, order 18": lambda x, s: lpc_vocode(x, s, order=18),
        "LPC vocoder, order 12": lambda x, s: lpc_vocode(x, s, order=12),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model", help="checkpoint folder or bundled model name")
    ap.add_argument("release", nargs="?", default="data/a2f_synth_release")
    ap.add_argument("--split", default="test")
    ap.add_argument("--datasets", nargs="+", default=["V0", "V1", "V2", "V3"])
    args = ap.parse_args()

    import unitalker.data as data
    from unitalker.evaluation.evaluate import evaluate
    from unitalker.geometry import vertices
    from unitalker.models.checkpoint import load_model

    model = load_model(args.model, "cpu")
    original = data.ClipDataset.audio

    def lve(key: str) -> float:
        _, kept = evaluate(
            model, args.release, split=args.split, datasets=(key,), keep_predictions=10**9
        )
        total, frames = 0.0, 0
        for rec in kept:
            conv = rec["convention"]
            pred = vertices(conv, rec["prediction"])
            gt = vertices(conv, np.asarray(rec["item"]["motion"]))
            n = min(len(pred), len(gt))
            total += float(((pred[:n] - gt[:n]) ** 2).sum(-1).max(-1).sum())
            frames += n
        return total / frames

    try:
        base = {key: lve(key) for key in args.datasets}
        print("| transform | " + " | ".join(args.datasets) + " |")
        print("| --- |" + " ---: |" * len(args.datasets))
        for name, fn in transforms().items():
            # evaluate reads each clip through ClipDataset.audio: transform it there
            def audio(self: object, i: int, fn: Callable = fn) -> np.ndarray:
                x = np.asarray(original(self, i), np.float32)
                return np.clip(fn(x, i), -1, 1).astype(np.float32)

            data.ClipDataset.audio = audio  # type: ignore[method-assign]
            cells = " | ".join(f"{lve(k) / base[k]:.2f}" for k in args.datasets)
            print(f"| {name} | {cells} |")
    finally:
        data.ClipDataset.audio = original  # type: ignore[method-assign]


if __name__ == "__main__":
    main()

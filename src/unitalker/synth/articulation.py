"""Phoneme timeline -> articulation curves (JALI-like channels, Cohen-Massaro coarticulation).

Any source of ``[(phoneme, start_s, end_s), ...]`` (eSpeak, an aligner, hand-written)
drives :func:`timeline_to_articulation`. Phonemes (eSpeak mnemonics or IPA) map to the 15
Oculus viseme classes; each class has a target and a dominance per articulatory
parameter. A parameter's trajectory is the dominance-weighted average of the segment
targets (Cohen & Massaro 1993), with

* hard targets: bilabial closure (p b m) and labiodental contact (f v) are enforced
  over the middle of their segment, so lips really close;
* anticipatory rounding: rounding dominance reaches further *before* a rounded vowel;
* silence: a neutral target whose dominance grows with the pause, so pauses relax;
* timing: the jaw channel leads the acoustic segments by ``style.jaw_lead_s``.

Non-speech channels: blinks (every 2-10 s, 100-400 ms), brows following pitch / energy
(or stressed vowels when no audio features are given), slow gaze drifts.
Everything is deterministic given the seed.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

VISEMES: tuple[str, ...] = (
    "sil",
    "PP",
    "FF",
    "TH",
    "DD",
    "kk",
    "CH",
    "SS",
    "nn",
    "RR",
    "aa",
    "E",
    "ih",
    "oh",
    "ou",
)

# Articulatory parameters driven by visemes.
PARAMS: tuple[str, ...] = (
    "jaw_open",
    "lip_close",
    "lip_round",
    "lip_spread",
    "lower_lip_tuck",
    "tongue_out",
)

# All curves returned by timeline_to_articulation, in [0, 1] except gaze / jaw_side ([-1, 1]).
CURVES: tuple[str, ...] = (
    "jaw_open",
    "lip_close",
    "lip_round",
    "lip_funnel",
    "lip_spread",
    "lip_spread_l",
    "lip_spread_r",
    "lower_lip_tuck",
    "tongue_out",
    "jaw_side",
    "brow_raise",
    "brow_raise_l",
    "brow_raise_r",
    "brow_inner",
    "blink_l",
    "blink_r",
    "gaze_x",
    "gaze_y",
)

# viseme -> targets (jaw, close, round, spread, tuck, tongue)
_TARGETS: dict[str, tuple[float, ...]] = {
    "sil": (0.00, 0.0, 0.00, 0.00, 0.0, 0.0),
    "PP": (0.06, 1.0, 0.00, 0.00, 0.0, 0.0),
    "FF": (0.10, 0.0, 0.00, 0.10, 1.0, 0.0),
    "TH": (0.18, 0.0, 0.00, 0.10, 0.0, 1.0),
    "DD": (0.18, 0.0, 0.00, 0.15, 0.0, 0.1),
    "kk": (0.25, 0.0, 0.00, 0.05, 0.0, 0.0),
    "CH": (0.15, 0.0, 0.65, 0.00, 0.0, 0.0),
    "SS": (0.08, 0.0, 0.00, 0.40, 0.0, 0.0),
    "nn": (0.18, 0.0, 0.00, 0.10, 0.0, 0.25),
    "RR": (0.18, 0.0, 0.40, 0.00, 0.0, 0.0),
    "aa": (0.80, 0.0, 0.00, 0.10, 0.0, 0.0),
    "E": (0.45, 0.0, 0.00, 0.35, 0.0, 0.0),
    "ih": (0.18, 0.0, 0.00, 0.75, 0.0, 0.0),
    "oh": (0.45, 0.0, 0.75, 0.00, 0.0, 0.0),
    "ou": (0.15, 0.0, 1.00, 0.00, 0.0, 0.0),
}
# viseme -> dominance magnitude per parameter (how strongly it imposes its target)
_VOWEL_DOM = (1.0, 1.0, 0.8, 0.8, 0.6, 0.3)
_CONS_DOM = (0.35, 0.3, 0.15, 0.3, 0.3, 0.5)
_DOMINANCE: dict[str, tuple[float, ...]] = {
    "sil": (0.6, 0.6, 0.6, 0.6, 0.6, 0.6),
    "PP": (0.6, 2.0, 0.1, 0.2, 0.3, 0.5),
    "FF": (0.5, 0.5, 0.1, 0.3, 2.0, 0.5),
    "TH": (0.4, 0.3, 0.1, 0.3, 0.3, 4.0),
    "CH": (0.4, 0.3, 2.0, 0.5, 0.3, 0.5),
    "SS": (0.4, 0.3, 0.2, 0.8, 0.3, 0.5),
    "RR": (0.35, 0.3, 1.0, 0.3, 0.3, 0.5),
    **dict.fromkeys(("aa", "E", "ih", "oh", "ou"), _VOWEL_DOM),
    **dict.fromkeys(("DD", "kk", "nn"), _CONS_DOM),
}
_HARD = {"PP": 1, "FF": 4}  # viseme -> parameter index with a hard (enforced) target

# eSpeak mnemonics (all languages we use) and IPA -> viseme. Longest match first.
_MULTI: dict[str, str] = {
    "tS": "CH",
    "dZ": "CH",
    "ts": "CH",
    "dz": "CH",
    "tC": "CH",
    "s.": "CH",
    "z.": "CH",
    "ts.": "CH",
    "tsh": "CH",
    "tɕ": "CH",
    "tʃ": "CH",
    "dʒ": "CH",
    "ʈʂ": "CH",
    "a#": "E",
    "@": "E",
    "ə": "E",
}
_SINGLE: dict[str, str] = {
    **dict.fromkeys("pbmɱ", "PP"),
    **dict.fromkeys("fvɸβ", "FF"),
    **dict.fromkeys("TDθð", "TH"),
    **dict.fromkeys("tdc", "DD"),
    **dict.fromkeys("kgxXGNqŋɣχ", "kk"),
    **dict.fromkeys("SZCʃʒɕʑʂʐç", "CH"),
    **dict.fromkeys("sz", "SS"),
    **dict.fromkeys("nlLJɲɫʎ", "nn"),
    **dict.fromkeys("rR*ɹɾʁʀ", "RR"),
    **dict.fromkeys("aAV&ɑæʌɐ", "aa"),
    **dict.fromkeys("eE3ɛɜœø", "E"),
    **dict.fromkeys("iIjyɪʏ", "ih"),
    **dict.fromkeys("oO0ɔɒ", "oh"),
    **dict.fromkeys("uUwWY8ʊɯ", "ou"),
    "_": "sil",
    "?": "sil",
    # IPA as eSpeak NG's IPA output, Kokoro and the PocketSphinx aligner write it
    "ɡ": "kk",
    "ɚ": "RR",
    "ɝ": "RR",
    "ʤ": "CH",
    "ʧ": "CH",
    "ᵻ": "ih",
    "ɨ": "ih",
    "ʉ": "ou",
    "ɵ": "oh",
    "ɤ": "oh",
    "ɬ": "nn",
    "ʍ": "ou",
}
# stress / length marks around a phoneme symbol (eSpeak and IPA)
_MARKS = re.compile(r"^[',%=ˈˌ]+|[:ːˑ]+$")
_WEAK = set("h") | {"ɦ", "ʔ"}  # aspirates / glottals take their neighbours' shape


def phoneme_to_viseme(ph: str) -> str:
    """Map an eSpeak mnemonic (``'aI``, ``tS``, ``_:``) or an IPA symbol to a viseme class.

    Unknown symbols map to ``sil`` (weak); ``h`` maps to ``sil`` with weak dominance in
    :func:`timeline_to_articulation`.
    """
    core = _MARKS.sub("", ph.strip())
    if not core or core[0] == "_" or core in ("sil", "sp", "spn", "pau", "SIL"):
        return "sil"
    if core in VISEMES:
        return core
    for n in (3, 2):
        if core[:n] in _MULTI:
            return _MULTI[core[:n]]
    if core[0] in _MULTI:
        return _MULTI[core[0]]
    return _SINGLE.get(core[0], "sil")


@dataclass(frozen=True)
class SpeakerStyle:
    """Per-speaker articulation style.

    Attributes:
        jaw_gain, lip_gain, round_gain, spread_gain: amplitude of those channels.
        asymmetry: left/right imbalance of spreading and brows (-0.3..0.3).
        jaw_lead_s: how far the jaw leads the acoustic segments (seconds).
        coarticulation: width of the dominance functions (1 = nominal).
        blink_interval: (min, max) seconds between blinks.
        brow_gain: how much the brows follow pitch / energy.
        jaw_side: constant lateral jaw offset (-1..1, small).
    """

    jaw_gain: float = 1.0
    lip_gain: float = 1.0
    round_gain: float = 1.0
    spread_gain: float = 1.0
    asymmetry: float = 0.0
    jaw_lead_s: float = 0.04
    coarticulation: float = 1.0
    blink_interval: tuple[float, float] = (2.0, 10.0)
    brow_gain: float = 0.5
    jaw_side: float = 0.0

    @classmethod
    def random(cls, rng: np.random.Generator) -> SpeakerStyle:
        """A plausible random speaker."""
        lo = rng.uniform(2.0, 4.0)
        return cls(
            jaw_gain=float(rng.uniform(0.75, 1.2)),
            lip_gain=float(rng.uniform(0.8, 1.15)),
            round_gain=float(rng.uniform(0.7, 1.2)),
            spread_gain=float(rng.uniform(0.7, 1.25)),
            asymmetry=float(rng.uniform(-0.25, 0.25)),
            jaw_lead_s=float(rng.uniform(0.02, 0.07)),
            coarticulation=float(rng.uniform(0.8, 1.3)),
            blink_interval=(lo, float(rng.uniform(lo + 2, 10.0))),
            brow_gain=float(rng.uniform(0.2, 0.8)),
            jaw_side=float(rng.uniform(-0.15, 0.15)),
        )


def _segments(
    timeline: Sequence[tuple[str, float, float]],
) -> tuple[list[str], np.ndarray, np.ndarray, list[str]]:
    names, starts, ends, raw = [], [], [], []
    for ph, s, e in timeline:
        if e <= s:
            continue
        names.append(phoneme_to_viseme(ph))
        raw.append(ph)
        starts.append(float(s))
        ends.append(float(e))
    return names, np.asarray(starts), np.asarray(ends), raw


def _dominance_blend(
    vis: list[str], raw: list[str], s: np.ndarray, e: np.ndarray, t: np.ndarray, coart: float
) -> np.ndarray:
    """Cohen-Massaro blend: returns ``[len(PARAMS), T]`` trajectories."""
    n = len(vis)
    if n == 0:
        return np.zeros((len(PARAMS), len(t)))
    c = 0.5 * (s + e)  # [N]
    d = np.maximum(e - s, 1e-3)
    tgt = np.array([_TARGETS[v] for v in vis])  # [N, P]
    mag = np.array([_DOMINANCE[v] for v in vis])  # [N, P]
    weak = np.array([_MARKS.sub("", r.strip())[:1] in _WEAK for r in raw])
    mag[weak] *= 0.05
    # silence dominance grows with the pause so long pauses reach neutral
    sil = np.array([v == "sil" for v in vis])
    # pauses of 0.3 s and more dominate ever more strongly: the mouth rests in them
    mag[sil] *= (np.clip(d[sil] / 0.15, 0.3, 1.5) * np.clip(d[sil] / 0.2, 1.0, 4.5))[:, None]
    # width (time constant) per segment and parameter, before / after the centre
    base = coart * (0.5 * d + 0.045)  # [N]
    width_before = np.repeat(base[:, None], len(PARAMS), 1)
    width_after = width_before.copy()
    rounded = tgt[:, 2] > 0.3
    width_before[rounded, 2] *= 2.5  # anticipatory rounding over preceding consonants
    hard = np.array([v in _HARD for v in vis])
    width_before[hard] *= 0.6  # closures and contacts are quick gestures
    width_after[hard] *= 0.6
    width_before[sil] = width_after[sil] = (np.minimum(0.25 * d[sil], 0.06) + 0.03)[:, None]
    dt = t[None, :] - c[:, None]  # [N, T]
    # a pause dominates fully over its whole middle (not just around its centre), so
    # the start of a long leading silence is not pulled open by the first vowel
    plateau = np.where(sil, np.maximum(0.5 * d - np.minimum(0.06, d / 3), 0.0), 0.0)
    dt = np.sign(dt) * np.maximum(np.abs(dt) - plateau[:, None], 0.0)
    w = np.where(dt[:, None, :] < 0, width_before[:, :, None], width_after[:, :, None])  # [N, P, T]
    dom = mag[:, :, None] * np.exp(-((np.abs(dt)[:, None, :] / w) ** 1.5))
    traj = (dom * tgt[:, :, None]).sum(0) / np.maximum(dom.sum(0), 1e-9)  # [P, T]
    # hard targets: enforce closure / lip-teeth contact over the segment's middle
    for i, v in enumerate(vis):
        k = _HARD.get(v)
        if k is None:
            continue
        half = 0.5 * d[i]
        win = np.clip(1.0 - np.abs(t - c[i]) / max(half + 0.015, 1e-3), 0, 1)
        win = np.clip(win * 2.0, 0, 1)  # flat top over the middle of the segment
        traj[k] = np.maximum(traj[k], win * tgt[i, k])
        if v == "PP":  # a closed mouth: the jaw cannot be wide open during closure
            traj[0] = np.minimum(traj[0], (1 - win) + win * 0.12)
    return traj


def _smooth(x: np.ndarray, fps: float, sigma_s: float) -> np.ndarray:
    from scipy.ndimage import gaussian_filter1d

    return gaussian_filter1d(x, sigma=max(sigma_s * fps, 1e-3), mode="nearest") if len(x) > 1 else x


def _blinks(
    n: int, fps: float, rng: np.random.Generator, interval: tuple[float, float]
) -> tuple[np.ndarray, np.ndarray]:
    t = np.arange(n) / fps
    left = np.zeros(n)
    right = np.zeros(n)
    at = rng.uniform(0.3, interval[1] * 0.6)
    while at < n / fps:
        dur = rng.uniform(0.1, 0.4)
        close = 0.35 * dur  # fast closing, slower opening
        amp = rng.uniform(0.85, 1.0)
        for arr, off in ((left, 0.0), (right, rng.uniform(-0.01, 0.01))):
            u = t - at - off
            shape = np.where(u < close, u / close, 1 - (u - close) / (dur - close))
            arr[:] = np.maximum(arr, amp * np.clip(shape, 0, 1) * ((u >= 0) & (u <= dur)))
        at += dur + rng.uniform(*interval)
    return left, right


def timeline_to_articulation(
    timeline: Sequence[tuple[str, float, float]],
    fps: float,
    style: SpeakerStyle | None = None,
    *,
    seed: int | np.random.Generator = 0,
    n_frames: int | None = None,
    f0: np.ndarray | None = None,
    energy: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """Articulation curves at ``fps`` from a phoneme timeline.

    Args:
        timeline: ``[(phoneme, start_s, end_s), ...]``; eSpeak mnemonics, IPA symbols or
            viseme names. Gaps are silence.
        fps: output frame rate.
        style: speaker style (default :class:`SpeakerStyle`).
        seed: seed or generator for blinks, gaze and brow jitter.
        n_frames: number of frames (default ``round(last_end * fps)``).
        f0: optional pitch per output frame (Hz, 0 = unvoiced) to drive the brows.
        energy: optional RMS energy per output frame.

    Returns:
        dict curve name (:data:`CURVES`) -> float32 ``[T]``; frame ``k`` is time ``k / fps``.
    """
    style = style or SpeakerStyle()
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    vis, s, e, raw = _segments(timeline)
    end = float(e.max()) if len(e) else 0.0
    n = int(n_frames if n_frames is not None else max(1, round(end * fps)))
    t = np.arange(n) / fps
    lips = _dominance_blend(vis, raw, s, e, t, style.coarticulation)
    # the jaw leads: evaluate its blend at a later time (t + lead)
    jaw = _dominance_blend(vis, raw, s, e, t + style.jaw_lead_s, style.coarticulation)[0]
    jaw = _smooth(jaw, fps, 0.012)
    out: dict[str, np.ndarray] = {}
    out["jaw_open"] = np.clip(jaw * style.jaw_gain, 0, 1)
    out["lip_close"] = np.clip(lips[1], 0, 1)
    rnd = np.clip(lips[2] * style.round_gain * style.lip_gain, 0, 1)
    out["lip_round"] = rnd
    out["lip_funnel"] = np.clip(rnd * out["jaw_open"] * 1.6, 0, 1)  # open rounding = funnel
    spread = np.clip(lips[3] * style.spread_gain * style.lip_gain, 0, 1)
    out["lip_spread"] = spread
    out["lip_spread_l"] = np.clip(spread * (1 + style.asymmetry), 0, 1)
    out["lip_spread_r"] = np.clip(spread * (1 - style.asymmetry), 0, 1)
    out["lower_lip_tuck"] = np.clip(lips[4], 0, 1)
    out["tongue_out"] = np.clip(lips[5], 0, 1)
    out["jaw_side"] = np.clip(style.jaw_side * out["jaw_open"], -1, 1)

    # brows: pitch and energy when given, else stressed vowels
    drive = np.zeros(n)
    if f0 is not None and np.any(np.asarray(f0) > 0):
        f = np.asarray(f0, float)[:n]
        voiced = f > 0
        lf = np.where(voiced, np.log(np.maximum(f, 1.0)), 0.0)
        mu = lf[voiced].mean()
        sd = lf[voiced].std() + 1e-6
        drive[: len(f)] += np.where(voiced, np.clip((lf - mu) / sd, 0, 3), 0) / 3
    if energy is not None and len(energy):
        en = np.asarray(energy, float)[:n]
        drive[: len(en)] += 0.5 * en / (en.max() + 1e-9)
    if f0 is None and energy is None:
        for ph, a, b in zip(raw, s, e, strict=True):
            if ph.startswith("'"):  # eSpeak marks primary stress with a leading quote
                drive += 0.6 * np.exp(-(((t - 0.5 * (a + b)) / 0.12) ** 2))
    drive = _smooth(np.clip(drive, 0, 1), fps, 0.08)
    jitter = _smooth(rng.standard_normal(n), fps, 0.5) * 0.05
    brow = np.clip(style.brow_gain * drive + jitter, 0, 1)
    out["brow_raise"] = brow
    out["brow_raise_l"] = np.clip(brow * (1 + style.asymmetry), 0, 1)
    out["brow_raise_r"] = np.clip(brow * (1 - style.asymmetry), 0, 1)
    out["brow_inner"] = np.clip(0.6 * brow, 0, 1)
    out["blink_l"], out["blink_r"] = _blinks(n, fps, rng, style.blink_interval)
    # gaze: fixations held 0.5-2.5 s, smoothed saccades
    gx, gy = np.zeros(n), np.zeros(n)
    k = 0
    while k < n:
        hold = max(1, int(rng.uniform(0.5, 2.5) * fps))
        gx[k : k + hold] = rng.uniform(-0.3, 0.3)
        gy[k : k + hold] = rng.uniform(-0.2, 0.2)
        k += hold
    out["gaze_x"] = _smooth(gx, fps, 0.03)
    out["gaze_y"] = _smooth(gy, fps, 0.03)
    return {name: out[name].astype(np.float32) for name in CURVES}


def audio_features(
    audio: np.ndarray, sr: int, fps: float, n_frames: int
) -> tuple[np.ndarray, np.ndarray]:
    """Cheap per-frame f0 (autocorrelation, 70-400 Hz, 0 when unvoiced) and RMS energy."""
    hop = sr / fps
    win = int(0.04 * sr)
    x = np.pad(np.asarray(audio, np.float64), (win, win))
    idx = (np.arange(n_frames) * hop).astype(int)[:, None] + np.arange(win)[None, :] + win // 2
    frames = x[np.minimum(idx, len(x) - 1)] * np.hanning(win)[None]
    energy = np.sqrt((frames**2).mean(1))
    spec = np.fft.rfft(frames, 2 * win, axis=1)
    ac = np.fft.irfft(np.abs(spec) ** 2, axis=1)[:, :win]
    lo, hi = int(sr / 400), int(sr / 70)
    lag = lo + np.argmax(ac[:, lo:hi], axis=1)
    peak = ac[np.arange(n_frames), lag] / np.maximum(ac[:, 0], 1e-12)
    voiced = (peak > 0.45) & (energy > 0.01)
    f0 = np.where(voiced, sr / lag, 0.0)
    return f0.astype(np.float32), energy.astype(np.float32)

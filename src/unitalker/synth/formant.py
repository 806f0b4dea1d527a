"""A rule-based formant synthesizer (``formant``): a training engine whose formant tables
are drawn anew for every clip.

What it is for: the held-out engine, SAM, is a formant synthesizer of the early 1980s,
and what the default model misses in it is in its spectra (its formant tables and
transitions; docs/a2f-synth.md), not in its buzzy excitation. No other engine of
that kind ships in a registry under a licence that allows training on it (DECtalk's npm
build is proprietary, MBROLA's voices forbid it, Festival and Flite are reserved), so this
module is one: a cascade formant synthesizer after Klatt (1980) written here, whose
per-phone targets are textbook values for English (Peterson & Barney's and Hillenbrand's
vowel averages, consonant loci after Klatt) *randomised per clip*: each phone's F1-F3
by a log-normal factor, the whole table by a vocal-tract factor, the bandwidths, the
transition times, the glottal source and the intonation. It shares nothing with SAM's
tables or code; it shows the model many formant engines instead of the one eSpeak NG is.

Timing: the phone sequence and durations come from eSpeak NG's phoneme events for the
text (an English accent and a rate drawn by the caller), each phone's duration then
scaled by its own random factor, and the audio is rendered from that timeline, so the
labels and the sound agree by construction (a phone's sound starts at its interval; its
formants move towards the next phone's within the transition time).

Synthesis (16 kHz, parameters updated every 5 ms as in Klatt's synthesizer): a glottal
source (an impulse train through a glottal low-pass or a Rosenberg pulse, each
differentiated for the lip radiation, or a sawtooth), with aspiration noise added, through
a cascade of five second-order resonators (F1-F3 from the phone tracks, F4 and F5 fixed,
all scaled by the vocal-tract factor); frication noise through a resonator tuned per
fricative or burst, added in parallel; nasals
lower F1 and widen the bandwidths; voiced closures keep a low voice bar. Deterministic:
the same text, voice and parameters give the same samples.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from unitalker.synth.tts import SynthResult, Timeline

FORMANT_SR = 16000
HOP_S = 0.005  # parameter update interval (Klatt: 5 ms)

# voice -> (mean f0 in Hz, vocal-tract factor on every formant)
VOICES: dict[str, tuple[float, float]] = {
    "man": (110.0, 1.0),
    "deep": (85.0, 0.93),
    "woman": (200.0, 1.14),
    "child": (265.0, 1.27),
}
SOURCES: tuple[str, ...] = ("impulse", "rosenberg", "saw")

# vowels: a list of (F1, F2, F3) targets passed through in order (diphthongs: two or three)
_SCHWA = (500.0, 1450.0, 2500.0)
_RHOTIC = (480.0, 1350.0, 1700.0)
_I, _E, _AE = (400.0, 1920.0, 2560.0), (550.0, 1770.0, 2490.0), (690.0, 1660.0, 2490.0)
_A, _O, _U = (750.0, 1100.0, 2440.0), (590.0, 880.0, 2540.0), (450.0, 1030.0, 2380.0)
VOWELS: dict[str, tuple[tuple[float, float, float], ...]] = {
    "i:": ((280.0, 2250.0, 2950.0),),
    "i": ((300.0, 2200.0, 2900.0),),
    "I": (_I,),
    "I2": ((420.0, 1800.0, 2500.0),),
    "I#": ((420.0, 1800.0, 2500.0),),
    "E": (_E,),
    "e": ((480.0, 1950.0, 2550.0),),
    "a": (_AE,),
    "a#": ((560.0, 1450.0, 2450.0),),
    "A:": (_A,),
    "A": (_A,),
    "0": ((720.0, 1090.0, 2440.0),),
    "O:": (_O,),
    "O": (_O,),
    "O2": (_O,),
    "U": (_U,),
    "u:": ((320.0, 950.0, 2300.0),),
    "V": ((650.0, 1200.0, 2500.0),),
    "@": (_SCHWA,),
    "@2": (_SCHWA,),
    "@5": ((470.0, 1200.0, 2400.0),),
    "3": (_RHOTIC,),
    "3:": (_RHOTIC,),
    "@L": ((450.0, 1000.0, 2600.0),),
    "aI": ((720.0, 1350.0, 2450.0), (420.0, 1900.0, 2550.0)),
    "aI2": ((720.0, 1350.0, 2450.0), (420.0, 1900.0, 2550.0)),
    "aU": ((720.0, 1250.0, 2450.0), (450.0, 1000.0, 2350.0)),
    "eI": ((480.0, 1950.0, 2550.0), (380.0, 2150.0, 2650.0)),
    "oU": ((520.0, 950.0, 2400.0), (430.0, 900.0, 2300.0)),
    "OI": ((560.0, 880.0, 2450.0), (420.0, 1900.0, 2550.0)),
    "e@": (_E, _RHOTIC),
    "i@": (_I, _RHOTIC),
    "i@3": (_I, _RHOTIC),
    "A@": (_A, _RHOTIC),
    "O@": (_O, _RHOTIC),
    "o@": (_O, _RHOTIC),
    "U@": (_U, _RHOTIC),
    "aI@": ((720.0, 1350.0, 2450.0), (420.0, 1900.0, 2550.0), _RHOTIC),
}


@dataclass(frozen=True)
class Consonant:
    """A consonant's rule: its formant locus, its manner and its noise band."""

    locus: tuple[float, float, float]
    manner: str  # stop, fricative, affricate, nasal, approximant
    voiced: bool
    noise_hz: float = 0.0  # centre of the frication / burst resonator
    noise_bw: float = 0.0
    noise_gain: float = 0.0


_LAB, _ALV, _VEL = (250.0, 900.0, 2300.0), (250.0, 1750.0, 2700.0), (280.0, 1900.0, 2200.0)
_POST = (300.0, 1900.0, 2400.0)
CONSONANTS: dict[str, Consonant] = {
    "p": Consonant(_LAB, "stop", False, 1200.0, 1800.0, 0.35),
    "b": Consonant(_LAB, "stop", True, 1200.0, 1800.0, 0.25),
    "t": Consonant(_ALV, "stop", False, 4500.0, 2000.0, 0.6),
    "t[": Consonant(_ALV, "stop", False, 4500.0, 2000.0, 0.6),
    "t#": Consonant(_ALV, "stop", True, 4000.0, 2000.0, 0.15),
    "d": Consonant(_ALV, "stop", True, 4000.0, 2000.0, 0.4),
    "k": Consonant(_VEL, "stop", False, 2200.0, 900.0, 0.6),
    "g": Consonant(_VEL, "stop", True, 2200.0, 900.0, 0.4),
    "f": Consonant((300.0, 1100.0, 2400.0), "fricative", False, 5000.0, 4000.0, 0.25),
    "v": Consonant((300.0, 1100.0, 2400.0), "fricative", True, 5000.0, 4000.0, 0.15),
    "T": Consonant((300.0, 1400.0, 2600.0), "fricative", False, 5500.0, 3000.0, 0.2),
    "D": Consonant((300.0, 1400.0, 2600.0), "fricative", True, 5500.0, 3000.0, 0.1),
    "s": Consonant(_ALV, "fricative", False, 5500.0, 1500.0, 0.9),
    "z": Consonant(_ALV, "fricative", True, 5500.0, 1500.0, 0.5),
    "S": Consonant(_POST, "fricative", False, 2900.0, 1200.0, 0.9),
    "Z": Consonant(_POST, "fricative", True, 2900.0, 1200.0, 0.5),
    "tS": Consonant(_POST, "affricate", False, 2900.0, 1200.0, 0.9),
    "dZ": Consonant(_POST, "affricate", True, 2900.0, 1200.0, 0.5),
    "m": Consonant((270.0, 1000.0, 2300.0), "nasal", True),
    "n": Consonant((270.0, 1600.0, 2600.0), "nasal", True),
    "N": Consonant((270.0, 2000.0, 2400.0), "nasal", True),
    "l": Consonant((360.0, 1100.0, 2700.0), "approximant", True),
    "r": Consonant((330.0, 1100.0, 1500.0), "approximant", True),
    "r-": Consonant((330.0, 1100.0, 1500.0), "approximant", True),
    "w": Consonant((300.0, 700.0, 2200.0), "approximant", True),
    "j": Consonant((280.0, 2200.0, 3000.0), "approximant", True),
}
_MARKS = re.compile(r"^[',%=ˈˌ]+")
_STRESSED = re.compile(r"^['ˈ]")


def phone_key(mnemonic: str) -> str:
    """An eSpeak NG mnemonic without its stress marks (``'aI`` -> ``aI``)."""
    return _MARKS.sub("", mnemonic.strip())


@dataclass
class _Tracks:
    """Per-frame parameter tracks ``[F]`` (F frames of HOP_S) of one utterance."""

    formants: np.ndarray  # [F, 3] F1-F3 targets (before smoothing)
    av: np.ndarray  # voicing amplitude
    ah: np.ndarray  # aspiration amplitude
    af: np.ndarray  # frication amplitude
    noise_hz: np.ndarray  # frication resonator centre
    noise_bw: np.ndarray
    nasal: np.ndarray  # 0..1
    accent: np.ndarray  # 0..1, stressed vowels


def _tracks(timeline: Timeline, n_frames: int, table: dict, rng: np.random.Generator) -> _Tracks:
    def zeros(value: float = 0.0) -> np.ndarray:
        return np.full(n_frames, value, np.float64)

    tr = _Tracks(
        np.zeros((n_frames, 3)),
        zeros(),
        zeros(),
        zeros(),
        zeros(4000.0),
        zeros(2000.0),
        zeros(),
        zeros(),
    )
    last = np.asarray(_SCHWA)
    keys = [phone_key(p) for p, _, _ in timeline]
    for i, ((ph, s, e), key) in enumerate(zip(timeline, keys, strict=True)):
        a, b = int(round(s / HOP_S)), max(int(round(e / HOP_S)), int(round(s / HOP_S)) + 1)
        a, b = min(a, n_frames), min(b, n_frames)
        if b <= a:
            continue
        n = b - a
        if key.startswith("_") or not key:  # pause: the last shape, no sound
            tr.formants[a:b] = last
            continue
        if key in ("h", ";"):  # /h/ and eSpeak's ";" take the next vowel's shape
            nxt = next((k for k in keys[i + 1 :] if k in table["vowels"]), None)
            shape = table["vowels"][nxt][0] if nxt else last
            tr.formants[a:b] = shape
            if key == "h":
                tr.ah[a:b] = 0.5
            else:
                tr.av[a:b] = 0.6
            continue
        if key in table["vowels"]:
            pts = np.asarray(table["vowels"][key])
            if len(pts) == 1:
                tr.formants[a:b] = pts[0]
            else:  # a diphthong: the targets in turn, linearly
                x = np.linspace(0.0, len(pts) - 1, n)
                for k in range(3):
                    tr.formants[a:b, k] = np.interp(x, np.arange(len(pts)), pts[:, k])
            tr.av[a:b] = 1.0
            tr.accent[a:b] = 1.0 if _STRESSED.match(ph) else 0.0
            last = pts[-1]
            continue
        c = table["consonants"].get(key)
        if c is None:  # an unknown phone: a weak schwa
            tr.formants[a:b], tr.av[a:b] = _SCHWA, 0.5
            continue
        tr.formants[a:b] = c.locus
        if c.noise_gain > 0:  # else the noise resonator keeps its resting tuning
            tr.noise_hz[a:b], tr.noise_bw[a:b] = c.noise_hz, c.noise_bw
        if c.manner == "nasal":
            tr.av[a:b], tr.nasal[a:b] = 0.55, 1.0
        elif c.manner == "approximant":
            tr.av[a:b] = 0.7
        elif c.manner == "fricative":
            tr.af[a:b] = c.noise_gain
            tr.av[a:b] = 0.45 if c.voiced else 0.0
        else:  # stop / affricate: closure, then release (burst; frication for affricates)
            frac = 0.45 if c.manner == "affricate" else float(rng.uniform(0.55, 0.75))
            r = a + max(1, int(round(n * frac)))
            r = min(r, b - 1) if n > 1 else b
            tr.av[a:r] = 0.12 if c.voiced else 0.0  # voice bar
            if c.manner == "affricate":
                tr.af[r:b] = c.noise_gain
                tr.av[r:b] = 0.4 if c.voiced else 0.0
            else:
                burst = min(b, r + 3)  # about 15 ms
                tr.af[r:burst] = c.noise_gain
                tr.ah[burst:b] = 0.0 if c.voiced else 0.35
                tr.av[burst:b] = 0.5 if c.voiced else 0.0
        last = np.asarray(c.locus)
    return tr


def _smooth(x: np.ndarray, tau_frames: float) -> np.ndarray:
    """A zero-phase one-pole smoothing along axis 0 (time constant in frames)."""
    if tau_frames <= 0:
        return x
    k = 1.0 - np.exp(-1.0 / tau_frames)
    y = np.array(x, np.float64)
    for i in range(1, len(y)):
        y[i] = y[i - 1] + k * (y[i] - y[i - 1])
    for i in range(len(y) - 2, -1, -1):
        y[i] = y[i + 1] + k * (y[i] - y[i + 1])
    return y


def _resonate(x: np.ndarray, freqs: np.ndarray, bws: np.ndarray, hop: int) -> np.ndarray:
    """Klatt's second-order resonator with coefficients per hop: ``x [S]``, ``freqs`` and
    ``bws [F]`` (Hz) -> ``[S]`` (unity gain at 0 Hz; the state carries across hops).

    Bandwidths are kept at 10 Hz or more: at 0 Hz the poles sit on the unit circle and
    the state would grow without bound, to ring out when the tuning changes."""
    from scipy.signal import lfilter

    out = np.zeros_like(x)
    y1 = y2 = 0.0
    t = 1.0 / FORMANT_SR
    for f in range(len(freqs)):
        seg = x[f * hop : (f + 1) * hop]
        if not len(seg):
            break
        fr = min(float(freqs[f]), 0.45 * FORMANT_SR)
        bw = max(float(bws[f]), 10.0)
        c = -np.exp(-2.0 * np.pi * bw * t)
        b = 2.0 * np.exp(-np.pi * bw * t) * np.cos(2.0 * np.pi * fr * t)
        a = 1.0 - b - c
        den = np.array([1.0, -b, -c])
        zi = np.array([b * y1 + c * y2, c * y1])
        y, _ = lfilter([a], den, seg, zi=zi)
        out[f * hop : f * hop + len(y)] = y
        if len(y) >= 2:
            y1, y2 = float(y[-1]), float(y[-2])
        else:
            y1, y2 = float(y[-1]), y1
    return out


def _source(f0: np.ndarray, kind: str, oq: float) -> np.ndarray:
    """Glottal flow derivative ``[S]`` for a per-sample f0 ``[S]``."""
    phase = np.cumsum(f0 / FORMANT_SR)
    frac = phase % 1.0
    if kind == "saw":
        return (1.0 - 2.0 * frac) * 0.5
    if kind == "impulse":
        pulse = np.zeros_like(frac)
        pulse[1:] = (np.diff(np.floor(phase)) > 0).astype(np.float64)
        # Klatt's glottal low-pass (a resonator at 0 Hz, 100 Hz wide), then radiation
        flow = _resonate(pulse, np.zeros(1), np.full(1, 100.0), len(pulse))
        return np.diff(flow, prepend=0.0) * 40.0
    tp = 0.66 * oq  # Rosenberg: opening, closing within the open quotient
    flow = np.where(
        frac < tp,
        0.5 * (1.0 - np.cos(np.pi * frac / tp)),
        np.where(frac < oq, np.cos(0.5 * np.pi * (frac - tp) / (oq - tp)), 0.0),
    )
    return np.diff(flow, prepend=0.0) * 8.0


def render_timeline(
    timeline: Timeline,
    *,
    f0: float = 110.0,
    tract: float = 1.0,
    bw_scale: float = 1.0,
    transition_ms: float = 20.0,
    source: str = "rosenberg",
    spread: float = 0.06,
    intonation: float = 0.12,
    seed: int = 0,
) -> np.ndarray:
    """Render a phone timeline (eSpeak NG mnemonics, seconds) as float32 audio ``[S]`` at
    :data:`FORMANT_SR`.

    Args:
        timeline: ``[(mnemonic, start, end)]``, contiguous from 0.
        f0: mean pitch (Hz).
        tract: vocal-tract factor on every formant (1 = the table's adult male).
        bw_scale: factor on the bandwidths.
        transition_ms: time constant of the formant transitions.
        source: one of :data:`SOURCES`.
        spread: s.d. of each phone's log-normal formant factor (the table drawn anew).
        intonation: depth of declination and accents (fraction of f0).
        seed: the draws (table, closures, jitter, noise).
    """
    if source not in SOURCES:
        raise ValueError(f"unknown formant source {source!r}; sources: {list(SOURCES)}")
    if not timeline:
        raise ValueError("render_timeline(): empty timeline")
    rng = np.random.default_rng(seed)
    table = {
        "vowels": {
            k: tuple(tuple(np.asarray(p) * np.exp(rng.normal(0.0, spread, 3))) for p in pts)
            for k, pts in VOWELS.items()
        },
        "consonants": {
            k: Consonant(
                tuple(np.asarray(c.locus) * np.exp(rng.normal(0.0, spread, 3))),
                c.manner,
                c.voiced,
                c.noise_hz * float(np.exp(rng.normal(0.0, spread))),
                c.noise_bw,
                c.noise_gain,
            )
            for k, c in CONSONANTS.items()
        },
    }
    dur = float(timeline[-1][2])
    hop = int(round(HOP_S * FORMANT_SR))
    n_frames = max(1, int(np.ceil(dur / HOP_S)))
    n = int(round(dur * FORMANT_SR))
    tr = _tracks(timeline, n_frames, table, rng)
    tau = transition_ms / 1000.0 / HOP_S
    fm = _smooth(tr.formants, tau) * tract
    fm[:, 0] = fm[:, 0] * (1.0 - 0.12 * _smooth(tr.nasal, 2.0))  # nasal murmur: a lower F1
    av, ah, af = (_smooth(x, 1.0) for x in (tr.av, tr.ah, tr.af))
    # intonation: declination over the utterance, accents on stressed vowels, jitter
    t = np.arange(n_frames) / n_frames
    accent = _smooth(tr.accent, 20.0)
    f0_tr = f0 * (1.0 + intonation * (0.5 - t) + 1.5 * intonation * accent)
    f0_tr *= np.exp(rng.normal(0.0, 0.01, n_frames))
    frame_of = np.minimum(np.arange(n) // hop, n_frames - 1)
    src = _source(f0_tr[frame_of], source, float(rng.uniform(0.45, 0.7)))
    src = src / (float(np.std(src)) or 1.0)  # every source at one level
    noise = rng.standard_normal(n)
    exc = src * av[frame_of] + 0.3 * noise * ah[frame_of]
    bws = np.array([70.0, 100.0, 160.0, 250.0, 300.0]) * bw_scale
    nas_bw = 1.0 + 1.5 * _smooth(tr.nasal, 2.0)
    y = exc
    for k in range(3):
        y = _resonate(y, fm[:, k], bws[k] * (nas_bw if k == 0 else np.ones(n_frames)), hop)
    for k, f in ((3, 3400.0), (4, 4300.0)):
        y = _resonate(y, np.full(n_frames, f * tract), np.full(n_frames, bws[k]), hop)
    fric = _resonate(noise * af[frame_of], tr.noise_hz, tr.noise_bw, hop)
    # the resonators have unity gain at 0 Hz: frication, high up, needs its own level
    fric *= tr.noise_hz[frame_of] / 1000.0
    out = y + 0.08 * fric
    peak = float(np.abs(out).max())
    if peak > 0:
        out = out * (0.9 / peak)
    return out.astype(np.float32)


def jitter_durations(timeline: Timeline, rng: np.random.Generator, sd: float = 0.15) -> Timeline:
    """Each phone's duration times its own log-normal factor (pauses too), at least 25 ms
    for a phone; the timeline stays contiguous from 0."""
    out: Timeline = []
    t = 0.0
    for ph, s, e in timeline:
        d = (e - s) * float(np.exp(rng.normal(0.0, sd)))
        d = max(d, 0.025 if not ph.startswith("_") else 0.01)
        out.append((ph, t, t + d))
        t += d
    return out


def synthesize(
    text: str,
    voice: str = "man",
    *,
    accent: str = "en-us",
    rate: int = 165,
    pitch: float = 1.0,
    tract: float = 1.0,
    bw_scale: float = 1.0,
    transition_ms: float = 20.0,
    source: int = 1,
    spread: float = 0.06,
    seed: int = 0,
) -> SynthResult:
    """Speak ``text``: eSpeak NG's phones for ``accent`` at ``rate`` (words a minute),
    each duration jittered, rendered by :func:`render_timeline`.

    ``voice`` is one of :data:`VOICES` (its pitch and tract), ``pitch`` and ``tract``
    factors on them; ``source`` an index into :data:`SOURCES`.
    """
    from unitalker.synth import tts

    if voice not in VOICES:
        raise ValueError(f"unknown formant voice {voice!r}; voices: {sorted(VOICES)}")
    if not 0 <= int(source) < len(SOURCES):
        raise ValueError(f"formant source index {source} is outside 0-{len(SOURCES) - 1}")
    base_f0, base_tract = VOICES[voice]
    rng = np.random.default_rng(int(seed))
    timed = tts.synthesize(text, accent, rate=int(rate), seed=int(seed))
    tl = jitter_durations(timed.phonemes, rng)
    audio = render_timeline(
        tl,
        f0=base_f0 * float(pitch),
        tract=base_tract * float(tract),
        bw_scale=float(bw_scale),
        transition_ms=float(transition_ms),
        source=SOURCES[int(source)],
        spread=float(spread),
        seed=int(rng.integers(2**31)),
    )
    return SynthResult(audio, FORMANT_SR, tl, text=text, voice=voice)

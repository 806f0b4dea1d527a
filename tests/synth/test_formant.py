"""The formant engine renders a phone timeline with the formants, the loudness and the
randomised tables it documents."""

from __future__ import annotations

import numpy as np
import pytest

from unitalker.synth import formant

SR = formant.FORMANT_SR
# a steady /A:/ and /i:/ between pauses, each 0.4 s
STEADY = [("_", 0.0, 0.1), ("'A:", 0.1, 0.5), ("_", 0.5, 0.6), ("i:", 0.6, 1.0), ("_", 1.0, 1.1)]


def _formants(x: np.ndarray, order: int = 14) -> list[float]:
    """Resonance frequencies (Hz, ascending, above 150 Hz) of an LPC fit of ``x``."""
    from scipy.linalg import solve_toeplitz

    x = np.append(x[0], x[1:] - 0.95 * x[:-1]) * np.hamming(len(x))
    r = np.correlate(x, x, "full")[len(x) - 1 : len(x) + order]
    a = solve_toeplitz(r[:-1], -r[1:])
    roots = [z for z in np.roots(np.concatenate([[1.0], a])) if z.imag > 0 and abs(z) > 0.9]
    return sorted(f for f in np.angle(roots) * SR / (2 * np.pi) if f > 150)


def _steady(audio: np.ndarray, s: float, e: float) -> np.ndarray:
    return audio[int(s * SR) : int(e * SR)].astype(np.float64)


@pytest.mark.parametrize("source", formant.SOURCES)
def test_steady_vowels_have_the_tables_formants(source):
    audio = formant.render_timeline(STEADY, source=source, spread=0.0, seed=1)
    for (s, e), key in (((0.25, 0.45), "A:"), ((0.75, 0.95), "i:")):
        want = formant.VOWELS[key][0]
        got = _formants(_steady(audio, s, e))
        # F1 within 15 % (an LPC fit of a 110 Hz voice between two harmonics), F2 within 8 %
        for f, tol in zip(want[:2], (0.15, 0.08), strict=True):
            assert min(abs(g - f) / f for g in got) < tol, (key, f, got)


def test_the_vocal_tract_factor_scales_the_formants():
    a = formant.render_timeline(STEADY, spread=0.0, seed=1)
    b = formant.render_timeline(STEADY, spread=0.0, tract=1.2, seed=1)
    f2 = formant.VOWELS["i:"][0][1]
    got_a, got_b = (_formants(_steady(x, 0.75, 0.95)) for x in (a, b))
    near = min(got_a, key=lambda g: abs(g - f2))
    assert min(abs(g - 1.2 * near) / near for g in got_b) < 0.05


def test_sound_follows_the_timeline():
    """Vowels are loud in their intervals; pauses and the closure of /p/ are quiet."""
    tl = [("_", 0.0, 0.2), ("'a", 0.2, 0.4), ("p", 0.4, 0.55), ("a", 0.55, 0.75), ("_", 0.75, 1.0)]
    audio = formant.render_timeline(tl, seed=2)

    def rms(s, e):
        return float(np.sqrt(np.mean(_steady(audio, s, e) ** 2)))

    vowel = min(rms(0.25, 0.35), rms(0.6, 0.7))
    assert rms(0.0, 0.15) < 0.01 * vowel  # the lead pause, before any transition
    assert rms(0.82, 1.0) < 0.01 * vowel  # the tail, once the resonators have rung out
    assert rms(0.43, 0.48) < 0.1 * vowel  # /p/'s closure
    assert len(audio) == round(1.0 * SR)


def test_tables_are_drawn_per_seed_and_reproducible():
    tl = [("_", 0.0, 0.1), ("'aI", 0.1, 0.4), ("s", 0.4, 0.55), ("_", 0.55, 0.7)]
    a = formant.render_timeline(tl, seed=5)
    np.testing.assert_array_equal(a, formant.render_timeline(tl, seed=5))
    assert not np.array_equal(a, formant.render_timeline(tl, seed=6))
    # the drawn table moves the formants, not only the noise: a steady vowel, no noise
    fa = _formants(_steady(formant.render_timeline(STEADY, spread=0.1, seed=1), 0.25, 0.45))
    fb = _formants(_steady(formant.render_timeline(STEADY, spread=0.1, seed=2), 0.25, 0.45))
    assert max(abs(x - y) for x, y in zip(fa[:2], fb[:2], strict=True)) > 20


def test_synthesize_times_every_phone_and_refuses_bad_settings():
    res = formant.synthesize("My big cat.", "child", rate=170, source=2, seed=4)
    assert res.sr == SR and res.phonemes[0][1] == 0.0
    assert res.phonemes[-1][2] == pytest.approx(len(res.audio) / SR, abs=1.0 / SR)
    keys = [formant.phone_key(p) for p, _, _ in res.phonemes]
    known = set(formant.VOWELS) | set(formant.CONSONANTS) | {"h", ";"}
    assert all(k in known or k.startswith("_") for k in keys), keys
    with pytest.raises(ValueError, match="voice"):
        formant.synthesize("Hi.", "robot")
    with pytest.raises(ValueError, match="source"):
        formant.render_timeline(STEADY, source="noise")
    with pytest.raises(ValueError, match="source index"):
        formant.synthesize("Hi.", source=len(formant.SOURCES))
    with pytest.raises(ValueError, match="empty"):
        formant.render_timeline([])


def test_no_clicks_where_the_noise_resonator_rests():
    """A fricative, then nasals and vowels: the frication resonator, idle through the
    nasals, does not build up a state that rings out later (it did once: a nasal tuned it
    to 0 Hz and 0 Hz wide, and a clip's peak was 150x its 99.9th percentile)."""
    tl = [("_", 0.0, 0.1), ("s", 0.1, 0.25), ("m", 0.25, 0.45), ("'a", 0.45, 0.7)]
    tl += [("n", 0.7, 0.9), ("aI", 0.9, 1.2), ("_", 1.2, 1.4)]
    for seed in range(4):
        x = np.abs(formant.render_timeline(tl, source="rosenberg", seed=seed))
        assert x.max() < 2.0 * np.percentile(x, 99.9), seed

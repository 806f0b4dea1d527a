"""eSpeak NG through ctypes: timelines, languages, singing, determinism."""

from __future__ import annotations

import numpy as np
import pytest

from unitalker.synth import tts


@pytest.mark.parametrize(
    "voice,text",
    [
        ("en-us+m2", "My mom bought a pie."),
        ("es+f1", "Hola amigo."),
        ("de", "Guten Morgen."),
        ("fr+m3", "Bonjour."),
        ("cmn-latn-pinyin", "ni3 hao3 ma1."),
    ],
)
def test_timeline_covers_audio(voice, text):
    r = tts.synthesize(text, voice)
    assert r.sr == 22050 and r.audio.dtype == np.float32 and r.duration > 0.3
    t = r.phonemes
    assert t[0][1] == 0.0 and abs(t[-1][2] - r.duration) < 1e-9
    assert all(abs(a[2] - b[1]) < 1e-9 for a, b in zip(t, t[1:], strict=False))  # contiguous
    assert sum(not p.startswith("_") for p, _, _ in t) >= 3
    assert r.words


def test_bilabials_in_timeline():
    r = tts.synthesize("mama papa", "en")
    names = [p for p, _, _ in r.phonemes]
    assert "m" in names and "p" in names


def test_deterministic_regardless_of_history():
    a = tts.synthesize("The blue pilot.", "en+m1", rate=170, pitch=40)
    tts.synthesize("Something else first.", "de+f4", rate=200)
    b = tts.synthesize("The blue pilot.", "en+m1", rate=170, pitch=40)
    assert np.array_equal(a.audio, b.audio) and a.phonemes == b.phonemes


def test_sing_holds_vowels():
    durs = [0.5, 0.8, 0.4]
    r = tts.sing(["la", "mo", "pi"], [57, 60, 64], durs, "es")
    assert r.duration >= sum(durs)
    vowels = [(p, e - s) for p, s, e in r.phonemes if tts.is_vowel(p)]
    assert len(vowels) == 3 and vowels[1][1] > 0.55
    t = r.phonemes
    assert all(abs(a[2] - b[1]) < 1e-9 for a, b in zip(t, t[1:], strict=False))

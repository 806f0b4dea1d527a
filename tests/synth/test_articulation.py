"""Timeline -> articulation -> rendered conventions agree with phonetics."""

from __future__ import annotations

import numpy as np
import pytest

from unitalker.conventions import ARKIT52_EMOTALK
from unitalker.geometry import vertices
from unitalker.synth import conventions as sc
from unitalker.synth.articulation import (
    CURVES,
    SpeakerStyle,
    phoneme_to_viseme,
    timeline_to_articulation,
)
from unitalker.synth.mesh import mouth_gap

FPS = 100
# hand-written: silence, "m a p i b u", silence
TIMELINE = [
    ("_", 0.0, 0.4),
    ("m", 0.4, 0.52),
    ("'a:", 0.52, 0.75),
    ("p", 0.75, 0.87),
    ("i:", 0.87, 1.1),
    ("b", 1.1, 1.22),
    ("u:", 1.22, 1.45),
    ("_", 1.45, 2.2),
]


def _mid(a: float, b: float) -> int:
    return round(0.5 * (a + b) * FPS)


@pytest.fixture(scope="module")
def curves():
    return timeline_to_articulation(TIMELINE, FPS, SpeakerStyle(jaw_lead_s=0.0), seed=3)


def test_viseme_mapping():
    assert phoneme_to_viseme("'aI") == "aa"
    assert phoneme_to_viseme("tS") == "CH"
    assert phoneme_to_viseme("_:") == "sil"
    assert phoneme_to_viseme("m") == phoneme_to_viseme("b") == "PP"
    assert phoneme_to_viseme("ʃ") == "CH" and phoneme_to_viseme("θ") == "TH"
    assert phoneme_to_viseme("f") == "FF" and phoneme_to_viseme("u:") == "ou"


def test_curves_shape_and_determinism(curves):
    assert set(curves) == set(CURVES)
    n = round(2.2 * FPS)
    assert all(v.shape == (n,) and v.dtype == np.float32 for v in curves.values())
    again = timeline_to_articulation(TIMELINE, FPS, SpeakerStyle(jaw_lead_s=0.0), seed=3)
    assert all(np.array_equal(curves[k], again[k]) for k in CURVES)


def test_bilabials_close_lips(curves):
    for ph, s, e in TIMELINE:
        if ph in ("m", "p", "b"):
            k = _mid(s, e)
            assert curves["lip_close"][k] > 0.9, ph
            assert curves["jaw_open"][k] < 0.2, ph


def test_open_vowel_opens_jaw_more(curves):
    a = curves["jaw_open"][_mid(0.52, 0.75)]
    i = curves["jaw_open"][_mid(0.87, 1.1)]
    u = curves["jaw_open"][_mid(1.22, 1.45)]
    assert a > 0.5 and a > i + 0.2 and a > u + 0.2
    assert curves["lip_round"][_mid(1.22, 1.45)] > 0.6  # u rounds
    assert curves["lip_spread"][_mid(0.87, 1.1)] > 0.4  # i spreads
    assert curves["lip_close"][_mid(0.52, 0.75)] < 0.3  # vowels open the lips


def test_silence_is_neutral(curves):
    for k in ("jaw_open", "lip_close", "lip_round", "lip_spread", "lower_lip_tuck", "tongue_out"):
        assert curves[k][: round(0.15 * FPS)].max() < 0.05, k
        assert curves[k][round(1.95 * FPS) :].max() < 0.05, k


def test_blinks_timing():
    c = timeline_to_articulation([("_", 0.0, 30.0)], 50, seed=1)
    closed = c["blink_l"] > 0.5
    onsets = np.nonzero(closed[1:] & ~closed[:-1])[0]
    assert 3 <= len(onsets) <= 16  # every 2-10 s
    assert c["jaw_open"].max() < 1e-3


def test_rendered_conventions_agree(curves):
    idx = {n: i for i, n in enumerate(ARKIT52_EMOTALK)}
    w = sc.render(sc.ARKIT, curves)
    mid_p, mid_a = _mid(0.75, 0.87), _mid(0.52, 0.75)
    assert w[mid_a, idx["jawOpen"]] > 0.5 and w[mid_a, idx["mouthClose"]] < 0.2
    # at p: the lips are closed against the jaw: mouthClose ~ jawOpen
    assert abs(w[mid_p, idx["mouthClose"]] - w[mid_p, idx["jawOpen"]]) < 0.02
    for conv in (sc.HEAD, sc.HEAD2, sc.ARKIT, sc.FLAME):
        data = sc.render(conv, curves, identity_seed=7 if conv in (sc.HEAD, sc.HEAD2) else None)
        verts = vertices(conv, data)
        topo = sc.TOPOLOGY_OF[conv]
        pair = tuple(
            int(i) for i in sc.asset(topo)["slit_pairs"][len(sc.asset(topo)["slit_pairs"]) // 2]
        )
        gap = mouth_gap(verts, pair)
        assert gap[mid_a] > 0.015, conv  # ~1.5 cm+ for an open /a/
        for ph, s, e in TIMELINE:
            if ph in ("m", "p", "b"):
                assert abs(gap[_mid(s, e)]) < 0.002, (conv, ph)
        assert abs(gap[:15]).max() < 1e-3, conv  # neutral in silence
        assert gap[_mid(0.87, 1.1)] < gap[mid_a]

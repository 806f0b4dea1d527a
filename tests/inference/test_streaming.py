"""Streamer: push/flush API, frame counts, and closeness to the offline result.

A tiny random model is far more sensitive to cut context than a trained one (its outputs
jump about as much from frame to frame as they span), so the checks are relative: with a
look-ahead that covers the clip the stream equals offline; the error shrinks as the
look-ahead grows; with 500 ms it stays below the model's own frame-to-frame motion.
"""

from __future__ import annotations

import numpy as np
import pytest
from tests.inference.infer_testdata import HEADS, speechy, tiny_wavlm

from unitalker.audio import frame_count
from unitalker.inference.animate import animate
from unitalker.inference.streaming import Streamer, stream_array


@pytest.fixture(scope="module")
def setup():
    model = tiny_wavlm()
    wav = speechy(4.0, seed=5)
    return model, wav, animate(model, wav, window=0)


def _mean_err(out, offline):
    return float(np.mean([np.abs(out[h] - offline[h].data).mean() for h in out]))


def test_stream_equals_offline_with_full_lookahead(setup):
    model, wav, offline = setup
    out, _ = stream_array(Streamer(model, lookahead=10.0, context=10.0), wav, chunk=0.25)
    for h in HEADS:
        np.testing.assert_allclose(out[h], offline[h].data, atol=1e-5)


def test_push_returns_only_final_frames(setup):
    model, wav, _ = setup
    s = Streamer(model, heads=["3DETF_blendshape_weight"], lookahead=0.2)
    got = 0
    for i in range(0, 16000 * 2, 1600):
        out = s.push(wav[i : i + 1600])
        assert set(out) == {"3DETF_blendshape_weight"}
        got += len(out["3DETF_blendshape_weight"])
        # no frame is returned before 200 ms of audio after it has arrived
        assert got <= max(0, (i + 1600 - 3200) * 30 / 16000) + 1e-9
    assert got > 0
    rest = s.flush()["3DETF_blendshape_weight"]
    assert got + len(rest) == frame_count(32000, 30.0)
    assert s.flush()["3DETF_blendshape_weight"].shape == (0, 52)
    with pytest.raises(RuntimeError):
        s.push(wav[:100])


def test_tiny_pushes_and_tiny_streams(setup):
    model = setup[0]
    s = Streamer(model, lookahead=0.08)
    for _ in range(20):
        s.push(np.zeros(37, np.float32))
    rest = s.flush()
    assert {h: len(v) for h, v in rest.items()} == {h: frame_count(740, s.fps[h]) for h in s.heads}
    with pytest.raises(ValueError, match="NaN"):
        Streamer(model).push(np.array([np.nan], np.float32))


def test_error_shrinks_with_lookahead(setup):
    model, wav, offline = setup
    errs = {}
    for la in (0.08, 0.5):
        out, _ = stream_array(Streamer(model, lookahead=la, context=2.0), wav, chunk=0.25)
        for h in HEADS:
            assert out[h].shape == offline[h].data.shape
        errs[la] = _mean_err(out, offline)
    print("streaming mean abs error vs offline per look-ahead:", errs)
    motion = float(np.mean([np.abs(np.diff(offline[h].data, axis=0)).mean() for h in HEADS]))
    assert errs[0.5] <= errs[0.08] + 1e-6
    assert errs[0.5] < motion  # below the model's own mean frame-to-frame motion

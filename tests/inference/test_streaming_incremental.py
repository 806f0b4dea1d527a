"""Incremental streaming (cached encoder features) against recomputing every window."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from tests.conftest import randomize, tiny_hf_config, tiny_model_config
from tests.inference.infer_testdata import speechy, tiny_wavlm

from unitalker.inference.streaming import Streamer, stream_array
from unitalker.models.config import EncoderConfig
from unitalker.models.unitalker import UniTalker


def _model(family: str, **hf):
    cfg = tiny_model_config(family)
    if hf:
        enc = EncoderConfig(
            family=family, hf_config={**tiny_hf_config(family), **hf}, do_normalize=False
        )
        cfg = dataclasses.replace(cfg, encoder=enc)
    torch.manual_seed(0)
    return randomize(UniTalker(cfg)).eval()


def _both(model, wav, **kw):
    inc = Streamer(model, incremental=True, **kw)
    ref = Streamer(model, incremental=False, **kw)
    a, _ = stream_array(inc, wav, chunk=0.1)
    b, _ = stream_array(ref, wav, chunk=0.1)
    return a, b


def test_exactly_local_extractor_equals_recompute():
    # A layer-norm conv stack without input normalisation is exactly local: caching its
    # frames changes nothing but float summation order.
    model = _model("wav2vec2", feat_extract_norm="layer")
    assert model.audio_encoder.feature_edge() == 0
    a, b = _both(model, speechy(3.1, seed=2), lookahead=0.1, context=1.0)
    for h in a:
        assert a[h].shape == b[h].shape
        np.testing.assert_allclose(a[h], b[h], atol=1e-5, rtol=1e-5)


def test_builtin_incremental_close_to_recompute():
    # The built-in encoder differs in two stated ways: running (not per-window) input
    # standardisation, and true audio (not zero padding) left of each window's first frames.
    # Tolerance: 5 % of the outputs' range on a random model (measured ~1 %).
    model = _model("builtin")
    assert model.audio_encoder.feature_edge() == 2
    a, b = _both(model, speechy(3.1, seed=3), lookahead=0.1, context=1.0)
    for h in a:
        assert a[h].shape == b[h].shape
        spread = float(b[h].max() - b[h].min())
        assert float(np.abs(a[h] - b[h]).max()) <= 0.05 * spread, h


def test_builtin_restandardises_after_a_leading_silence(monkeypatch):
    # A stream that starts with 0.8 s of near silence: the first running deviation is ~100x
    # too small for the speech that follows. The cached frames are extracted again with the
    # new statistics, so the stream stays within 5 % of recomputing every window; kept
    # with their first scale (refresh off), they are far off.
    import unitalker.inference.streaming as streaming

    model = _model("builtin")
    rng = np.random.default_rng(0)
    quiet = 1e-3 * rng.standard_normal(int(0.8 * 16000)).astype(np.float32)
    wav = np.concatenate([quiet, speechy(2.2, seed=3)])
    worst, tol0 = {}, streaming.RESTANDARDISE
    for tol in (tol0, float("inf")):
        monkeypatch.setattr(streaming, "RESTANDARDISE", tol)
        a, b = _both(model, wav, lookahead=0.1, context=1.0)
        worst[tol] = max(
            float(np.abs(a[h] - b[h]).max()) / float(b[h].max() - b[h].min()) for h in a
        )
    assert worst[tol0] <= 0.05, worst
    assert worst[float("inf")] > 0.1, worst
    monkeypatch.setattr(streaming, "RESTANDARDISE", tol0)
    s = Streamer(model, incremental=True, lookahead=0.1, context=1.0)
    stream_array(s, wav, chunk=0.1)
    assert s.restandardised > 0


def test_incremental_extracts_only_new_frames():
    model = _model("builtin")
    s = Streamer(model, incremental=True, lookahead=0.1, context=1.0)
    calls = []
    enc = model.audio_encoder
    orig = enc.extract

    def spy(x, lengths=None):
        calls.append(x.shape[1])
        return orig(x, lengths)

    enc.extract = spy
    try:
        stream_array(s, speechy(3.0, seed=4), chunk=0.1)
    finally:
        del enc.extract
    # after the first runs every extraction covers one chunk plus the edge, not the context
    assert max(calls[5:]) <= 1600 + 2 * 2 * 320 + 400


def test_incremental_needs_a_local_extractor():
    with pytest.raises(ValueError, match="local feature extractor"):
        Streamer(tiny_wavlm(), incremental=True)  # WavLM's group norm over time
    assert not Streamer(tiny_wavlm()).incremental  # the default falls back to recompute


def test_streamed_model_for_evaluation():
    # what `unitalker bench --synth-data` evaluates: the model streamed, with evaluate's call
    from unitalker.inference.bench import _StreamedModel

    model = _model("builtin")
    h = "3DETF_blendshape_weight"
    wav = torch.from_numpy(speechy(1.3, seed=6))[None]
    tpl = torch.full((1, 52), 0.25)
    out = _StreamedModel(model, lookahead=0.1, chunk=0.05)(
        wav, heads=[h], identity=torch.tensor([0]), templates={h: tpl}, frames={h: [40]}
    )
    ref = model(wav, heads=[h], identity=0, templates={h: tpl}, frames={h: [40]})
    assert out[h].motion.shape == ref[h].motion.shape == (1, 40, 52)
    spread = float(ref[h].motion.max() - ref[h].motion.min())
    assert float((out[h].motion - ref[h].motion).abs().max()) < 0.5 * spread

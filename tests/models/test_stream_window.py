"""The built-in encoder's windowed mode (``EncoderConfig.stream_window``): what a frame
may see, padding, the unchanged full path, training draws, checkpoints and streaming."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from tests.conftest import randomize, tiny_model_config
from tests.inference.infer_testdata import speechy

from unitalker.config import ConfigError, from_dict
from unitalker.inference.streaming import Streamer, stream_array
from unitalker.models.config import EncoderConfig
from unitalker.models.unitalker import UniTalker

LEFT, RIGHT, LAYERS = 3, 1, 2


def _model(window=(LEFT, RIGHT), dropout=0.1, seed=0) -> UniTalker:
    cfg = tiny_model_config("builtin")
    enc = dataclasses.replace(cfg.encoder, n_layers=LAYERS, stream_window=window, dropout=dropout)
    torch.manual_seed(seed)
    return randomize(UniTalker(dataclasses.replace(cfg, encoder=enc))).eval()


def _feats(model: UniTalker, t: int = 60, b: int = 2) -> torch.Tensor:
    return torch.randn(
        b, t, model.audio_encoder.feature_size, generator=torch.Generator().manual_seed(1)
    )


def test_windowed_frame_sees_only_its_window():
    model = _model()
    enc = model.audio_encoder
    x = _feats(model)
    k = enc.pos_conv.weight.shape[-1]
    ahead = RIGHT * (LAYERS + 1)  # the positional conv and each layer reach RIGHT further
    back = k // 2 + LEFT * LAYERS  # the conv keeps its past taps
    t = 30
    with torch.no_grad():
        ref = enc.contextualize(x, windowed=True)
        late = x.clone()
        late[:, t + ahead + 1 :] += 3.0
        out = enc.contextualize(late, windowed=True)
        assert torch.equal(out[:, : t + 1], ref[:, : t + 1])
        assert not torch.allclose(out[:, t + 1], ref[:, t + 1])
        early = x.clone()
        early[:, : t - back] += 3.0
        out = enc.contextualize(early, windowed=True)
        assert torch.allclose(out[:, t:], ref[:, t:], atol=1e-6)
        assert not torch.allclose(out[:, t - 1], ref[:, t - 1])
        # full attention sees everything: the late change reaches frame 0
        full = enc.contextualize(x)
        assert not torch.allclose(enc.contextualize(late)[:, 0], full[:, 0])


def test_windowed_padding_equals_item_alone():
    model = _model()
    enc = model.audio_encoder
    x = _feats(model)
    mask = torch.ones(2, 60, dtype=torch.bool)
    mask[1, 37:] = False  # a short item: padded queries whose window holds only padding
    with torch.no_grad():
        batched = enc.contextualize(x, mask, windowed=True)
        alone = enc.contextualize(x[1:, :37], windowed=True)
    assert torch.isfinite(batched).all()
    torch.testing.assert_close(batched[1, :37], alone[0], atol=1e-5, rtol=1e-5)


def test_full_path_unchanged_by_a_window():
    with_window, without = _model(), _model(window=None)
    without.load_state_dict(with_window.state_dict())
    wav = torch.from_numpy(speechy(1.5, seed=5))[None]
    with torch.no_grad():
        a, b = with_window(wav), without(wav)
        w = with_window(wav, windowed=True)
    for h in a:
        assert torch.equal(a[h].motion, b[h].motion)
    assert any(not torch.allclose(w[h].motion, a[h].motion) for h in a)
    with pytest.raises(ValueError, match="no stream_window"):
        without(wav, windowed=True)


def test_training_draws_windowed_passes():
    model = _model(dropout=0.0)
    enc = model.audio_encoder
    x = _feats(model)
    with torch.no_grad():
        windowed, full = enc.contextualize(x, windowed=True), enc.contextualize(x)
        enc.train()
        enc.stream_window_p = 1.0
        assert torch.allclose(enc.contextualize(x), windowed, atol=1e-6)
        enc.stream_window_p = 0.0
        assert torch.allclose(enc.contextualize(x), full, atol=1e-6)
        enc.stream_window_p = 0.5
        torch.manual_seed(0)
        draws = [torch.allclose(enc.contextualize(x), windowed, atol=1e-6) for _ in range(40)]
        assert 5 < sum(draws) < 35
        enc.eval()  # evaluation never draws
        assert torch.allclose(enc.contextualize(x), full, atol=1e-6)


def test_window_round_trips_and_old_configs_load(tmp_path):
    model = _model()
    folder = model.save_pretrained(tmp_path / "windowed")
    loaded = UniTalker.from_pretrained(folder)
    assert loaded.config.encoder.stream_window == (LEFT, RIGHT)
    assert loaded.audio_encoder.stream_window == (LEFT, RIGHT)
    wav = torch.from_numpy(speechy(1.0, seed=6))[None]
    with torch.no_grad():
        a, b = model(wav, windowed=True), loaded(wav, windowed=True)
    for h in a:
        torch.testing.assert_close(a[h].motion, b[h].motion)
    # a config written before the field existed has no window
    assert from_dict(EncoderConfig, {"family": "builtin"}).stream_window is None


@pytest.mark.parametrize(
    "bad, match",
    [
        ({"family": "builtin", "stream_window": [3]}, "two frame counts"),
        ({"family": "builtin", "stream_window": [3, -1]}, "two frame counts"),
        ({"family": "wavlm", "stream_window": [3, 1]}, "built-in encoder only"),
    ],
)
def test_bad_windows_refused(bad, match):
    with pytest.raises(ConfigError, match=match):
        from_dict(EncoderConfig, bad)


def test_streamer_runs_windowed_when_asked():
    model, plain = _model(), _model(window=None)
    assert Streamer(model, windowed=True).windowed
    assert not Streamer(model).windowed and not Streamer(plain).windowed
    with pytest.raises(ValueError, match="stream_window"):
        Streamer(plain, windowed=True)


def test_windowed_stream_close_to_windowed_offline():
    # With a look-ahead past the window's reach and a context past its left reach, a
    # streamed frame sees what the windowed offline run shows it; what is left is the
    # running input standardisation. Without the window the stream misses the clip's far
    # context, and is further from its offline run. 3 s: whole frames for every head.
    model = _model(seed=1)
    wav = speechy(3.0, seed=8)
    err = {}
    for windowed in (True, False):
        s = Streamer(model, lookahead=0.3, context=1.0, windowed=windowed)
        streamed, _ = stream_array(s, wav, chunk=0.1)
        with torch.no_grad():
            offline = model(torch.from_numpy(wav)[None], windowed=windowed)
        for h, a in streamed.items():
            b = offline[h].motion[0].numpy()
            assert a.shape == b.shape
            err[h, windowed] = float(np.abs(a - b).max() / np.ptp(b))
    for h in model.heads:
        assert err[h, True] <= 0.05, (h, err)
        assert err[h, True] < err[h, False], (h, err)

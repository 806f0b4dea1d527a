from __future__ import annotations

import numpy as np
import pytest
import torch
from tests.conftest import randomize, tiny_hf_config, tiny_model_config

from unitalker.models.adaptor import adapt, interpolate
from unitalker.models.heads import PCALayer
from unitalker.models.unitalker import UniTalker


@pytest.mark.parametrize("position", [0, 1, 2])
@pytest.mark.parametrize("fps", [25.0, 30.0, 60.0])
def test_adaptor_frame_counts(position, fps):
    torch.manual_seed(0)
    model = UniTalker(
        tiny_model_config(position=position, heads=["3DETF_blendshape_weight"])
    ).eval()
    for seconds in (0.5, 1.37, 2.0):
        n = int(seconds * 16000)
        out = model(torch.randn(1, n), fps={"3DETF_blendshape_weight": fps})[
            "3DETF_blendshape_weight"
        ]
        assert out.motion.shape[1] == round(n / 16000 * fps)


def test_interpolate_matches_align_corners_linear():
    x = torch.arange(5, dtype=torch.float32).reshape(1, 5, 1)
    y = interpolate(x, 9)
    assert torch.allclose(y[0, :, 0], torch.linspace(0, 4, 9))
    # per-sample adaptation equals separate interpolation
    z = torch.randn(2, 7, 3)
    out = adapt(z, [7, 4], [10, 6])
    assert torch.allclose(out[1, :6], interpolate(z[1:, :4], 6)[0])
    assert torch.all(out[1, 6:] == 0)


@pytest.mark.parametrize("family", ["builtin", "wavlm", "wav2vec2", "hubert"])
@pytest.mark.parametrize("position", [0, 1, 2])
def test_one_multihead_call_equals_per_head_calls(family, position):
    torch.manual_seed(0)
    model = randomize(UniTalker(tiny_model_config(family, position=position))).eval()
    audio = torch.randn(1, 24000)
    with torch.no_grad():
        together = model(audio, identity=1)
        for h in model.heads:
            alone = model(audio, heads=[h], identity=1)[h]
            assert torch.allclose(together[h].motion, alone.motion, atol=1e-6)
    assert together["BIWI_23370_vertices"].motion.shape[1] == 38  # 25 fps
    assert together["FLAME_5023_vertices"].motion.shape[1] == 45  # 30 fps


def test_padded_batch_equals_single_items():
    torch.manual_seed(0)
    model = randomize(UniTalker(tiny_model_config("builtin"))).eval()
    a, b = torch.randn(16000), torch.randn(11000)
    batch = torch.zeros(2, 16000)
    batch[0], batch[1, :11000] = a, b
    with torch.no_grad():
        out = model(batch, lengths=[16000, 11000], identity=torch.tensor([0, 2]))
        single = model(b[None], identity=2)
    for h in model.heads:
        n = single[h].motion.shape[1]
        assert out[h].lengths[1] == n
        assert torch.allclose(out[h].motion[1, :n], single[h].motion[0], atol=1e-4), h


def test_identity_changes_output_and_pivot_is_default(tiny_model):
    audio = torch.randn(1, 16000)
    with torch.no_grad():
        p = tiny_model(audio)["FLAME_5023_vertices"].motion
        p2 = tiny_model(audio, identity="pivot")["FLAME_5023_vertices"].motion
        i0 = tiny_model(audio, identity="T:0")["FLAME_5023_vertices"].motion
    assert torch.equal(p, p2)
    assert not torch.allclose(p, i0)
    with pytest.raises(KeyError, match="unknown identity"):
        tiny_model.identity_index("nobody")
    with pytest.raises(KeyError, match="no head"):
        tiny_model(audio, heads=["nope"])


def test_transformer_decoder_runs_and_masks():
    torch.manual_seed(0)
    model = randomize(UniTalker(tiny_model_config(decoder="transformer"))).eval()
    out = model(torch.randn(2, 16000), lengths=[16000, 9000])
    for h in out.values():
        assert torch.isfinite(h.motion).all()
        assert torch.all(h.motion[1, h.lengths[1] :] == 0)


def test_pca_encode_decode_round_trip(rng):
    d, k = 30, 6
    basis, _ = np.linalg.qr(rng.normal(size=(d, k)))
    arrays = {
        "components_to_data": basis.T.astype(np.float32),
        "original_data_mean": rng.normal(size=d).astype(np.float32),
    }
    layer = PCALayer.from_arrays(arrays)
    coeffs = torch.randn(4, 5, k)
    data = layer.decode(coeffs)
    assert torch.allclose(layer.encode(data), coeffs, atol=1e-5)
    assert torch.allclose(layer.decode(layer.encode(data)), data, atol=1e-5)


def test_hf_composition_equals_hf_forward():
    """Our three-step split of an HF encoder gives the HF model's own output."""
    from unitalker.models.encoders import HFAudioEncoder

    torch.manual_seed(0)
    for family in ("wavlm", "wav2vec2", "hubert"):
        enc = HFAudioEncoder.from_config(family, tiny_hf_config(family)).eval()
        x = torch.randn(1, 16000)
        with torch.no_grad():
            ours = enc.contextualize(enc.extract(x))
            ref = enc.model(x).last_hidden_state
        assert torch.allclose(ours, ref, atol=1e-5), family

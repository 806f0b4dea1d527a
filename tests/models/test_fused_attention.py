"""The fused WavLM attention equals HF's reference attention."""

from __future__ import annotations

import copy

import pytest
import torch

from unitalker.inference.bench import build_bench_model
from unitalker.models.fused_attention import (
    FusedWavLMAttention,
    fuse_wavlm_attention,
    unfuse_wavlm_attention,
)


def _pair():
    model = build_bench_model("tiny")
    enc = model.audio_encoder
    fused = copy.deepcopy(enc).eval()
    ref = copy.deepcopy(enc).eval()
    assert unfuse_wavlm_attention(ref) == 2  # the wrapper fuses WavLM on construction
    return fused, ref


@pytest.fixture(scope="module")
def encoders():
    return _pair()


@pytest.mark.parametrize("masked", [False, True])
def test_fused_equals_reference(encoders, masked):
    fused, ref = encoders
    g = torch.Generator().manual_seed(0)
    feats = torch.randn(2, 37, fused.feature_size, generator=g)
    mask = None
    if masked:
        mask = torch.ones(2, 37, dtype=torch.bool)
        mask[1, 20:] = False
    with torch.no_grad():
        a = fused.contextualize(feats, mask)
        b = ref.contextualize(feats, mask)
    valid = slice(None) if mask is None else mask
    assert torch.allclose(a[valid], b[valid], atol=1e-5, rtol=1e-5)


def test_fused_gradients_match(encoders):
    fused, ref = encoders
    feats = torch.randn(1, 21, fused.feature_size, generator=torch.Generator().manual_seed(1))
    grads = []
    for enc in (fused, ref):
        enc.zero_grad()
        enc.contextualize(feats).square().sum().backward()
        attn = enc.model.encoder.layers[0].attention
        grads.append((attn.q_proj.weight.grad.clone(), attn.gru_rel_pos_const.grad.clone()))
    for ga, gb in zip(*grads, strict=True):
        assert torch.allclose(ga, gb, atol=1e-4, rtol=1e-4)


def test_fuse_keeps_parameter_names():
    model = build_bench_model("tiny")
    names = [n for n, _ in model.named_parameters()]
    assert fuse_wavlm_attention(model) == 0  # already fused: idempotent
    unfuse_wavlm_attention(model)
    assert [n for n, _ in model.named_parameters()] == names
    assert fuse_wavlm_attention(model) == 2
    attn = model.audio_encoder.model.encoder.layers[1].attention
    assert isinstance(attn, FusedWavLMAttention())


def test_packed_weights_follow_changes():
    fused, ref = _pair()
    feats = torch.randn(1, 15, fused.feature_size, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        fused.contextualize(feats)  # packs and caches q / k / v
        for enc in (fused, ref):
            enc.model.encoder.layers[0].attention.k_proj.weight.mul_(1.5)
        assert torch.allclose(fused.contextualize(feats), ref.contextualize(feats), atol=1e-5)

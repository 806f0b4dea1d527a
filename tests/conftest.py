"""Shared fixtures: tiny random models built from configs, never downloaded."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # tests never touch the network
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
torch.set_num_threads(2)

TINY_HF = {
    "hidden_size": 32,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "intermediate_size": 64,
    "conv_dim": (16, 16, 16, 16, 16, 16, 16),
    "num_conv_pos_embeddings": 16,
    "num_conv_pos_embedding_groups": 2,
    "mask_time_prob": 0.0,
    "layerdrop": 0.0,
}


def tiny_hf_config(family: str) -> dict:
    cfg = dict(TINY_HF)
    if family == "wavlm":
        cfg["num_buckets"] = 32
        cfg["max_bucket_distance"] = 100
    return cfg


def tiny_model_config(
    family: str = "builtin", heads=None, position: int = 1, decoder: str = "tcn", n_ids: int = 4
):
    from unitalker.models.config import DecoderConfig, EncoderConfig, ModelConfig
    from unitalker.models.unitalker import default_heads

    if family == "builtin":
        enc = EncoderConfig(family="builtin", hidden_size=32, n_layers=1, n_heads=2, n_mels=20)
    else:
        enc = EncoderConfig(family=family, hf_config=tiny_hf_config(family))
    heads = heads or ["FLAME_5023_vertices", "3DETF_blendshape_weight", "BIWI_23370_vertices"]
    ids = tuple(f"T:{i}" for i in range(n_ids - 1)) + ("pivot",)
    return ModelConfig(
        encoder=enc,
        decoder=DecoderConfig(kind=decoder, hidden=24, id_dim=8),
        heads=default_heads(heads, 16),
        identities=ids,
        adaptor_position=position,
    )


def randomize(model: torch.nn.Module, seed: int = 0, scale: float = 0.05) -> torch.nn.Module:
    """Give zero-initialised heads / PCA / templates random values so outputs differ."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in list(model.named_parameters()) + list(model.named_buffers()):
            if name.startswith(("out_head_dict", "pca_layer_dict", "templates")):
                p.copy_(torch.randn(p.shape, generator=g) * scale)
    return model


@pytest.fixture
def rng():
    return np.random.default_rng(0)


@pytest.fixture
def tiny_model():
    from unitalker.models.unitalker import UniTalker

    torch.manual_seed(0)
    return randomize(UniTalker(tiny_model_config())).eval()


# ---- fuzzing: a few hundred cases per target normally, `--fuzz N` (or UNITALKER_FUZZ=N)
# for the long run. Hypothesis is seeded (derandomize) so every run tries the same inputs.


def pytest_addoption(parser):
    parser.addoption(
        "--fuzz",
        type=int,
        default=None,
        metavar="N",
        help="inputs per fuzz target (default: $UNITALKER_FUZZ or 200)",
    )


def pytest_configure(config):
    from hypothesis import HealthCheck, settings

    n = config.getoption("--fuzz") or int(os.environ.get("UNITALKER_FUZZ", "200"))
    settings.register_profile(
        "unitalker",
        max_examples=n,
        derandomize=True,
        deadline=None,
        database=None,
        print_blob=True,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                               HealthCheck.filter_too_much],  # fmt: skip
    )
    settings.load_profile("unitalker")

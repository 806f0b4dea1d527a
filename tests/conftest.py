"""Shared fixtures: tiny random models built from configs, never downloaded."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

# The tiny model of every test is the package's debug config (also `bench --size tiny`).
from unitalker.models.config import debug_config as tiny_model_config
from unitalker.models.config import debug_hf_config as tiny_hf_config

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # tests never touch the network
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
torch.set_num_threads(2)

__all__ = ["randomize", "tiny_hf_config", "tiny_model_config"]


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
        suppress_health_check=[
            HealthCheck.too_slow,
            HealthCheck.data_too_large,
            HealthCheck.filter_too_much,
        ],
    )
    settings.load_profile("unitalker")

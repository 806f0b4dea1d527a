"""Helpers shared by the inference and CLI tests (uniquely named: no 'conftest' clash)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from tests.conftest import randomize, tiny_model_config

HEADS = ["FLAME_5023_vertices", "3DETF_blendshape_weight", "BIWI_23370_vertices"]


def tiny_wavlm(position: int = 1):
    from unitalker.models.unitalker import UniTalker

    torch.manual_seed(0)
    return randomize(UniTalker(tiny_model_config("wavlm", heads=HEADS, position=position))).eval()


def speechy(seconds: float, sr: int = 16000, seed: int = 0, channels: int = 1) -> np.ndarray:
    """Noise under a 4 Hz envelope: ``[S]`` or ``[S, channels]`` float32."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    env = 0.5 + 0.5 * np.sin(2 * np.pi * 4 * t) ** 2
    x = 0.2 * env[:, None] * rng.standard_normal((len(t), channels))
    return (x[:, 0] if channels == 1 else x).astype(np.float32)


def save_tiny_checkpoint(folder: Path) -> Path:
    from unitalker.models.checkpoint import save_model

    return save_model(tiny_wavlm(), folder)

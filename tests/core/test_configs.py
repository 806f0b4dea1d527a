"""Every config shipped in configs/ parses as a TrainConfig (typos fail here, not in a run)."""

from __future__ import annotations

from pathlib import Path

import pytest

from unitalker.config import load_config
from unitalker.training.config import TrainConfig

CONFIGS = sorted((Path(__file__).resolve().parents[2] / "configs").glob("*.yaml"))


@pytest.mark.parametrize("path", CONFIGS, ids=[p.name for p in CONFIGS])
def test_shipped_configs_parse(path):
    cfg = load_config(TrainConfig, path)
    assert cfg.optim.lr > 0 and cfg.model.encoder.family in (
        "builtin",
        "wavlm",
        "wav2vec2",
        "hubert",
    )

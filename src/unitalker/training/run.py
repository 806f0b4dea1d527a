"""``unitalker train`` as a function: build everything from the config, then train."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from unitalker.training.builders import build_run
from unitalker.training.config import TrainConfig
from unitalker.training.distributed import DistInfo
from unitalker.training.trainer import StepInfo, TrainResult


def train(
    cfg: TrainConfig,
    *,
    resume: str | Path | None = None,
    dist: DistInfo | None = None,
    callback: Callable[[StepInfo], None] | None = None,
) -> TrainResult:
    """Train (or resume, or fine-tune) as ``cfg`` says; returns where the model is."""
    return build_run(cfg, resume=resume, dist=dist, callback=callback).trainer.fit()

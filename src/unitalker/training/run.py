"""``unitalker train`` as a function: check everything, build, then train.

:func:`prepare` does all the checks that can fail (config, manifest conventions, a
resume checkpoint of another architecture, fine-tuning prefixes) before a single step.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from unitalker.config import to_dict
from unitalker.training import builders
from unitalker.training.config import TrainConfig
from unitalker.training.distributed import DistInfo
from unitalker.training.trainer import StepInfo, Trainer, TrainResult, resolve_resume_dir

log = logging.getLogger(__name__)


class ResumeError(ValueError):
    """A --resume checkpoint that does not belong to this training config."""


@dataclass
class Prepared:
    trainer: Trainer
    table: Any
    resume_dir: Path | None


def resolve_device(name: str) -> torch.device:
    from unitalker.devices import resolve_device as resolve

    return resolve(name)


def prepare(
    cfg: TrainConfig,
    *,
    resume: str | Path | None = None,
    dist: DistInfo | None = None,
    callback: Callable[[StepInfo], None] | None = None,
) -> Prepared:
    """Validate and build everything for a run (raises before any training step)."""
    from unitalker.models.checkpoint import checkpoint_metadata, load_model, read_checkpoint_config

    dist = dist or DistInfo()
    builders.register_conventions(cfg)
    torch.manual_seed(cfg.seed)  # model init is reproducible (and equal on every rank)
    manifest = builders.load_train_manifest(cfg)
    resume_dir = resolve_resume_dir(resume) if resume is not None else None
    data_table = builders.identity_table(manifest, tuple(cfg.data.datasets), cfg.model.pivot)
    if cfg.model.init_from and resume_dir is None:
        probe_train, _ = builders.build_datasets(cfg, manifest, data_table)
        model, table = builders.build_finetune_model(cfg, manifest, probe_train, data_table)
    elif resume_dir is not None:
        model = load_model(resume_dir, device="cpu")
        table = builders.table_from_model(model)
        saved = read_checkpoint_config(resume_dir)
        run_cfg = saved.get("extra", {}).get("train_config", {})
        mine, theirs = to_dict(cfg.model), run_cfg.get("model")
        if theirs is not None and _arch(mine) != _arch(theirs):
            raise ResumeError(
                f"--resume {resume_dir}: checkpoint of another architecture "
                f"(checkpoint model config {_arch(theirs)} vs this config {_arch(mine)})"
            )
        table = _with_templates(table, data_table)
    else:
        table = data_table
        model = None
    train_set, val_set = builders.build_datasets(cfg, manifest, table)
    if model is None:
        model = builders.build_fresh_model(cfg, manifest, train_set, table)
    missing = [c for c in dict.fromkeys(train_set.conventions) if c not in model.heads]
    if missing:
        raise ResumeError(f"the model has no head for {missing}; heads: {model.heads}")
    if resume_dir is not None:
        # also compare the full network description (catches heads / sizes)
        fresh = read_checkpoint_config(resume_dir)["model"]
        if checkpoint_metadata(model)["model"] != fresh:
            raise ResumeError(f"--resume {resume_dir}: the checkpoint's network differs")
    trainable = builders.trainable_mask(model, tuple(cfg.finetune.trainable))
    loss = builders.build_loss(cfg, model.heads)
    templates = {b.dataset: table._templates[b.dataset] for b in table.blocks
                 if b.dataset in getattr(table, "_templates", {})}  # fmt: skip
    meta = {"train_config": to_dict(cfg), "identity_table": table.to_dict()}
    trainer = Trainer(
        model,
        loss,
        train_set,
        optim=cfg.optim,
        schedule=cfg.schedule,
        logging_cfg=cfg.log,
        out_dir=cfg.out_dir,
        batch_size=cfg.data.batch_size,
        repeats=dict(cfg.data.repeats) or None,
        num_workers=cfg.data.num_workers,
        pivot_prob=cfg.pivot_prob if cfg.model.pivot else 0.0,
        trainable=trainable,
        precision=cfg.precision,
        seed=cfg.seed,
        device=resolve_device(cfg.device),
        dist=dist,
        val_set=val_set,
        meta=meta,
        identity_templates=templates,
        callback=callback,
    )
    if resume_dir is not None:
        trainer.resume(resume_dir)
    return Prepared(trainer, table, resume_dir)


def _arch(model_section: dict[str, Any]) -> dict[str, Any]:
    """The parts of ``model`` that define the architecture (not init_from / pretrained)."""
    return {k: v for k, v in model_section.items() if k not in ("init_from", "pretrained_encoder")}


def _with_templates(table: Any, data_table: Any) -> Any:
    t = getattr(data_table, "_templates", {})
    for b in table.blocks:
        if b.dataset in t and len(t[b.dataset]) >= len(b.subjects):
            table._templates[b.dataset] = t[b.dataset]
    return table


def train(
    cfg: TrainConfig,
    *,
    resume: str | Path | None = None,
    dist: DistInfo | None = None,
    callback: Callable[[StepInfo], None] | None = None,
) -> TrainResult:
    """Train (or resume, or fine-tune) as ``cfg`` says; returns where the model is."""
    prepared = prepare(cfg, resume=resume, dist=dist, callback=callback)
    return prepared.trainer.fit()

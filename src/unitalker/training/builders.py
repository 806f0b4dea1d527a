"""The only place that reads a :class:`TrainConfig`: :func:`build_run` builds every object
of a run (identity table, datasets, sampler, model, loss, optimizer, trainer) from it.

:func:`build_run` does all the checks that can fail (config, manifest conventions, a
resume checkpoint of another architecture, fine-tuning prefixes) before a single step.

Fine-tuning (``model.init_from``) also lives here: heads are added for conventions the
checkpoint lacks, identity rows are carried over by name (new identities start from the
pivot row), and the decoder / heads can be re-initialised.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from unitalker import conventions
from unitalker.config import to_dict
from unitalker.data.visemes import viseme_classes
from unitalker.device import resolve_device
from unitalker.geometry import rig_for
from unitalker.models.config import PIVOT, HeadConfig, ModelConfig
from unitalker.models.heads import PCALayer
from unitalker.models.unitalker import UniTalker, build_model
from unitalker.training.config import OptimConfig, TrainConfig
from unitalker.training.distributed import DistInfo
from unitalker.training.losses import UniTalkerLoss
from unitalker.training.trainer import (
    StepInfo,
    Trainer,
    clean_stale_temporaries,
    resolve_resume_dir,
)

log = logging.getLogger(__name__)

# Aliases accepted in ``finetune.trainable``.
TRAINABLE_ALIASES = {
    "heads": "out_head_dict",
    "decoder": "decoder",
    "encoder": "audio_encoder",
    "pca": "pca_layer_dict",
}


class TrainSetupError(ValueError):
    """A training setup that cannot work (reported before any training)."""


class ResumeError(ValueError):
    """A --resume checkpoint that does not belong to this training config."""


@dataclass
class Run:
    """What :func:`build_run` returns: the trainer, the identity table, the resume folder."""

    trainer: Trainer
    table: Any
    resume_dir: Path | None


def build_run(
    cfg: TrainConfig,
    *,
    resume: str | Path | None = None,
    dist: DistInfo | None = None,
    callback: Callable[[StepInfo], None] | None = None,
) -> Run:
    """Validate ``cfg`` and build every object of the run (raises before any training step).

    Args:
        cfg: the training config.
        resume: a checkpoint or run folder to continue exactly (``trainer_state.pt``).
        dist: this process's rank / world size (default: one process).
        callback: progress callback of the trainer (rank 0).
    """
    from unitalker.models.checkpoint import checkpoint_metadata, read_checkpoint_config

    dist = dist or DistInfo()
    device = resolve_device(cfg.device)  # --device cuda without CUDA: fail before any work
    # a missing --resume folder is the first thing to say (not "data.manifest is empty")
    resume_dir = resolve_resume_dir(resume) if resume is not None else None
    if dist.is_main:
        clean_stale_temporaries(cfg.out_dir)  # .tmp-* of writes killed in an earlier run
    register_conventions(cfg)
    torch.manual_seed(cfg.seed)  # model init is reproducible (and equal on every rank)
    manifest = load_train_manifest(cfg)
    data_table = identity_table(manifest, tuple(cfg.data.datasets), cfg.model.pivot)
    model: UniTalker | None = None
    if cfg.model.init_from and resume_dir is None:
        probe_train, _ = build_datasets(cfg, manifest, data_table)
        model, table = build_finetune_model(cfg, manifest, probe_train, data_table)
    elif resume_dir is not None:
        model, table = _resume_model(cfg, resume_dir, data_table)
    else:
        table = data_table
    train_set, val_set = build_datasets(cfg, manifest, table)
    if model is None:
        model = build_fresh_model(cfg, manifest, train_set, table)
    missing = [c for c in dict.fromkeys(train_set.conventions) if c not in model.heads]
    if missing:
        raise ResumeError(f"the model has no head for {missing}; heads: {model.heads}")
    if resume_dir is not None:
        # also compare the full network description (catches heads / sizes)
        fresh = read_checkpoint_config(resume_dir)["model"]
        if checkpoint_metadata(model)["model"] != fresh:
            raise ResumeError(f"--resume {resume_dir}: the checkpoint's network differs")
    attach_feature_augment(model, cfg.data.augment)
    trainable = trainable_mask(model, tuple(cfg.finetune.trainable))
    loss = build_loss(cfg, model.heads)
    model = model.to(device)
    trainer = Trainer(
        model,
        loss,
        train_set,
        build_sampler(cfg, train_set, dist),
        build_optimizer(model, cfg.optim),
        out_dir=cfg.out_dir,
        steps=cfg.schedule.steps,
        epochs=cfg.schedule.epochs,
        warmup_steps=cfg.schedule.warmup_steps,
        warmup_epochs=cfg.schedule.warmup_epochs,
        freeze_features=cfg.schedule.freeze_features,
        grad_clip=cfg.optim.grad_clip,
        accum_steps=cfg.optim.accum_steps,
        log_every=cfg.log.every,
        val_every=cfg.log.val_every,
        ckpt_every=cfg.log.ckpt_every,
        keep_last=cfg.log.keep_last,
        tensorboard=cfg.log.tensorboard,
        num_workers=cfg.data.num_workers,
        pivot_prob=cfg.pivot_prob if cfg.model.pivot else 0.0,
        trainable=trainable,
        precision=cfg.precision,
        seed=cfg.seed,
        device=device,
        dist=dist,
        val_set=val_set,
        meta={"train_config": to_dict(cfg), "identity_table": table.to_dict()},
        identity_templates=table.dataset_templates,
        callback=callback,
    )
    if resume_dir is not None:
        trainer.resume(resume_dir)
    return Run(trainer, table, resume_dir)


def _resume_model(cfg: TrainConfig, resume_dir: Path, data_table: Any) -> tuple[UniTalker, Any]:
    """The checkpoint's model and identity table (with the data's templates), checked."""
    from unitalker.models.checkpoint import load_model, read_checkpoint_config

    model = load_model(resume_dir, device="cpu")
    table = table_from_model(model)
    saved = read_checkpoint_config(resume_dir)
    run_cfg = saved.get("extra", {}).get("train_config", {})
    mine, theirs = to_dict(cfg.model), run_cfg.get("model")
    if theirs is not None and _arch(mine) != _arch(theirs):
        raise ResumeError(
            f"--resume {resume_dir}: checkpoint of another architecture "
            f"(checkpoint model config {_arch(theirs)} vs this config {_arch(mine)})"
        )
    for b in table.blocks:  # the checkpoint's table does not carry templates: the data's do
        tpl = data_table.dataset_templates.get(b.dataset)
        if tpl is not None and len(tpl) >= len(b.subjects):
            table.set_templates(b.dataset, tpl)
    return model, table


def _arch(model_section: dict[str, Any]) -> dict[str, Any]:
    """The parts of ``model`` that define the architecture (not init_from / pretrained)."""
    return {k: v for k, v in model_section.items() if k not in ("init_from", "pretrained_encoder")}


def build_sampler(cfg: TrainConfig, train_set: Any, dist: DistInfo) -> Any:
    """This rank's length-bucketing batch sampler of the training set (seeded, shuffled)."""
    from unitalker.data import LengthBucketBatchSampler

    return LengthBucketBatchSampler.from_dataset(
        train_set,
        batch_size=cfg.data.batch_size,
        repeats=dict(cfg.data.repeats) or None,
        shuffle=True,
        seed=cfg.seed,
        rank=dist.rank,
        world_size=dist.world_size,
    )


def build_optimizer(model: torch.nn.Module, optim: OptimConfig) -> torch.optim.Optimizer:
    """Adam over every parameter (frozen ones get no gradient, so they do not move)."""
    return torch.optim.Adam(
        [p for _, p in model.named_parameters()],
        lr=optim.lr,
        betas=tuple(optim.betas),
        weight_decay=optim.weight_decay,
    )


def attach_feature_augment(model: UniTalker, aug: Any) -> None:
    """Give the built-in encoder the SpecAugment masks ``data.augment.spec_*`` ask for,
    and its chance of windowed passes (``data.augment.p_stream_window``)."""
    if not 0 <= aug.p_stream_window <= 1:
        raise TrainSetupError(
            f"data.augment.p_stream_window must be in [0, 1], got {aug.p_stream_window}"
        )
    if aug.p_stream_window > 0:
        if getattr(model.audio_encoder, "stream_window", None) is None:
            raise TrainSetupError(
                "data.augment.p_stream_window needs a built-in encoder with a stream_window "
                "(set model.encoder.stream_window: [LEFT, RIGHT] frames at 50 Hz)"
            )
        model.audio_encoder.stream_window_p = float(aug.p_stream_window)
        log.info(
            "windowed encoder passes: p=%.2f, window %s",
            aug.p_stream_window,
            list(model.audio_encoder.stream_window),
        )
    if not (aug.enabled and (aug.spec_freq_masks > 0 or aug.spec_time_masks > 0)):
        return
    from unitalker.data.augment import SpecAugment

    if not hasattr(model.audio_encoder, "feature_augment"):
        raise ValueError(
            "data.augment.spec_*: feature masks apply to the built-in encoder only "
            f"(this model's encoder is {type(model.audio_encoder).__name__})"
        )
    model.audio_encoder.feature_augment = SpecAugment(
        aug.spec_freq_masks, aug.spec_freq_width, aug.spec_time_masks, aug.spec_time_width
    )


def register_conventions(cfg: TrainConfig) -> None:
    for f in cfg.conventions_files:
        conventions.register_from_file(f)


def load_train_manifest(cfg: TrainConfig) -> Any:
    """Open the manifest and check every convention in it is registered."""
    from unitalker.data import load_manifest

    if not cfg.data.manifest:
        raise TrainSetupError("data.manifest is empty: name a split file, dataset folder or root")
    manifest = load_manifest(cfg.data.manifest)
    split = manifest.split(cfg.data.train_split)
    for part in split.parts:
        if cfg.data.datasets and part.dataset not in cfg.data.datasets:
            continue
        try:
            conventions.get(part.convention)
        except KeyError as e:
            raise TrainSetupError(
                f"{part.path}: dataset {part.dataset} uses convention {part.convention!r}, which is "
                f"not registered ({e.args[0]}); register it with conventions_files: [FILE.yaml]"
            ) from None
    return manifest


def identity_table(manifest: Any, datasets: tuple[str, ...] = (), pivot: bool = True) -> Any:
    """Training identities of the manifest's datasets (all, or ``datasets``), pivot last."""
    from unitalker.data import IdentityTable

    specs, templates = [], {}
    for folder in manifest.dataset_folders():
        part = manifest.identity_split(folder)
        if datasets and part.dataset not in datasets:
            continue
        ids = part.id_list or [
            str(i) for i in range(max((e.local_id for e in part.entries), default=-1) + 1)
        ]
        specs.append((part.dataset, part.convention, list(ids)))
        if part.templates is not None:
            templates[part.dataset] = part.templates
    return IdentityTable.from_datasets(specs, pivot=pivot, templates=templates)


def merge_identity_tables(old: Any, new: Any, pivot: bool = True) -> Any:
    """``old``'s identities in their order, then ``new``'s that ``old`` lacks; pivot last."""
    from unitalker.data import IdentityTable

    blocks: dict[str, tuple[str, list[str]]] = {}
    for b in old.blocks:
        blocks[b.dataset] = (b.convention, list(b.subjects))
    for b in new.blocks:
        conv, subj = blocks.get(b.dataset, (b.convention, []))
        blocks[b.dataset] = (conv, subj + [s for s in b.subjects if s not in subj])
    templates = {**old.dataset_templates, **new.dataset_templates}
    specs = [(k, c, s) for k, (c, s) in blocks.items()]
    # templates of a grown block no longer line up with its subjects; keep only exact ones
    keep = {}
    for k, _c, s in specs:
        t = templates.get(k)
        if t is not None and len(t) >= len(s):
            keep[k] = t
    return IdentityTable.from_datasets(specs, pivot=pivot, templates=keep)


def table_from_model(model: UniTalker) -> Any:
    """The identity table a checkpoint carries (or one parsed from its identity names)."""
    from unitalker.data import IdentityTable

    d = model.meta.get("extra", {}).get("identity_table")
    if d:
        return IdentityTable.from_dict(d)
    blocks: dict[str, list[str]] = {}
    for name in model.config.identities:
        if name == PIVOT:
            continue
        key, _, subj = name.partition(":") if ":" in name else ("ckpt", "", name)
        blocks.setdefault(key, []).append(subj)
    specs = []
    for key, subj in blocks.items():
        try:
            conv = conventions.get_dataset(key).convention
        except KeyError:
            conv = ""
        specs.append((key, conv, subj))
    return IdentityTable.from_datasets(specs, pivot=model.config.pivot)


def build_datasets(cfg: TrainConfig, manifest: Any, table: Any) -> tuple[Any, Any | None]:
    """Training set (cut to ``max_seconds``, fraction applied) and validation set (or None)."""
    from unitalker.data import ClipDataset

    ds = tuple(cfg.data.datasets) or None
    visemes = cfg.loss.viseme > 0
    train = ClipDataset(
        manifest,
        cfg.data.train_split,
        visemes=visemes,
        max_seconds=cfg.data.max_seconds,
        min_seconds=cfg.data.min_seconds,
        cache_dir=cfg.data.cache_dir,
        identities=table,
        datasets=ds,
        fraction=cfg.data.fraction,
        fraction_seed=cfg.seed,
    )
    if cfg.data.augment.enabled:
        from pathlib import Path

        from unitalker.data.augment import AugmentedDataset

        train = AugmentedDataset(
            train,
            cfg.data.augment,
            cfg.seed,
            max_seconds=cfg.data.max_seconds,
            log_path=Path(cfg.out_dir) / "augment.jsonl",
        )
    val = None
    if cfg.data.val_split and manifest.has_split(cfg.data.val_split):
        try:
            val = ClipDataset(
                manifest,
                cfg.data.val_split,
                max_seconds=cfg.data.max_seconds,
                min_seconds=cfg.data.min_seconds,
                cache_dir=cfg.data.cache_dir,
                identities=table,
                datasets=ds,
                visemes=visemes,
            )
        except (ValueError, KeyError) as e:  # a dataset without val split is fine
            log.warning("no validation set: %s", e)
    return train, val


def _pca_arrays(manifest: Any, cfg: TrainConfig, convention: str, k: int) -> dict[str, np.ndarray]:
    """The PCA of a convention: a dataset folder's ``pca.npz``, else fitted on train data."""
    from unitalker.data import fit_pca, load_pca

    parts = [
        p
        for p in manifest.split(cfg.data.train_split).parts
        if p.convention == convention and (not cfg.data.datasets or p.dataset in cfg.data.datasets)
    ]
    for p in parts:
        if p.pca_path is not None and Path(p.pca_path).exists():
            arrays = load_pca(p.pca_path)
            log.info("PCA of %s from %s", convention, p.pca_path)
            return arrays
    log.info("fitting PCA (K=%d) for %s on the training split", k, convention)
    return fit_pca(parts, n_components=k, seed=cfg.seed)


def _head(cfg: TrainConfig, manifest: Any, name: str) -> tuple[HeadConfig, dict | None]:
    conv = conventions.get(name)
    k = cfg.model.pca_components
    if conv.pca and k > 0:
        arrays = _pca_arrays(manifest, cfg, name, min(k, conv.dim))
        k = min(k, int(arrays["components_to_data"].shape[0]))
        return HeadConfig(name, k, cfg.model.head_layers), arrays
    return HeadConfig(name, 0, cfg.model.head_layers), None


def _default_template(table: Any, convention: str) -> np.ndarray | None:
    tpl = table.templates_for(convention)
    return next(iter(tpl.values())) if tpl else None


def build_fresh_model(cfg: TrainConfig, manifest: Any, train_set: Any, table: Any) -> UniTalker:
    """A new UniTalker with one head per convention of the training set."""
    names = list(dict.fromkeys(train_set.conventions))
    heads, pcas = [], {}
    for n in names:
        h, arrays = _head(cfg, manifest, n)
        heads.append(h)
        if arrays is not None:
            pcas[n] = arrays
    mcfg = ModelConfig(
        encoder=cfg.model.encoder,
        decoder=cfg.model.decoder,
        heads=tuple(heads),
        identities=tuple(table.names),
        pivot=cfg.model.pivot,
        adaptor_position=cfg.model.adaptor_position,
        visemes=viseme_classes() if cfg.model.visemes else (),
    )
    model = build_model(mcfg, pretrained_encoder=cfg.model.pretrained_encoder)
    _install_pca_and_templates(model, pcas, table, names)
    return model


def _install_pca_and_templates(
    model: UniTalker, pcas: dict[str, dict], table: Any, names: list[str]
) -> None:
    for n, arrays in pcas.items():
        k = model.pca_layer_dict[n].n_components
        model.pca_layer_dict[n] = PCALayer.from_arrays(arrays, k)
    for n in names:
        tpl = _default_template(table, n)
        if tpl is not None:
            model.set_template(n, tpl)


def build_finetune_model(
    cfg: TrainConfig, manifest: Any, train_set: Any, data_table: Any
) -> tuple[UniTalker, Any]:
    """Start from ``model.init_from``: add missing heads, map identities, re-init parts."""
    from unitalker.models.checkpoint import load_model

    base = load_model(cfg.model.init_from, device="cpu")
    ft = cfg.finetune
    data_convs = list(dict.fromkeys(train_set.conventions))
    table = merge_identity_tables(table_from_model(base), data_table, pivot=base.config.pivot)
    heads, pcas = [], {}
    for h in base.config.heads:
        if ft.drop_other_heads and h.convention not in data_convs:
            continue
        heads.append(h)
    for n in data_convs:
        if n not in base.config.head_names:
            h, arrays = _head(cfg, manifest, n)
            heads.append(h)
            if arrays is not None:
                pcas[n] = arrays
            log.info("fine-tuning: new head %s", n)
    mcfg = dataclasses.replace(base.config, heads=tuple(heads), identities=tuple(table.names))
    if cfg.model.visemes and not mcfg.visemes:
        mcfg = dataclasses.replace(mcfg, visemes=viseme_classes())
        log.info("fine-tuning: new viseme classifier (%d classes)", len(mcfg.visemes))
    window = cfg.model.encoder.stream_window
    if window is not None and window != mcfg.encoder.stream_window:
        # not a weight: a fine-tune may give the loaded encoder a windowed mode
        if mcfg.encoder.family != "builtin":
            raise TrainSetupError("model.encoder.stream_window needs a built-in encoder")
        mcfg = dataclasses.replace(
            mcfg, encoder=dataclasses.replace(mcfg.encoder, stream_window=tuple(window))
        )
        log.info("fine-tuning: encoder stream_window %s", list(window))
    model = UniTalker(mcfg)
    state = base.state_dict()
    own = model.state_dict()
    new_state = {}
    skip_prefixes = []
    if ft.reinit_decoder:
        skip_prefixes.append("decoder.")
        skip_prefixes += [f"out_head_dict.{n}." for n in data_convs]
    if ft.reinit_heads:
        skip_prefixes += [f"out_head_dict.{n}." for n in data_convs]
    for k, v in own.items():
        if k in state and state[k].shape == v.shape and not k.startswith(tuple(skip_prefixes)):
            new_state[k] = state[k]
    emb_key = "decoder.learnable_style_emb.weight"
    if not ft.reinit_decoder and emb_key in state:
        old_names = list(base.config.identities)
        old = state[emb_key]
        src_row = old[old_names.index(PIVOT)] if PIVOT in old_names else old.mean(0)
        rows = [old[old_names.index(n)] if n in old_names else src_row for n in table.names]
        new_state[emb_key] = torch.stack(rows)
    model.load_state_dict(new_state, strict=False)
    _install_pca_and_templates(
        model, pcas, table, [n for n in data_convs if n in pcas or n not in base.config.head_names]
    )
    model.meta = {"finetuned_from": str(cfg.model.init_from)}
    return model, table


def trainable_mask(model: torch.nn.Module, prefixes: tuple[str, ...]) -> dict[str, bool]:
    """Parameter name -> whether fine-tuning lets it train (all when ``prefixes`` is empty)."""
    names = [n for n, _ in model.named_parameters()]
    if not prefixes:
        return dict.fromkeys(names, True)
    full = [TRAINABLE_ALIASES.get(p, p) for p in prefixes]
    mask = {n: any(n == p or n.startswith(p.rstrip(".") + ".") for p in full) for n in names}
    for p in full:
        if not any(n == p or n.startswith(p.rstrip(".") + ".") for n in names):
            raise TrainSetupError(
                f"finetune.trainable: {p!r} matches no parameter; top-level modules: "
                f"{sorted({n.split('.')[0] for n in names})}"
            )
    return mask


def build_loss(cfg: TrainConfig, heads: list[str]) -> UniTalkerLoss:
    maps = {
        h: rig_for(
            h, flame_model=cfg.loss.flame_model, flame_face_indices=cfg.loss.flame_face_indices
        )
        for h in heads
    }
    for h, m in maps.items():
        if m is None and conventions.get(h).kind != "vertices":
            log.warning("convention %s has no vertex map: trained on its parameter term only", h)
    lips: dict[str, torch.Tensor] = {}
    if cfg.loss.lip > 0:
        for h in heads:
            region = conventions.find_region(h, "lip")
            if region is None:
                log.warning("convention %s has no lip region: no lip term for it", h)
                continue
            idx = torch.as_tensor(np.asarray(region.indices), dtype=torch.long)
            conv = conventions.get(h)
            if conv.kind == "vertices":
                n = conv.dim // 3
            elif maps[h] is not None:
                with torch.no_grad():
                    n = int(maps[h](torch.zeros(1, conv.dim)).shape[1])
            else:
                continue  # no vertices to compare: no vertex term either
            if len(idx) and int(idx.max()) >= n:
                raise TrainSetupError(
                    f"loss.lip: the lip region of {h} ({region.path}) indexes vertex "
                    f"{int(idx.max())}, but the convention's vertices number {n}"
                )
            lips[h] = idx
    pairs: dict[str, tuple[int, int, float, float]] = {}
    if cfg.loss.contact > 0:
        from unitalker.evaluation.voices import mouth_gauge
        from unitalker.synth.conventions import TOPOLOGY_OF

        for h in heads:
            if h not in TOPOLOGY_OF:
                log.warning("convention %s has no known lip midline: no contact term for it", h)
                continue
            g = mouth_gauge(h)
            pairs[h] = (g.upper, g.lower, g.rest, g.open_range)
    return UniTalkerLoss(
        maps,
        alpha=cfg.loss.alpha,
        beta=cfg.loss.beta,
        vertex_weight=cfg.loss.vertex,
        lip_weight=cfg.loss.lip,
        lip_regions=lips,
        velocity_weight=cfg.loss.velocity,
        contact_weight=cfg.loss.contact,
        lip_pairs=pairs,
        contact_tol=cfg.loss.contact_tol,
        contact_frames=cfg.loss.contact_frames,
        viseme_weight=cfg.loss.viseme,
    )

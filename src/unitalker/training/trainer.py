"""The training loop: mixed datasets, one convention per batch, warm-up, pivot identity,
autocast, gradient clipping and accumulation, TensorBoard, exact resume, DDP-style sync.

Checkpoints are folders ``out_dir/checkpoints/step_NNNNNNN/`` holding the model in the
project format (:func:`unitalker.models.checkpoint.save_model`, loadable for inference),
the per-identity templates (``identity_templates.safetensors``) and ``trainer_state.pt``
(optimizer, step, epoch, position in the epoch, RNG states). ``out_dir/model/`` is the
final model.
"""

from __future__ import annotations

import logging
import math
import os
import random
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from unitalker.models.unitalker import UniTalker
from unitalker.training.distributed import DistInfo, all_reduce_grads, all_reduce_mean, barrier
from unitalker.training.losses import UniTalkerLoss
from unitalker.training.pivot import PivotReplacer

log = logging.getLogger(__name__)

STATE_FILE = "trainer_state.pt"
TEMPLATES_FILE = "identity_templates.safetensors"


@dataclass
class StepInfo:
    """What the progress callback receives after every optimizer step (rank 0)."""

    step: int
    total_steps: int
    epoch: int
    losses: dict[str, float]
    warmup: bool
    clips_per_s: float
    elapsed_s: float
    event: str = "step"  # "step" | "val" | "checkpoint" | "done"
    message: str = ""
    val: dict[str, float] = field(default_factory=dict)


@dataclass
class TrainResult:
    steps: int
    epochs: int
    final_dir: Path
    last_losses: dict[str, float]
    val: dict[str, float]
    clips_per_s: float
    seconds: float


class _Resume:
    """A batch sampler that starts ``skip`` batches into the wrapped sampler's epoch."""

    def __init__(self, sampler: Any, skip: int = 0):
        self.sampler, self.skip = sampler, skip

    def __iter__(self) -> Iterator[list[int]]:
        for i, b in enumerate(self.sampler):
            if i >= self.skip:
                yield b

    def __len__(self) -> int:
        return max(0, len(self.sampler) - self.skip)


class TrainStateError(ValueError):
    """A ``trainer_state.pt`` that cannot be read; the message names the file."""


def clean_stale_temporaries(out_dir: str | Path) -> list[Path]:
    """Remove ``.tmp-*`` files / folders that killed checkpoint writes left in a run folder.

    Only our own write locations are searched (``out_dir``, ``out_dir/model``,
    ``out_dir/checkpoints`` and its ``step_*`` folders), and only names our atomic writers
    use, so nothing else of the user's is touched. Returns what was removed.
    """
    root = Path(out_dir)
    places = [root, root / "model", root / "checkpoints"]
    if (root / "checkpoints").is_dir():
        places += sorted(p for p in (root / "checkpoints").glob("step_*") if p.is_dir())
    removed = []
    for place in places:
        if not place.is_dir():
            continue
        for p in place.glob(".tmp-*"):
            if p.is_dir() and not p.is_symlink():
                shutil.rmtree(p, ignore_errors=True)
            else:
                p.unlink(missing_ok=True)
            removed.append(p)
    if removed:
        log.info(
            "removed %d leftover .tmp-* file(s) of interrupted writes under %s", len(removed), root
        )
    return removed


def resolve_resume_dir(path: str | Path) -> Path:
    """A checkpoint folder with ``trainer_state.pt``, or a run folder (its latest checkpoint)."""
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"--resume {p}: no such folder")
    if not p.is_dir():
        raise FileNotFoundError(f"--resume {p}: not a folder (give the run or checkpoint folder)")
    if (p / STATE_FILE).exists():
        return p
    ckpts = sorted((p / "checkpoints").glob("step_*")) if (p / "checkpoints").exists() else []
    ckpts = [c for c in ckpts if (c / STATE_FILE).exists()]
    if ckpts:
        return ckpts[-1]
    if (p / "model" / STATE_FILE).exists():
        return p / "model"
    raise FileNotFoundError(f"--resume {p}: no {STATE_FILE} here or under {p}/checkpoints/step_*")


class Trainer:
    """Train a :class:`UniTalker` on a :class:`unitalker.data.ClipDataset`.

    Takes built objects and plain values; :func:`unitalker.training.builders.build_run`
    makes them from a :class:`~unitalker.training.config.TrainConfig`.

    Args:
        model: the network (moved to ``device``).
        loss_fn: Eq. 2 (:class:`UniTalkerLoss`).
        train_set: the training clips.
        sampler: the batch sampler of ``train_set`` (this rank's share; ``set_epoch``).
        optimizer: over ``model``'s parameters.
        out_dir: run folder.
        steps: optimizer steps to train; 0 = ``epochs`` epochs.
        epochs: epochs to train when ``steps`` is 0.
        warmup_steps / warmup_epochs: decoder warm-up, the audio encoder frozen for
            this many steps if ``warmup_steps`` > 0, else epochs.
        freeze_features: after warm-up, keep the encoder's local feature extractor frozen.
        grad_clip: max global gradient norm (0 = off).
        accum_steps: micro-batches per optimizer step.
        log_every / val_every / ckpt_every: every N optimizer steps (0 = never).
        keep_last: checkpoints kept under ``out_dir/checkpoints`` (0 = all).
        tensorboard: write TensorBoard logs under ``out_dir/tb``.
        num_workers: DataLoader workers.
        pivot_prob: pivot replacement probability (0 = off or no pivot row).
        trainable: parameter name -> may train (fine-tuning); None = all.
        precision: ``fp32`` | ``bf16`` | ``fp16`` autocast.
        seed: seeds python / numpy / torch, the data loader and the pivot draws.
        device: torch device.
        dist: rank / world size.
        val_set: validation clips (loss only) or None.
        meta: JSON-able metadata stored in every checkpoint (config, identity table).
        identity_templates: dataset -> ``[n, D]`` templates saved beside the model.
        callback: called with :class:`StepInfo` on rank 0.
    """

    def __init__(
        self,
        model: UniTalker,
        loss_fn: UniTalkerLoss,
        train_set: Any,
        sampler: Any,
        optimizer: torch.optim.Optimizer,
        *,
        out_dir: str | Path,
        steps: int = 0,
        epochs: int = 1,
        warmup_steps: int = 0,
        warmup_epochs: int = 0,
        freeze_features: bool = True,
        grad_clip: float = 0.0,
        accum_steps: int = 1,
        log_every: int = 10,
        val_every: int = 0,
        ckpt_every: int = 0,
        keep_last: int = 2,
        tensorboard: bool = True,
        num_workers: int = 0,
        pivot_prob: float = 0.1,
        trainable: dict[str, bool] | None = None,
        precision: str = "fp32",
        seed: int = 0,
        device: str | torch.device = "cpu",
        dist: DistInfo | None = None,
        val_set: Any = None,
        meta: dict[str, Any] | None = None,
        identity_templates: dict[str, np.ndarray] | None = None,
        callback: Callable[[StepInfo], None] | None = None,
    ):
        self.device = torch.device(device)
        self.model = model.to(self.device)
        self.loss_fn = loss_fn.to(self.device)
        self.train_set, self.val_set = train_set, val_set
        self.sampler = sampler
        self.optimizer = optimizer
        self.out_dir = Path(out_dir)
        self.warmup_steps, self.warmup_epochs = warmup_steps, warmup_epochs
        self.freeze_features = freeze_features
        self.grad_clip, self.accum_steps = grad_clip, accum_steps
        self.log_every, self.val_every, self.ckpt_every = log_every, val_every, ckpt_every
        self.keep_last, self.tensorboard = keep_last, tensorboard
        self.num_workers = num_workers
        self.precision = precision
        self.seed = seed
        self.dist = dist or DistInfo()
        self.meta = dict(meta or {})
        self.identity_templates = identity_templates or {}
        self.callback = callback
        self.trainable = trainable or {n: True for n, _ in model.named_parameters()}
        if len(self.sampler) == 0:
            raise ValueError("the training set gives no batch (fewer clips than ranks?)")
        pivot_idx = model.pivot_index if model.config.pivot else None
        self.pivot = PivotReplacer(pivot_idx, pivot_prob, seed=seed + 1000 * self.dist.rank)
        self.params = [p for _, p in model.named_parameters()]
        use_scaler = precision == "fp16" and self.device.type == "cuda"
        self.scaler = torch.amp.GradScaler("cuda", enabled=use_scaler)
        self.step = 0
        self.epoch = 0
        self.batch_in_epoch = 0
        self.steps_per_epoch = math.ceil(len(self.sampler) / accum_steps)
        self.total_steps = steps or epochs * self.steps_per_epoch
        self._writer: Any = None
        self._seed_all(seed)

    # ------------------------------------------------------------------------------------
    def _seed_all(self, seed: int) -> None:
        random.seed(seed)
        np.random.seed(seed % 2**32)
        torch.manual_seed(seed + self.dist.rank)

    def in_warmup(self) -> bool:
        if self.warmup_steps > 0:
            return self.step < self.warmup_steps
        return self.epoch < self.warmup_epochs

    def apply_phase(self) -> bool:
        """Set ``requires_grad`` for the current phase; returns whether in warm-up."""
        warm = self.in_warmup()
        enc = self.model.audio_encoder
        if warm:
            enc.freeze("all")
        else:
            enc.freeze("features" if self.freeze_features else "none")
        for n, p in self.model.named_parameters():
            if not self.trainable.get(n, True):
                p.requires_grad_(False)
        return warm

    def _autocast(self) -> Any:
        if self.precision == "fp32":
            return torch.autocast(self.device.type, enabled=False)
        dtype = torch.bfloat16 if self.precision == "bf16" else torch.float16
        return torch.autocast(self.device.type, dtype=dtype)

    # ------------------------------------------------------------------------------------
    def compute_loss(self, batch: Any, *, train: bool = True) -> Any:
        """Forward one batch and return its :class:`LossTerms`."""
        from unitalker.models.unitalker import VISEME_OUTPUT

        conv = batch.convention
        ident = self.pivot(batch.identity) if train else batch.identity
        visemes = (
            self.loss_fn.viseme_weight > 0
            and batch.visemes is not None
            and bool(self.model.config.visemes)
        )
        with self._autocast():
            outs = self.model(
                batch.audio,
                heads=[conv],
                identity=ident,
                templates={conv: batch.template},
                lengths=batch.audio_lengths.tolist(),
                frames={conv: batch.motion_lengths.tolist()},
                visemes=visemes,
            )
        out = outs[conv]
        logits = outs[VISEME_OUTPUT].motion.float() if visemes else None
        target_coeffs = None
        if out.coeffs is not None:
            with torch.no_grad():
                target_coeffs = self.model.pca_layer_dict[conv].encode(
                    batch.motion - batch.template[:, None, :]
                )[..., : out.coeffs.shape[-1]]
        return self.loss_fn(
            conv,
            out.motion.float(),
            batch.motion,
            batch.mask,
            None if out.coeffs is None else out.coeffs.float(),
            target_coeffs,
            viseme_logits=logits,
            visemes=batch.visemes if visemes else None,
        )

    def epoch_loader(self, skip: int = 0) -> Any:
        """The DataLoader of epoch ``self.epoch``, starting ``skip`` batches in."""
        from torch.utils.data import DataLoader

        from unitalker.data import collate

        self.sampler.set_epoch(self.epoch)
        if hasattr(self.train_set, "set_epoch"):  # augmentation draws per epoch
            self.train_set.set_epoch(self.epoch)
        return DataLoader(
            self.train_set,
            batch_sampler=_Resume(self.sampler, skip),
            collate_fn=collate,
            num_workers=self.num_workers,
            # its own generator: creating an iterator must not draw from the global RNG,
            # or a resumed run's dropout masks would differ from an uninterrupted run's
            generator=torch.Generator().manual_seed(self.seed + self.epoch),
        )

    def fit(self) -> TrainResult:
        """Train until ``total_steps``; returns where the final model is."""
        t0 = time.perf_counter()
        clips = 0
        accum = self.accum_steps
        running: dict[str, float] = {}
        n_running = 0
        last: dict[str, float] = {}
        val_metrics: dict[str, float] = {}
        self._preload_for_workers()
        self.model.train()
        warm = self.apply_phase()
        micro = 0
        while self.step < self.total_steps:
            for batch in self.epoch_loader(self.batch_in_epoch):
                if micro == 0:
                    warm = self.apply_phase()
                terms = self.train_batch(batch)
                for k, v in terms.as_floats().items():
                    running[k] = running.get(k, 0.0) + v
                n_running += 1
                clips += len(batch) * self.dist.world_size
                micro += 1
                self.batch_in_epoch += 1
                if micro < accum and self.batch_in_epoch < len(self.sampler):
                    continue
                micro = 0
                self.optimizer_step()
                self.step += 1
                if self.step % max(1, self.log_every) == 0 or self.step == self.total_steps:
                    last = {
                        k: all_reduce_mean(v / n_running, self.dist.world_size)
                        for k, v in running.items()
                    }
                    running, n_running = {}, 0
                    self._log_scalars("train", last)
                elapsed = time.perf_counter() - t0
                info = StepInfo(
                    self.step,
                    self.total_steps,
                    self.epoch,
                    last,
                    warm,
                    clips / max(elapsed, 1e-9),
                    elapsed,
                )
                self._emit(info)
                if self.val_every and self.step % self.val_every == 0:
                    val_metrics = self.validate()
                if self.ckpt_every and self.step % self.ckpt_every == 0:
                    d = self.save_checkpoint()
                    self._emit(replace(info, event="checkpoint", message=str(d)))
                if self.step >= self.total_steps:
                    break
            else:  # epoch finished
                self.epoch += 1
                self.batch_in_epoch = 0
                continue
            break
        if self.val_set is not None:
            val_metrics = self.validate()
        final = self.save_checkpoint(self.out_dir / "model")
        elapsed = time.perf_counter() - t0
        info = StepInfo(
            self.step,
            self.total_steps,
            self.epoch,
            last,
            warm,
            clips / max(elapsed, 1e-9),
            elapsed,
            "done",
            str(final),
            val_metrics,
        )
        self._emit(info)
        if self._writer is not None:
            self._writer.close()
        return TrainResult(
            self.step, self.epoch, final, last, val_metrics, info.clips_per_s, elapsed
        )

    def _preload_for_workers(self) -> None:
        # DataLoader workers are started per epoch: audio they decode is lost when the epoch
        # ends, audio decoded here before they fork is shared with every epoch's workers
        cache = getattr(self.train_set, "audio_cache", None)
        if self.num_workers > 0 and cache is not None and cache.cache_dir is None:
            self.train_set.preload()

    def train_batch(self, batch: Any) -> Any:
        """Forward and backward one (micro-)batch: gradients accumulate until
        :meth:`optimizer_step`. Returns its :class:`LossTerms`."""
        terms = self.compute_loss(batch.to(self.device))
        self.scaler.scale(terms.total / self.accum_steps).backward()
        return terms

    def optimizer_step(self) -> None:
        """All-reduce, unscale, clip and apply the accumulated gradients, then zero them."""
        trainable = [p for p in self.params if p.requires_grad]
        all_reduce_grads(trainable, self.dist.world_size)
        self.scaler.unscale_(self.optimizer)
        if self.grad_clip > 0:
            grads = [p for p in trainable if p.grad is not None]
            if grads:
                torch.nn.utils.clip_grad_norm_(grads, self.grad_clip)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.optimizer.zero_grad(set_to_none=True)

    @torch.no_grad()
    def validate(self) -> dict[str, float]:
        """Mean loss terms over the validation set (GT identity, no pivot)."""
        if self.val_set is None:
            return {}
        from torch.utils.data import DataLoader

        from unitalker.data import LengthBucketBatchSampler, collate

        sampler = LengthBucketBatchSampler.from_dataset(
            self.val_set,
            batch_size=self.sampler.batch_size,
            repeats={},
            shuffle=False,
            rank=self.dist.rank,
            world_size=self.dist.world_size,
        )
        self.model.eval()
        sums: dict[str, float] = {}
        n = 0
        for batch in DataLoader(self.val_set, batch_sampler=sampler, collate_fn=collate):
            terms = self.compute_loss(batch.to(self.device), train=False)
            for k, v in terms.as_floats().items():
                sums[k] = sums.get(k, 0.0) + v * len(batch)
            n += len(batch)
        self.model.train()
        out = {k: all_reduce_mean(v / max(n, 1), self.dist.world_size) for k, v in sums.items()}
        self._log_scalars("val", out)
        return out

    # ------------------------------------------------------------------------------------
    def _emit(self, info: StepInfo) -> None:
        if self.dist.is_main and self.callback is not None:
            self.callback(info)

    def _log_scalars(self, prefix: str, values: dict[str, float]) -> None:
        if not self.dist.is_main or not self.tensorboard:
            return
        if self._writer is None:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:  # tensorboard is the optional [train] extra
                log.warning("tensorboard is not installed: no TensorBoard logs")
                self.tensorboard = False
                return
            self._writer = SummaryWriter(str(self.out_dir / "tb"))
        for k, v in values.items():
            self._writer.add_scalar(f"{prefix}/{k}", v, self.step)
        self._writer.flush()

    # ------------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        np_state = np.random.get_state()
        return {
            "step": self.step,
            "epoch": self.epoch,
            "batch_in_epoch": self.batch_in_epoch,
            "optimizer": self.optimizer.state_dict(),
            "scaler": self.scaler.state_dict(),
            "pivot": self.pivot.state_dict(),
            "rng_python": random.getstate(),
            "rng_numpy": (
                np_state[0],
                torch.from_numpy(np_state[1].astype(np.int64)),
                int(np_state[2]),
                int(np_state[3]),
                float(np_state[4]),
            ),
            "rng_torch": torch.get_rng_state(),
            "rng_cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
            "world_size": self.dist.world_size,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.step, self.epoch = int(state["step"]), int(state["epoch"])
        self.batch_in_epoch = int(state["batch_in_epoch"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scaler.load_state_dict(state["scaler"])
        self.pivot.load_state_dict(state["pivot"])
        random.setstate(state["rng_python"])
        name, keys, pos, has_gauss, cached = state["rng_numpy"]
        np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
        torch.set_rng_state(state["rng_torch"])
        if state.get("rng_cuda") and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["rng_cuda"])
        if self.batch_in_epoch >= len(self.sampler):
            self.epoch += 1
            self.batch_in_epoch = 0

    def save_checkpoint(self, path: str | Path | None = None) -> Path:
        """Save model + trainer state (rank 0 writes; every rank waits)."""
        from unitalker.models.checkpoint import save_model

        d = (
            Path(path)
            if path is not None
            else self.out_dir / "checkpoints" / f"step_{self.step:07d}"
        )
        if self.dist.is_main:
            try:
                self._write_checkpoint(d, save_model)
            except OSError as e:
                # e.g. a full disk: say what was being written; the atomic writers have
                # removed their temporaries, so no half-written checkpoint is left.
                raise OSError(
                    e.errno,
                    f"cannot write the checkpoint at step {self.step}: {e.strerror or e}",
                    str(d),
                ) from e
        barrier(self.dist)
        return d

    def _write_checkpoint(self, d: Path, save_model: Callable[..., Any]) -> None:
        extra = {**self.meta, "step": self.step, "epoch": self.epoch}
        save_model(self.model, d, extra=extra)
        if self.identity_templates:
            from safetensors.torch import save_file

            tensors = {
                k: torch.as_tensor(np.asarray(v, np.float32)).contiguous()
                for k, v in self.identity_templates.items()
            }
            _atomic(d / TEMPLATES_FILE, lambda f: save_file(tensors, f))
        state = self.state_dict()
        _atomic(d / STATE_FILE, lambda f: torch.save(state, f))
        self._prune()

    def _prune(self) -> None:
        keep = self.keep_last
        root = self.out_dir / "checkpoints"
        if keep <= 0 or not root.exists():
            return
        for old in sorted(root.glob("step_*"))[:-keep]:
            shutil.rmtree(old, ignore_errors=True)  # only our own step_* folders

    def resume(self, ckpt_dir: str | Path) -> None:
        """Load trainer state from a checkpoint folder (the model must already hold its weights)."""
        f = Path(ckpt_dir) / STATE_FILE
        try:
            state = torch.load(f, map_location="cpu", weights_only=True)
            if not isinstance(state, dict):
                raise TypeError(f"holds a {type(state).__name__}, not a state dict")
            if int(state.get("world_size", 1)) != self.dist.world_size:
                log.warning(
                    "resuming a %s-process run on %s processes: the data order differs",
                    state.get("world_size"),
                    self.dist.world_size,
                )
            self.load_state_dict(state)
        except Exception as e:  # noqa: BLE001 - torch raises many types for a bad file
            # torch's own message suggests weights_only=False, which would run any code in
            # the file: never pass that advice on.
            detail = str(e).splitlines()[0] if str(e) else ""
            if "weights_only" in str(e) or "pickle" in detail.lower():
                detail = "not a weights-only state file"
            raise TrainStateError(
                f"--resume: {f}: cannot read the trainer state (corrupt, truncated or not "
                f"written by unitalker: {type(e).__name__}{': ' + detail if detail else ''}); "
                "resume from an earlier checkpoint folder or start a new run"
            ) from None


def _atomic(path: Path, write: Callable[[str], None]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=path.suffix)
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)

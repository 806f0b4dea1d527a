"""Training throughput: clips per second of batch size 1 against bucketed batches.

Behind ``unitalker bench --train-data DIR``. Every setting is a full training run built by
:func:`~unitalker.training.builders.build_run` from the same config (same seed, model and
data) with its own batching; the settings are timed in turns, round after round, so a
machine shared with other jobs slows them alike, and each round gives a ratio of its own.
A setting's clips/s counts everything a training step does: loading and collating the
batch (through the DataLoader and its workers), forward, backward and the Adam step.

Settings:

* ``batch 1``: one clip per step (the original UniTalker's training).
* ``batch 1, no audio cache``: the same, decoding every clip's audio every time.
* ``batch N, no bucketing``: batches of random clips (each padded to its longest).
* ``batch N, bucketed``: clips of similar length together (the trainer's sampler).
* ``batch N, bucketed, W workers``: the same through ``W`` DataLoader workers.
"""

from __future__ import annotations

import dataclasses
import logging
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from unitalker.config import load_config
from unitalker.training.config import TrainConfig

log = logging.getLogger(__name__)

TARGET_RATIO = 3.0  # issue 13: bucketed batches >= 3x the clips/s of batch size 1
BASELINE = "batch 1"


@dataclass
class ThroughputReport:
    """Clips/s per setting (median over the timed rounds) and the per-round ratios.

    Attributes:
        clips_per_s: setting -> clips/s per timed round.
        padding: setting -> padded frames / real frames of the batches it trained on.
        clips_per_round: clips each setting trains on per round.
        config: the config file measured (or "built-in defaults").
    """

    clips_per_s: dict[str, list[float]] = field(default_factory=dict)
    padding: dict[str, float] = field(default_factory=dict)
    clips_per_round: int = 0
    config: str = ""

    def median(self, setting: str) -> float:
        return statistics.median(self.clips_per_s[setting])

    def ratio(self, setting: str) -> float:
        """Median over rounds of ``setting`` / ``batch 1`` clips/s in the same round."""
        base = self.clips_per_s[BASELINE]
        pairs = zip(self.clips_per_s[setting], base, strict=True)
        return statistics.median(a / b for a, b in pairs)

    def best(self) -> str:
        """The fastest bucketed setting."""
        return max((s for s in self.clips_per_s if "bucketed" in s), key=self.ratio)

    def targets(self) -> dict[str, tuple[bool, str]]:
        best = self.best()
        r = self.ratio(best)
        return {
            f"training: bucketed batches >= {TARGET_RATIO:g}x the clips/s of batch size 1": (
                r >= TARGET_RATIO,
                f"{r:.2f}x ({best})",
            )
        }

    def table(self) -> str:
        rounds = len(self.clips_per_s[BASELINE])
        lines = [
            f"training throughput ({self.config}; {self.clips_per_round} clips per setting "
            f"per round, {rounds} timed round(s), settings interleaved)",
            f"  {'setting':34s} {'clips/s':>8s} {'vs batch 1':>10s} {'padding':>8s}",
        ]
        for s in self.clips_per_s:
            lines.append(
                f"  {s:34s} {self.median(s):8.2f} {self.ratio(s):9.2f}x "
                f"{self.padding.get(s, 0.0):7.1%}"
            )
        for k, (ok, val) in self.targets().items():
            lines.append(f"  [{'met' if ok else 'NOT met'}] {k}: {val}")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {
            **dataclasses.asdict(self),
            "ratios": {s: self.ratio(s) for s in self.clips_per_s},
            "targets": {k: {"met": ok, "value": v} for k, (ok, v) in self.targets().items()},
        }


def _settings(batch_size: int, workers: int) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {
        BASELINE: {"batch_size": 1},
        "batch 1, no audio cache": {"batch_size": 1, "cache": False},
        f"batch {batch_size}, no bucketing": {"batch_size": batch_size, "bucketing": False},
        f"batch {batch_size}, bucketed": {"batch_size": batch_size},
    }
    if workers > 0:
        out[f"batch {batch_size}, bucketed, {workers} worker{'s' * (workers > 1)}"] = {
            "batch_size": batch_size,
            "workers": workers,
        }
    return out


def _endless(trainer: Any) -> Iterator[Any]:
    """Batches of the trainer's epochs, one epoch after another."""
    while True:
        yield from trainer.epoch_loader()
        trainer.epoch += 1


def measure_training_throughput(
    data: str,
    config: str | None = "configs/default.yaml",
    *,
    overrides: tuple[str, ...] = (),
    batch_size: int | None = None,
    workers: int = 1,
    rounds: int = 3,
    clips_per_round: int | None = None,
    progress: Callable[[str], None] | None = None,
) -> ThroughputReport:
    """Time the batching settings on ``data`` with the model and data of ``config``.

    Args:
        data: a manifest (split file, dataset folder or release root) to train on.
        config: the training config whose model, datasets and clip cut are measured
            (None: the built-in defaults).
        overrides: ``key=value`` config overrides (e.g. ``data.fraction=0.2``).
        batch_size: the batched settings' size (default: the config's, at least 2).
        workers: DataLoader workers of the last setting (0: no such setting).
        rounds: timed rounds (one untimed warm-up round runs first).
        clips_per_round: clips per setting per round (default 4 batches).
        progress: called with a line of text as the settings are built and timed.
    """
    from unitalker.data.dataset import AudioCache
    from unitalker.training.builders import build_run

    say = progress or (lambda _msg: None)
    with tempfile.TemporaryDirectory(prefix="unitalker-train-bench-") as tmp:
        base = [
            f"data.manifest={data}",
            f"out_dir={tmp}",
            "log.tensorboard=false",
            "log.ckpt_every=0",
            "log.val_every=0",
            "data.val_split=",
            "schedule.warmup_steps=0",
            "schedule.warmup_epochs=0",
            *overrides,
        ]
        cfg = load_config(TrainConfig, config, base)
        n = batch_size or max(2, cfg.data.batch_size)
        per_round = clips_per_round or 4 * n
        report = ThroughputReport(clips_per_round=per_round, config=config or "built-in defaults")
        runs: dict[str, tuple[Any, Iterator[Any]]] = {}
        for name, s in _settings(n, workers).items():
            say(f"building '{name}'")
            run_cfg = dataclasses.replace(
                cfg,
                data=dataclasses.replace(
                    cfg.data, batch_size=s["batch_size"], num_workers=s.get("workers", 0)
                ),
            )
            trainer = build_run(run_cfg).trainer
            if not s.get("bucketing", True):
                # a pool of one batch: batches are random clips, sorted only inside the batch
                trainer.sampler.bucket_batches = 1
            if s.get("cache", True):
                trainer.train_set.preload()  # steady state: every clip decoded once
            else:  # the clip dataset itself (under an augmentation wrapper, if any)
                clips = getattr(trainer.train_set, "base", trainer.train_set)
                clips.audio_cache = AudioCache(memory=False)
            trainer.model.train()
            trainer.apply_phase()
            runs[name] = (trainer, _endless(trainer))
            report.clips_per_s[name] = []
        real = dict.fromkeys(runs, 0)
        padded = dict.fromkeys(runs, 0)
        for r in range(rounds + 1):
            for name, (trainer, batches) in runs.items():
                done = 0
                t0 = time.perf_counter()
                while done < per_round:
                    batch = next(batches)
                    trainer.train_batch(batch)
                    trainer.optimizer_step()
                    done += len(batch)
                    if r > 0:
                        real[name] += int(batch.motion_lengths.sum())
                        padded[name] += int(batch.mask.numel())
                seconds = time.perf_counter() - t0
                if r > 0:  # round 0 warms up (allocator, oneDNN kernel choice, workers)
                    report.clips_per_s[name].append(done / seconds)
                tag = " (warm-up)" if r == 0 else ""
                say(f"round {r}{tag}: {name}: {done / seconds:.2f} clips/s")
        for name in runs:
            report.padding[name] = padded[name] / max(real[name], 1) - 1
        del runs  # ends the DataLoader workers before the run folder goes
    return report

"""``unitalker train --config CONFIG.yaml [--set key=value ...] [--resume DIR]``.

Also runs under ``torchrun --nproc_per_node N`` (data parallel; rank 0 logs and saves).
"""

from __future__ import annotations

import argparse
import sys


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "train", help="train / fine-tune a UniTalker (one command, torchrun for several processes)"
    )
    p.add_argument("--config", help="training config YAML (see configs/default.yaml)")
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config value, e.g. --set optim.lr=0.0003 (repeatable)",
    )
    p.add_argument(
        "--resume", metavar="DIR", help="continue exactly from a checkpoint / run folder"
    )
    p.add_argument(
        "--flame-model",
        metavar="PATH",
        help="FLAME model (npz or FLAME 2020 pkl, read without running code) for the "
        "vertex loss of flame_params_from_dadhead",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from unitalker.cli import CLIError
    from unitalker.config import ConfigError, load_config
    from unitalker.training.builders import ResumeError, TrainSetupError, build_run
    from unitalker.training.config import TrainConfig
    from unitalker.training.distributed import finish, init_from_env
    from unitalker.training.trainer import TrainStateError

    overrides = list(args.overrides)
    if args.flame_model:
        overrides.append(f"loss.flame_model={args.flame_model}")
    try:
        cfg = load_config(TrainConfig, args.config, overrides)
    except ConfigError as e:
        raise CLIError(f"bad config: {e}") from None
    dist = init_from_env(cfg.device)
    bar = None

    def progress(info) -> None:  # noqa: ANN001 - StepInfo
        nonlocal bar
        if args.no_progress:
            if info.event != "step" or info.step % max(1, cfg.log.every) == 0:
                print(_line(info), file=sys.stderr, flush=True)
            return
        if bar is None:
            from tqdm import tqdm

            bar = tqdm(
                total=info.total_steps,
                initial=info.step - 1,
                unit="step",
                dynamic_ncols=True,
                desc="train",
            )
        if info.event == "step":
            bar.update(1)
            post = {k: f"{v:.3g}" for k, v in info.losses.items()}
            post["clips/s"] = f"{info.clips_per_s:.1f}"
            post["phase"] = "warm-up" if info.warmup else "full"
            bar.set_postfix(post, refresh=False)
        elif info.event == "checkpoint":
            bar.write(f"checkpoint: {info.message}")

    try:
        prepared = build_run(cfg, resume=args.resume, dist=dist, callback=progress)
    except (ConfigError, TrainSetupError, ResumeError, TrainStateError) as e:
        raise CLIError(str(e)) from None
    if dist.is_main:
        t = prepared.trainer
        print(
            f"training {sum(p.numel() for p in t.model.parameters()) / 1e6:.2f} M parameters, "
            f"heads {t.model.heads}, {len(t.train_set)} clips, {t.total_steps} steps "
            f"({t.steps_per_epoch}/epoch) on {t.device}"
            + (f", {dist.world_size} processes" if dist.enabled else "")
            + (f", resumed at step {t.step}" if prepared.resume_dir else ""),
            file=sys.stderr,
        )
    try:
        result = prepared.trainer.fit()
    finally:
        if bar is not None:
            bar.close()  # an error is printed on its own line, not glued to the bar
    if dist.is_main:
        print(
            f"done: {result.steps} steps in {result.seconds:.1f} s ({result.clips_per_s:.2f} clips/s); "
            f"model: {result.final_dir}",
            file=sys.stderr,
        )
        if result.val:
            print(
                "validation: " + ", ".join(f"{k} {v:.4g}" for k, v in result.val.items()),
                file=sys.stderr,
            )
    finish(dist)
    return 0


def _line(info) -> str:  # noqa: ANN001
    losses = " ".join(f"{k}={v:.4g}" for k, v in info.losses.items())
    return (
        f"[{info.event}] step {info.step}/{info.total_steps} epoch {info.epoch} "
        f"{'warm-up ' if info.warmup else ''}{losses} {info.clips_per_s:.1f} clips/s {info.message}"
    )

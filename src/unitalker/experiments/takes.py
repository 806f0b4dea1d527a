"""Fine-tuning the bundled default model on Live Link Face takes of a new performer (issue 15)."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

from unitalker.config import load_config
from unitalker.experiments.common import (
    Rows,
    Setup,
    mean_rows,
    over_seeds,
    ratio_table_lines,
    seeds_text,
    split_lve,
    table_lines,
    train_run,
    write_result,
)
from unitalker.experiments.plots import fraction_plot
from unitalker.training.config import TrainConfig

FINETUNE_CONFIG = Path("configs/finetune-arkit.yaml")


def finetune_takes(
    setup: Setup,
    datasets: list[str],
    minutes: tuple[float, ...] = (1.0, 2.0, 5.0),
    test_minutes: float = 2.0,
    config: Path = FINETUNE_CONFIG,
) -> str:
    """Fine-tune the bundled default model on 1, 2, 5 minutes of Live Link Face takes.

    One new synthetic performer (:mod:`unitalker.synth.takes`) records takes of about
    15 s (CSV at 60 fps + a .mov whose audio track holds the speech, every third take a
    .wav too); ``unitalker data convert livelinkface`` turns them into a dataset; each
    run fine-tunes with ``config`` (the documented recipe) on the first takes up to
    ``m`` minutes and is evaluated on held-out takes of the same performer.
    ``setup.data`` is not read (the takes are generated under ``setup.work_dir``).
    """
    import dataclasses

    import numpy as np

    from unitalker.data import load_manifest
    from unitalker.data.livelinkface import convert_livelinkface
    from unitalker.data.manifest import write_split_file
    from unitalker.evaluation.evaluate import evaluate
    from unitalker.models.checkpoint import load_model
    from unitalker.synth.takes import generate_takes

    t0 = time.time()
    if not Path(config).exists():
        raise FileNotFoundError(
            f"{config}: the fine-tuning recipe is missing (run from the "
            "repository root, or pass its path)"
        )
    root = setup.work_dir / "finetune_takes"
    take_s = 4.0 if setup.quick else 15.0
    n_train = max(1, math.ceil(max(minutes) * 60 / take_s))
    n_test = max(1, math.ceil(test_minutes * 60 / take_s))
    data = root / "data"
    if not (data / "test.json").exists():
        for split, n, seed in (("train", n_train, 0), ("test", n_test, 1)):
            folder = root / "takes" / split
            if not folder.exists():
                generate_takes(
                    folder,
                    n,
                    seconds=take_s,
                    seed=seed,
                    wav_every=3,
                    prefix=f"{split.title()}Slate",
                )
            convert_livelinkface(folder, data, subject="performer", split=split, overwrite=True)
    man = load_manifest(data)
    train = man.split("train").part("LLF")
    doc = json.loads(train.path.read_text())
    frames = [len(np.load(e.annot_path, mmap_mode="r")) / e.fps for e in train.entries]
    actual: dict[str, float] = {}
    for m in minutes:  # the first takes up to m minutes (nested subsets)
        k = next(
            (i + 1 for i in range(len(frames)) if sum(frames[: i + 1]) >= m * 60 - 1e-6),
            len(frames),
        )
        write_split_file(data / f"train_{m:g}min.json", doc["data"][:k], doc["info"]["id_list"])
        actual[f"{m:g} min"] = sum(frames[:k]) / 60
    test_min = (
        sum(
            len(np.load(e.annot_path, mmap_mode="r")) / e.fps
            for e in man.split("test").part("LLF").entries
        )
        / 60
    )
    cols = list(actual)
    quick = ("schedule.steps=2", "data.batch_size=2") if setup.quick else ()
    if setup.steps > 0 and not setup.quick:
        quick = (f"schedule.steps={setup.steps}",)
    ft = dataclasses.replace(setup, data=data)  # same train_seconds record

    def lve(model: Any, cache: Path) -> float:
        if cache.exists():
            return json.loads(cache.read_text())["LVE"]
        res = evaluate(
            model,
            data,
            split="test",
            datasets=("LLF",),
            identity="gt",
            static_baseline=model is None,
        )[0].results[0]
        cache.parent.mkdir(parents=True, exist_ok=True)
        cache.write_text(json.dumps({"LVE": res.summary.per_sequence["LVE"]}))
        return res.summary.per_sequence["LVE"]

    static = lve(None, root / "static_lve.json")
    default = lve(load_model("default", "cpu"), root / "default_lve.json")

    def one(seed: int) -> Rows:
        rows: Rows = {
            "static template": dict.fromkeys(cols, static),
            "default model, not fine-tuned": dict.fromkeys(cols, default),
            "fine-tuned (new identity)": {},
        }
        for m, col in zip(minutes, cols, strict=True):
            run = train_run(
                ft,
                f"finetune_takes/{m:g}min",
                seed,
                f"data.train_split=train_{m:g}min",
                *quick,
                file=Path(config),
            )
            rows["fine-tuned (new identity)"][col] = split_lve(run, ft, ["LLF"])["LLF"]
        return rows

    per_seed = over_seeds(setup, one)
    cfg = load_config(TrainConfig, Path(config), list(quick))
    lines = [
        "# Fine-tuning the default model on Live Link Face takes",
        "",
        "A new synthetic performer (a wider jaw, rounder lips and lopsided spreading "
        "than any bench speaker; `unitalker.synth.takes`) recorded "
        f"{n_train} + {n_test} takes of about {take_s:g} s in the Live Link Face "
        "layout (CSV at 60 fps, speech in the .mov's AAC track, every third take a "
        "wav too), converted with `unitalker data convert livelinkface`. Each run "
        f"fine-tunes the bundled default model with `{config}` ({cfg.schedule.steps} "
        f"steps, batch {cfg.data.batch_size}, lr {cfg.optim.lr:g}, trainable: "
        f"{', '.join(cfg.finetune.trainable) or 'all'}) on the first takes up to the "
        f"amount shown, and is evaluated on the {test_min:.1f} held-out minutes "
        f"(LVE on the synth_arkit52 rig, per-sequence mean; {seeds_text(setup)}). "
        "The not fine-tuned default model conditions the unknown performer on the "
        "pivot identity.",
        "",
        "Whole takes are used, so the columns hold "
        + ", ".join(f"{actual[c]:.2f}" for c in cols)
        + " minutes of training data.",
        "",
        *table_lines(per_seed, cols, "model \\ data"),
        "",
        *ratio_table_lines(
            per_seed,
            {
                "fine-tuned vs default": (
                    "fine-tuned (new identity)",
                    "default model, not fine-tuned",
                )
            },
            cols,
            "LVE change",
        ),
    ]
    mean = {k: v for k, v in mean_rows(per_seed).items() if k != "static template"}  # off-scale
    fraction_plot(
        mean,
        tuple(actual[c] for c in cols),
        cols,
        setup.out_dir / "finetune-takes.png",
        xlabel="minutes of takes",
        title="Fine-tuning on Live Link Face takes",
    )
    return write_result(setup, "finetune-takes", lines, time.time() - t0, needs_data=False)

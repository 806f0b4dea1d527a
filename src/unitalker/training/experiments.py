"""The paper's claims in miniature on A2F-Synth: one function per experiment.

Each trains small models with :func:`unitalker.training.run.train`, evaluates them with
:func:`unitalker.evaluation.evaluate.evaluate`, and writes a markdown table (and a PNG
when matplotlib is installed) into ``out_dir``. Numbers are reported as measured.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from unitalker.config import load_config
from unitalker.training.config import TrainConfig

log = logging.getLogger(__name__)

SMALL = [
    "model.encoder.hidden_size=64", "model.encoder.n_layers=2", "model.encoder.n_heads=4",
    "model.encoder.n_mels=40", "model.decoder.hidden=64", "model.decoder.id_dim=16",
    "model.pca_components=32", "log.tensorboard=false", "data.val_split=", "data.batch_size=4",
    "optim.lr=0.0005", "schedule.freeze_features=false", "data.max_seconds=6.0",
]  # fmt: skip
QUICK = [
    *SMALL[:7],
    "model.encoder.hidden_size=32",
    "model.encoder.n_layers=1",
    "model.decoder.hidden=32",
]


def _cfg(data: Path, out: Path, quick: bool, *extra: str) -> TrainConfig:
    base = SMALL + (QUICK[7:] if quick else [])
    return load_config(
        TrainConfig, None, [f"data.manifest={data}", f"out_dir={out}", *base, *extra]
    )


def _lve(report: Any) -> dict[str, float]:
    return {r.dataset: r.summary.per_sequence["LVE"] for r in report.results}


def table5(data: str | Path, out_dir: str | Path, datasets: list[str], steps: int,
           quick: bool = False) -> str:  # fmt: skip
    """Single-dataset models vs one unified model vs unified + fine-tuned (Table 5)."""
    from unitalker.evaluation.evaluate import evaluate
    from unitalker.models.checkpoint import load_model
    from unitalker.training.run import train

    data, out = Path(data), Path(out_dir)
    runs = out / "runs_table5"
    rows: dict[str, dict[str, float]] = {"single [D*]": {}, "unified": {}, "unified + FT": {}}
    for d in datasets:
        r = train(_cfg(data, runs / f"single_{d}", quick, f"schedule.steps={steps}",
                       f"schedule.warmup_steps={steps // 10}", f"data.datasets=[{d}]"))  # fmt: skip
        rows["single [D*]"].update(
            _lve(evaluate(load_model(r.final_dir, "cpu"), data, datasets=(d,))[0])
        )
    ds_list = "[" + ", ".join(datasets) + "]"
    uni = train(_cfg(data, runs / "unified", quick, f"schedule.steps={steps * len(datasets)}",
                     f"schedule.warmup_steps={steps // 10}", f"data.datasets={ds_list}"))  # fmt: skip
    rows["unified"] = _lve(
        evaluate(load_model(uni.final_dir, "cpu"), data, datasets=tuple(datasets))[0]
    )
    for d in datasets:
        r = train(_cfg(data, runs / f"ft_{d}", quick, f"schedule.steps={max(1, steps // 4)}",
                       "schedule.warmup_steps=0", "schedule.warmup_epochs=0",
                       f"model.init_from={uni.final_dir}", f"data.datasets=[{d}]"))  # fmt: skip
        rows["unified + FT"].update(
            _lve(evaluate(load_model(r.final_dir, "cpu"), data, datasets=(d,))[0])
        )
    md = ["# Table 5 in miniature (A2F-Synth)", "",
          f"LVE (per-sequence mean, test split); {steps} steps per single-dataset model, "
          f"{steps * len(datasets)} for the unified model, {max(1, steps // 4)} fine-tuning steps.", "",
          "| model | " + " | ".join(datasets) + " |", "|---|" + "---|" * len(datasets)]  # fmt: skip
    for name, vals in rows.items():
        md.append(
            f"| {name} | " + " | ".join(f"{vals.get(d, float('nan')):.4e}" for d in datasets) + " |"
        )
    text = "\n".join(md) + "\n"
    out.mkdir(parents=True, exist_ok=True)
    (out / "table5.md").write_text(text)
    _plot(rows, datasets, out / "table5.png", "LVE per dataset")
    return text


def pivot(data: str | Path, out_dir: str | Path, datasets: list[str], steps: int,
          quick: bool = False) -> str:  # fmt: skip
    """With vs without the pivot identity, evaluated with the pivot / GT identity (Fig. 3)."""
    from unitalker.evaluation.evaluate import evaluate
    from unitalker.models.checkpoint import load_model
    from unitalker.training.run import train

    data, out = Path(data), Path(out_dir)
    ds_list = "[" + ", ".join(datasets) + "]"
    rows = {}
    for name, prob in (("pivot p=0.1", 0.1), ("no pivot (p=0)", 0.0)):
        r = train(_cfg(data, out / "runs_pivot" / name.split()[0].replace("(", ""), quick,
                       f"schedule.steps={steps}", f"schedule.warmup_steps={steps // 10}",
                       f"data.datasets={ds_list}", f"pivot_prob={prob}"))  # fmt: skip
        m = load_model(r.final_dir, "cpu")
        rows[f"{name}, GT id"] = _lve(evaluate(m, data, datasets=tuple(datasets))[0])
        rows[f"{name}, pivot id"] = _lve(
            evaluate(m, data, datasets=tuple(datasets), identity="pivot")[0]
        )
    md = ["# Pivot identity (Fig. 3) in miniature", "",
          "LVE (per-sequence mean, test split). 'pivot id' = inference with the pivot row, "
          "which the p=0 model never trained (the cross-identity case).", "",
          "| model, inference identity | " + " | ".join(datasets) + " |", "|---|" + "---|" * len(datasets)]  # fmt: skip
    for name, vals in rows.items():
        md.append(
            f"| {name} | " + " | ".join(f"{vals.get(d, float('nan')):.4e}" for d in datasets) + " |"
        )
    text = "\n".join(md) + "\n"
    out.mkdir(parents=True, exist_ok=True)
    (out / "pivot.md").write_text(text)
    _plot(rows, datasets, out / "pivot.png", "LVE")
    return text


def _plot(rows: dict[str, dict[str, float]], datasets: list[str], path: Path, title: str) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        log.warning("matplotlib is not installed: no plot")
        return
    fig, ax = plt.subplots(figsize=(6, 3.5))
    w = 0.8 / max(1, len(rows))
    for i, (name, vals) in enumerate(rows.items()):
        ax.bar(
            [j + i * w for j in range(len(datasets))],
            [vals.get(d, 0.0) for d in datasets],
            w,
            label=name,
        )
    ax.set_xticks([j + 0.4 - w / 2 for j in range(len(datasets))], datasets)
    ax.set_title(title)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


EXPERIMENTS = {"table5": table5, "pivot": pivot}

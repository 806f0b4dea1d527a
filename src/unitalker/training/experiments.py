"""The paper's claims in miniature on A2F-Synth: one function per experiment.

Each trains small models with :func:`unitalker.training.run.train`, evaluates them with
:func:`unitalker.evaluation.evaluate.evaluate` on the test split, and writes a markdown
table (and a PNG when matplotlib is installed) named after the experiment into
``out_dir``. Training runs go under ``work_dir``. Numbers are reported as measured: LVE
is the per-sequence mean (the original UniTalker's averaging) in the dataset's units.

=================  ======================================================  ============
experiment         question                                                paper
=================  ======================================================  ============
table5             single-dataset models vs one unified model vs           Table 5
                   unified + fine-tuned per dataset
pivot              with / without pivot identity, inference with the GT,   Fig. 3
                   a cross-dataset and the pivot identity
pca-warmup         with / without PCA and decoder warm-up, single and      Fig. 5
                   multi-dataset, two learning rates
finetune-fraction  fine-tune UniTalker-[others] vs a bare encoder on an    Fig. 4
                   unseen convention at decreasing data fractions
=================  ======================================================  ============

The built-in encoder has no self-supervised pre-training, so the "bare encoder" of the
Fig. 4 analogue is a randomly initialised one; the paper's is wav2vec2-xlsr-53.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from unitalker.config import load_config
from unitalker.training.config import TrainConfig

log = logging.getLogger(__name__)

SMALL = [
    "model.encoder.family=builtin", "model.encoder.hidden_size=64", "model.encoder.n_layers=2",
    "model.encoder.n_heads=4", "model.encoder.n_mels=40", "model.decoder.hidden=64",
    "model.decoder.id_dim=16", "model.pca_components=32", "log.tensorboard=false",
    "log.every=50", "data.val_split=", "data.batch_size=4", "optim.lr=0.0005",
    "optim.grad_clip=0", "schedule.freeze_features=false", "data.max_seconds=6.0",
]  # fmt: skip
"""The experiment model: built-in encoder, TCN decoder, ~0.3 M parameters."""
QUICK = [
    "model.encoder.hidden_size=32", "model.encoder.n_layers=1", "model.encoder.n_heads=2",
    "model.decoder.hidden=32", "model.pca_components=8",
]  # fmt: skip
"""Test-sized overrides (``--quick``)."""


@dataclass
class Setup:
    """Where the data is, where runs and results go, how big and how many the runs are."""

    data: Path
    out_dir: Path
    work_dir: Path
    steps: int
    quick: bool = False
    seeds: tuple[int, ...] = (0,)
    train_seconds: dict[str, float | None] = field(default_factory=dict)
    """Training wall time per run used (None: trained by an older version, not recorded)."""

    def config(self, run: str, seed: int, *extra: str) -> TrainConfig:
        base = SMALL + (QUICK if self.quick else [])
        return load_config(TrainConfig, None, [f"data.manifest={self.data}",
                           f"out_dir={self.run_dir(run, seed)}", f"seed={seed}", *base, *extra])  # fmt: skip

    def run_dir(self, run: str, seed: int) -> Path:
        return self.work_dir / run / f"seed{seed}"


Rows = dict[str, dict[str, float]]


def _listing(keys: list[str]) -> str:
    return "[" + ", ".join(keys) + "]"


def _train(setup: Setup, run: str, seed: int, *extra: str) -> Path:
    """Train one model (skipped when its final folder exists: reruns resume the table)."""
    from unitalker.models.checkpoint import config_file, read_checkpoint_config
    from unitalker.training.run import train

    final = setup.run_dir(run, seed) / "model"
    record = final.parent / "train_seconds.txt"
    cfg = setup.config(run, seed, *extra)
    if config_file(final) is not None:
        from unitalker.config import to_dict

        saved = read_checkpoint_config(final)["extra"].get("train_config", {})
        want = json.loads(json.dumps(to_dict(cfg)))
        for key in ("data", "model", "optim", "schedule", "loss", "finetune", "pivot_prob", "seed"):
            a, b = saved.get(key), want.get(key)
            if isinstance(a, dict) and isinstance(b, dict):  # paths may differ
                a = {k: v for k, v in a.items() if k not in ("manifest", "init_from", "cache_dir")}
                b = {k: v for k, v in b.items() if k not in ("manifest", "init_from", "cache_dir")}
            if a != b:
                raise ValueError(f"{final} was trained with another {key} setting ({a} != {b}): "
                                 "use another --work folder or delete that run")  # fmt: skip
        log.info("reusing %s", final)
        setup.train_seconds[str(final)] = float(record.read_text()) if record.exists() else None
        return final
    t0 = time.time()
    res = train(cfg)
    seconds = time.time() - t0
    record.write_text(f"{seconds:.1f}\n")
    setup.train_seconds[str(final)] = seconds
    log.info("%s seed %d: %d steps in %.0f s", run, seed, res.steps, seconds)
    return res.final_dir


def _lve(model_dir: Path, setup: Setup, datasets: list[str], identity: str = "gt"):
    """Per-dataset LVE (per-sequence mean) on the test split, cached beside the model."""
    from unitalker.evaluation.evaluate import evaluate
    from unitalker.models.checkpoint import load_model

    cache = model_dir.parent / f"test_lve_{identity}_{'-'.join(datasets)}.json"
    weights = model_dir / "model.safetensors"
    if cache.exists() and weights.exists() and cache.stat().st_mtime >= weights.stat().st_mtime:
        return json.loads(cache.read_text())
    model = load_model(model_dir, "cpu")
    report = evaluate(model, setup.data, datasets=tuple(datasets), identity=identity)[0]
    lve = {r.dataset: r.summary.per_sequence["LVE"] for r in report.results}
    cache.write_text(json.dumps(lve))
    return lve


def _baseline(setup: Setup, datasets: list[str]) -> dict[str, float]:
    """LVE of the static template (the "does not move" reference)."""
    from unitalker.evaluation.evaluate import evaluate

    report = evaluate(None, setup.data, datasets=tuple(datasets), static_baseline=True)[0]
    return {r.dataset: r.summary.per_sequence["LVE"] for r in report.results}


def _over_seeds(setup: Setup, fn: Callable[[int], Rows]) -> list[Rows]:
    return [fn(seed) for seed in setup.seeds]


def _mean(per_seed: list[Rows]) -> Rows:
    out: Rows = {}
    for row in per_seed[0]:
        cols = per_seed[0][row]
        out[row] = {c: _nanmean([r[row].get(c, math.nan) for r in per_seed]) for c in cols}
    return out


def _nanmean(xs: list[float]) -> float:
    ok = [x for x in xs if math.isfinite(x)]
    return sum(ok) / len(ok) if ok else math.nan


def _std(xs: list[float]) -> float:
    ok = [x for x in xs if math.isfinite(x)]
    if len(ok) < 2:
        return math.nan
    m = sum(ok) / len(ok)
    return math.sqrt(sum((x - m) ** 2 for x in ok) / (len(ok) - 1))


def _fmt(v: float | None) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    return f"{v:.3e}"


def _cell(xs: list[float]) -> str:
    """``mean`` or ``mean ± std`` (sample std over seeds; none for a constant row)."""
    if not xs or not any(math.isfinite(x) for x in xs):
        return "-"
    sd = _std(xs)
    return _fmt(_nanmean(xs)) + ("" if math.isnan(sd) or sd == 0 else f" ± {sd:.1e}")


def _pct(xs: list[float]) -> str:
    sd = _std(xs)
    return f"{_nanmean(xs):+.1%}" + ("" if math.isnan(sd) else f" ± {sd:.1%}")


def _table(per_seed: list[Rows], cols: list[str], first: str) -> list[str]:
    lines = [f"| {first} | " + " | ".join(cols) + " |", "|---|" + "---:|" * len(cols)]
    for row in per_seed[0]:
        cells = [_cell([r[row].get(c, math.nan) for r in per_seed]) for c in cols]
        lines.append(f"| {row} | " + " | ".join(cells) + " |")
    return lines


def _ratio_table(per_seed: list[Rows], pairs: dict[str, tuple[str, str]], cols: list[str],
                 first: str) -> list[str]:  # fmt: skip
    """``name: (a, b)`` -> a row of ``a / b - 1`` per column (mean ± std over seeds), plus
    how many seeds have ``a < b``."""
    n = len(per_seed)
    head = f"| {first} | " + " | ".join(cols) + (" | lower in |" if n > 1 else " |")
    lines = [head, "|---|" + "---:|" * len(cols) + ("---:|" if n > 1 else "")]
    for name, (a, b) in pairs.items():
        ratios = {c: [r[a][c] / r[b][c] - 1 for r in per_seed] for c in cols}
        cells = [_pct(ratios[c]) for c in cols]
        if n > 1:
            wins = sum(x < 0 for c in cols for x in ratios[c])
            cells.append(f"{wins}/{n * len(cols)}")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return lines


def _seeds_text(setup: Setup) -> str:
    n = len(setup.seeds)
    return ("one seed" if n == 1 else
            f"mean ± sample std over the {n} seeds {', '.join(map(str, setup.seeds))}, which "
            "set initialisation, data order, pivot draws and data subsets")  # fmt: skip


def _write(setup: Setup, name: str, lines: list[str], seconds: float) -> str:
    seeds = " ".join(map(str, setup.seeds))
    known = [v for v in setup.train_seconds.values() if v is not None]
    cost = f"{len(setup.train_seconds)} models"
    if known:
        cost += f", {sum(known) / 60:.1f} min of training"
        if len(known) < len(setup.train_seconds):
            cost += f" for the {len(known)} with a record"
    lines += ["", f"Cost: {cost} on 2 CPU cores{' (quick test-sized run)' if setup.quick else ''}; "
              f"this invocation took {seconds / 60:.1f} min. Reproduce: "
              f"`unitalker experiment {name} --seeds {seeds}` after "
              "`scripts/prepare_synth.sh data` (trained runs under `--work` are reused)."]  # fmt: skip
    text = "\n".join(lines) + "\n"
    setup.out_dir.mkdir(parents=True, exist_ok=True)
    (setup.out_dir / f"{name}.md").write_text(text)
    return text


def table5(setup: Setup, datasets: list[str]) -> str:
    """Single-dataset models vs one unified model vs unified + fine-tuned (Table 5)."""
    t0, steps, n = time.time(), setup.steps, len(datasets)
    ft_steps = max(1, steps // 4)
    common = (f"schedule.warmup_steps={max(1, steps // 10)}",)
    base = _baseline(setup, datasets)

    def one(seed: int) -> Rows:
        rows: Rows = {"static template": base, "single-dataset": {}, "unified": {},
                      "unified + FT": {}}  # fmt: skip
        for d in datasets:
            m = _train(setup, f"table5/single_{d}", seed, f"schedule.steps={steps}",
                       f"data.datasets=[{d}]", *common)  # fmt: skip
            rows["single-dataset"].update(_lve(m, setup, [d]))
        uni = _train(setup, "table5/unified", seed, f"schedule.steps={steps * n}",
                     f"data.datasets={_listing(datasets)}", *common)  # fmt: skip
        rows["unified"] = _lve(uni, setup, datasets)
        for d in datasets:
            m = _train(setup, f"table5/ft_{d}", seed, f"schedule.steps={ft_steps}",
                       "schedule.warmup_steps=0", "schedule.warmup_epochs=0",
                       f"model.init_from={uni}", f"data.datasets=[{d}]")  # fmt: skip
            rows["unified + FT"].update(_lve(m, setup, [d]))
        return rows

    per_seed = _over_seeds(setup, one)
    lines = ["# Table 5 in miniature: single-dataset vs unified vs unified + fine-tuned", "",
             f"LVE on the test split (per-sequence mean; {_seeds_text(setup)}). Each "
             f"single-dataset model trains {steps} steps; the unified model trains "
             f"{steps * n} steps on all of {', '.join(datasets)} (the same total); "
             f"fine-tuning adds {ft_steps} steps on one dataset from the unified model.", "",
             *_table(per_seed, datasets, "model"), "",
             *_ratio_table(per_seed, {"unified": ("unified", "single-dataset"),
                                      "unified + FT": ("unified + FT", "single-dataset"),
                                      "unified + FT vs unified": ("unified + FT", "unified")},
                           datasets, "LVE change vs single-dataset")]  # fmt: skip
    mean = _mean(per_seed)
    _bars({k: v for k, v in mean.items() if k != "static template"}, datasets,
          setup.out_dir / "table5.png", "Table 5 in miniature: test LVE")  # fmt: skip
    return _write(setup, "table5", lines, time.time() - t0)


def pivot(setup: Setup, datasets: list[str]) -> str:
    """With vs without the pivot identity; GT, cross-dataset and pivot identities (Fig. 3)."""
    t0 = time.time()
    runs = {"with PIE (p=0.1)": 0.1, "without PIE (p=0)": 0.0}

    def one(seed: int) -> Rows:
        rows: Rows = {}
        for name, prob in runs.items():
            m = _train(setup, f"pivot/p{prob:g}", seed, f"schedule.steps={setup.steps}",
                       f"schedule.warmup_steps={max(1, setup.steps // 10)}",
                       f"data.datasets={_listing(datasets)}", f"pivot_prob={prob}")  # fmt: skip
            rows[f"{name}, GT identity"] = _lve(m, setup, datasets, "gt")
            rows[f"{name}, cross identity"] = _lve(m, setup, datasets, "cross")
            if prob > 0:
                rows[f"{name}, pivot identity"] = _lve(m, setup, datasets, "pivot")
        return rows

    per_seed = _over_seeds(setup, one)
    pairs = {name: (f"{name}, cross identity", f"{name}, GT identity") for name in runs}
    lines = ["# Pivot identity embedding (Fig. 3) in miniature", "",
             f"Two unified models on {', '.join(datasets)} ({setup.steps} steps each), one "
             "replacing the GT identity by the pivot row with probability 0.1, one never. "
             f"LVE on the test split (per-sequence mean; {_seeds_text(setup)}) when each "
             "head is conditioned on the clip's own subject (GT), on a subject of another "
             "dataset (cross identity: the first subject of the next dataset, the mismatch "
             "of Fig. 3), or on the pivot row. Test speakers that have no training clip "
             "(VOCASET-style splits) are conditioned on the pivot even as 'GT', so the "
             "default datasets are ones whose test speakers are seen.", "",
             *_table(per_seed, datasets, "model, inference identity"), "",
             *_ratio_table(per_seed, pairs, datasets, "cross-identity cost (cross / GT - 1)")]  # fmt: skip
    costs = {name: [_nanmean([r[a][d] / r[b][d] - 1 for d in datasets]) for r in per_seed]
             for name, (a, b) in pairs.items()}  # fmt: skip
    lines += ["", "Mean cross-identity cost over the datasets: " + "; ".join(
        f"{name} {_pct(c)}" for name, c in costs.items()) + "."]  # fmt: skip
    _bars(_mean(per_seed), datasets, setup.out_dir / "pivot.png", "Fig. 3 in miniature: test LVE")
    return _write(setup, "pivot", lines, time.time() - t0)


PCA_WARMUP = {"PCA + DW": (True, True), "no PCA": (False, True),
              "no DW": (True, False), "neither": (False, False)}  # fmt: skip


def pca_warmup(setup: Setup, datasets: list[str], lrs: tuple[float, ...] = (5e-4, 3e-3)) -> str:
    """With / without PCA and decoder warm-up, single vs multi-dataset, two lrs (Fig. 5).

    A run counts as diverged when its loss became non-finite or its LVE is not below the
    static-template LVE (the model learnt nothing usable).
    """
    t0 = time.time()
    base = _baseline(setup, datasets)
    scopes = {
        f"single [{datasets[0]}]": [datasets[0]],
        f"unified [{', '.join(datasets)}]": datasets,
    }

    def one(seed: int) -> Rows:
        rows: Rows = {"static template": base}
        for scope, keys in scopes.items():
            steps = setup.steps * (1 if len(keys) == 1 else 2)
            for lr in lrs:
                for variant, (use_pca, use_dw) in PCA_WARMUP.items():
                    tag = variant.replace(" ", "").replace("+", "_").lower()
                    run = f"pca_warmup/{'single' if len(keys) == 1 else 'unified'}_lr{lr:g}_{tag}"
                    extra = [f"schedule.steps={steps}", f"data.datasets={_listing(keys)}",
                             f"optim.lr={lr}", "schedule.warmup_epochs=0",
                             f"schedule.warmup_steps={max(1, steps // 5) if use_dw else 0}"]  # fmt: skip
                    if not use_pca:
                        extra.append("model.pca_components=0")
                    try:
                        vals = _lve(_train(setup, run, seed, *extra), setup, keys)
                    except (FloatingPointError, RuntimeError, ValueError) as e:
                        log.warning("%s seed %d failed: %s", run, seed, e)
                        vals = dict.fromkeys(keys, math.nan)
                    rows[f"{scope}, lr {lr:g}, {variant}"] = vals
        return rows

    per_seed = _over_seeds(setup, one)
    lines = ["# PCA and decoder warm-up (Fig. 5) in miniature", "",
             f"Single-dataset ({datasets[0]}, {setup.steps} steps) and unified "
             f"({', '.join(datasets)}, {setup.steps * 2} steps) models at two learning rates, "
             "with and without PCA heads for the vertex conventions and with and without "
             "decoder warm-up (DW: the audio encoder frozen for the first fifth of the steps). "
             f"LVE on the test split (per-sequence mean; {_seeds_text(setup)}). A run "
             "diverged on a dataset when its LVE is non-finite or not below the static "
             "template's.", "",
             *_table(per_seed, datasets, "setting"), ""]  # fmt: skip
    diverged = []
    for row in per_seed[0]:
        if row == "static template":
            continue
        bad = {d: sum(not (math.isfinite(r[row][d]) and r[row][d] < base[d]) for r in per_seed)
               for d in per_seed[0][row]}  # fmt: skip
        if any(bad.values()):
            text = ", ".join(f"{d}: {k}/{len(per_seed)}" for d, k in bad.items() if k)
            diverged.append(f"| {row} | {text} |")
    if diverged:
        lines += ["| setting | diverged (dataset: seeds) |", "|---|---|", *diverged]
    else:
        lines.append(f"No run diverged: every one of the {(len(per_seed[0]) - 1) * len(per_seed)} "
                     "models ends below the static template on every dataset it trained on.")  # fmt: skip
    mean = _mean(per_seed)
    summary = {v: _nanmean([_nanmean(list(mean[f"{s}, lr {lr:g}, {v}"].values()))
                            / _nanmean(list(mean[f"{s}, lr {lr:g}, PCA + DW"].values()))
                            for s in scopes for lr in lrs]) for v in PCA_WARMUP}  # fmt: skip
    lines += ["", "Mean LVE relative to PCA + DW, averaged over scopes, learning rates and "
              "datasets: " + "; ".join(f"{v} {x:.2f}x" for v, x in summary.items()) + "."]  # fmt: skip
    _lines_plot({k: v for k, v in mean.items() if k != "static template"}, datasets, lrs,
                setup.out_dir / "pca-warmup.png")  # fmt: skip
    return _write(setup, "pca-warmup", lines, time.time() - t0)


def finetune_fraction(setup: Setup, datasets: list[str],
                      fractions: tuple[float, ...] = (1.0, 0.5, 0.25, 0.125, 0.0625)) -> str:  # fmt: skip
    """Fine-tune UniTalker-[others] vs a bare encoder on an unseen convention (Fig. 4).

    ``datasets[0]`` is the target; the others pre-train the unified model. As the paper,
    fine-tuning keeps only the pre-trained encoder (decoder re-initialised, other heads
    dropped); the bare-encoder runs start from random weights.
    """
    from unitalker.data import load_manifest

    t0 = time.time()
    target, others = datasets[0], datasets[1:]
    if not others:
        raise ValueError("finetune-fraction needs the target dataset and at least one other")
    train_entries = load_manifest(setup.data).split("train").entries
    conv_of = {e.dataset: e.convention for e in train_entries}
    n_train = sum(e.dataset == target for e in train_entries)
    if conv_of.get(target) in {conv_of.get(d) for d in others}:
        log.warning("%s's convention %s is also in %s: it is not unseen", target,
                    conv_of[target], others)  # fmt: skip
    cols = [f"{f:g}" for f in fractions]

    def one(seed: int) -> Rows:
        pre = _train(setup, "finetune_fraction/pretrain", seed, f"schedule.steps={setup.steps * 2}",
                     f"schedule.warmup_steps={max(1, setup.steps // 5)}",
                     f"data.datasets={_listing(others)}")  # fmt: skip
        rows: Rows = {"UniTalker encoder": {}, "bare encoder": {}}
        for f, col in zip(fractions, cols, strict=True):
            common = [f"schedule.steps={setup.steps}", f"data.datasets=[{target}]",
                      f"data.fraction={f}", f"schedule.warmup_steps={max(1, setup.steps // 10)}"]  # fmt: skip
            m = _train(setup, f"finetune_fraction/unitalker_{col}", seed, *common,
                       f"model.init_from={pre}", "finetune.reinit_decoder=true",
                       "finetune.drop_other_heads=true")  # fmt: skip
            rows["UniTalker encoder"][col] = _lve(m, setup, [target])[target]
            m = _train(setup, f"finetune_fraction/bare_{col}", seed, *common)
            rows["bare encoder"][col] = _lve(m, setup, [target])[target]
        return rows

    per_seed = _over_seeds(setup, one)
    seen = sorted({conv_of.get(d, d) for d in others})
    lines = ["# Fine-tuning on an unseen convention at decreasing data fractions (Fig. 4)", "",
             f"Target: {target} ({conv_of.get(target, '?')}, {n_train} training clips at "
             f"fraction 1), a convention the pre-trained model never saw. "
             f"UniTalker-[{', '.join(others)}] (conventions {', '.join(seen)}) trains "
             f"{setup.steps * 2} steps; each fine-tuning run trains {setup.steps} steps on "
             f"the kept fraction of {target}'s training set, from the UniTalker encoder "
             "(decoder re-initialised, as the paper) or from a randomly initialised encoder "
             "(ours has no self-supervised pre-training; the paper's bare encoder is "
             "wav2vec2-xlsr-53). LVE on the full test split (per-sequence mean; "
             f"{_seeds_text(setup)}).", "",
             *_table(per_seed, cols, "encoder \\ fraction kept"), "",
             *_ratio_table(per_seed, {"UniTalker vs bare": ("UniTalker encoder", "bare encoder")},
                           cols, "LVE change")]  # fmt: skip
    _fraction_plot(_mean(per_seed), fractions, cols, setup.out_dir / "finetune-fraction.png")
    return _write(setup, "finetune-fraction", lines, time.time() - t0)


EXPERIMENTS: dict[str, Callable[[Setup, list[str]], str]] = {
    "table5": table5,
    "pivot": pivot,
    "pca-warmup": pca_warmup,
    "finetune-fraction": finetune_fraction,
}
DEFAULT_DATASETS = {
    "table5": ["S0", "S1", "S2"],
    "pivot": ["S0", "S2", "S3"],  # test speakers seen in training: their GT rows trained
    "pca-warmup": ["S0", "S1", "S2"],
    "finetune-fraction": ["S0", "S1", "S2", "S3", "S4", "S5"],
}
DEFAULT_STEPS = {"table5": 300, "pivot": 900, "pca-warmup": 300, "finetune-fraction": 400}


# --- plots (matplotlib is optional) -----------------------------------------------------


def _pyplot(path: Path) -> Any | None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        log.warning("matplotlib is not installed: no plot")
        return None
    path.parent.mkdir(parents=True, exist_ok=True)
    return plt


def _bars(rows: dict[str, dict[str, float]], cols: list[str], path: Path, title: str) -> None:
    plt = _pyplot(path)
    if plt is None:
        return
    fig, ax = plt.subplots(figsize=(7, 3.8))
    w = 0.8 / max(1, len(rows))
    for i, (name, vals) in enumerate(rows.items()):
        ax.bar([j + i * w for j in range(len(cols))], [vals.get(c, 0.0) for c in cols], w,
               label=name)  # fmt: skip
    ax.set_xticks([j + 0.4 - w / 2 for j in range(len(cols))], cols)
    ax.set_ylabel("LVE")
    ax.set_title(title)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _lines_plot(rows: dict[str, dict[str, float]], datasets: list[str], lrs: tuple[float, ...],
                path: Path) -> None:  # fmt: skip
    plt = _pyplot(path)
    if plt is None:
        return
    scopes = sorted({name.split(", lr")[0] for name in rows}, key=len)
    fig, axes = plt.subplots(1, len(scopes), figsize=(5 * len(scopes), 3.8), squeeze=False)
    for ax, scope in zip(axes[0], scopes, strict=True):
        for variant in PCA_WARMUP:
            ys = []
            for lr in lrs:
                vals = rows.get(f"{scope}, lr {lr:g}, {variant}", {})
                ys.append(sum(vals.values()) / len(vals) if vals else float("nan"))
            ax.plot([f"{lr:g}" for lr in lrs], ys, marker="o", label=variant)
        ax.set_title(scope, fontsize=9)
        ax.set_xlabel("learning rate")
        ax.set_ylabel("mean test LVE")
        ax.set_yscale("log")
        ax.legend(fontsize=7)
    fig.suptitle("Fig. 5 in miniature: PCA and decoder warm-up")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _fraction_plot(rows: dict[str, dict[str, float]], fractions: tuple[float, ...],
                   cols: list[str], path: Path) -> None:  # fmt: skip
    plt = _pyplot(path)
    if plt is None:
        return
    fig, ax = plt.subplots(figsize=(6, 3.8))
    for name, vals in rows.items():
        ax.plot(fractions, [vals[c] for c in cols], marker="o", label=name)
    ax.set_xscale("log")
    ax.set_xlabel("fraction of the training set (log scale)")
    ax.set_ylabel("test LVE")
    ax.set_title("Fig. 4 in miniature: fine-tuning on an unseen convention")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)

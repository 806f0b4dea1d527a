"""The paper's experiments in miniature on A2F-Synth: Table 4, Table 5, Fig. 3, 4 and 5."""

from __future__ import annotations

import logging
import math
import time

from unitalker.experiments.common import (
    Rows,
    Setup,
    listing,
    mean_rows,
    nanmean,
    over_seeds,
    pct,
    ratio_table_lines,
    seeds_text,
    span,
    split_lve,
    static_lve,
    table_lines,
    train_run,
    write_result,
)
from unitalker.experiments.plots import bars, fraction_plot, lines_plot

log = logging.getLogger(__name__)


def table5(setup: Setup, datasets: list[str]) -> str:
    """Single-dataset models vs one unified model vs unified + fine-tuned (Table 5)."""
    t0, steps, n = time.time(), setup.steps, len(datasets)
    ft_steps = max(1, steps // 4)
    common = (f"schedule.warmup_steps={max(1, steps // 10)}",)
    base = static_lve(setup, datasets)

    def one(seed: int) -> Rows:
        rows: Rows = {
            "static template": base,
            "single-dataset": {},
            "unified": {},
            "unified + FT": {},
        }
        for d in datasets:
            m = train_run(
                setup,
                f"table5/single_{d}",
                seed,
                f"schedule.steps={steps}",
                f"data.datasets=[{d}]",
                *common,
            )
            rows["single-dataset"].update(split_lve(m, setup, [d]))
        uni = train_run(
            setup,
            "table5/unified",
            seed,
            f"schedule.steps={steps * n}",
            f"data.datasets={listing(datasets)}",
            *common,
        )
        rows["unified"] = split_lve(uni, setup, datasets)
        for d in datasets:
            m = train_run(
                setup,
                f"table5/ft_{d}",
                seed,
                f"schedule.steps={ft_steps}",
                "schedule.warmup_steps=0",
                "schedule.warmup_epochs=0",
                f"model.init_from={uni}",
                f"data.datasets=[{d}]",
            )
            rows["unified + FT"].update(split_lve(m, setup, [d]))
        return rows

    per_seed = over_seeds(setup, one)
    lines = [
        "# Table 5 in miniature: single-dataset vs unified vs unified + fine-tuned",
        "",
        f"LVE on the test split (per-sequence mean; {seeds_text(setup)}). Each "
        f"single-dataset model trains {steps} steps; the unified model trains "
        f"{steps * n} steps on all of {', '.join(datasets)} (the same total); "
        f"fine-tuning adds {ft_steps} steps on one dataset from the unified model.",
        "",
        *table_lines(per_seed, datasets, "model"),
        "",
        *ratio_table_lines(
            per_seed,
            {
                "unified": ("unified", "single-dataset"),
                "unified + FT": ("unified + FT", "single-dataset"),
                "unified + FT vs unified": ("unified + FT", "unified"),
            },
            datasets,
            "LVE change vs single-dataset",
        ),
    ]
    mean = mean_rows(per_seed)
    bars(
        {k: v for k, v in mean.items() if k != "static template"},
        datasets,
        setup.out_dir / "table5.png",
        "Table 5 in miniature: test LVE",
    )
    return write_result(setup, "table5", lines, time.time() - t0)


def pivot(setup: Setup, datasets: list[str]) -> str:
    """With vs without the pivot identity; GT, cross-dataset and pivot identities (Fig. 3)."""
    t0 = time.time()
    runs = {"with PIE (p=0.1)": 0.1, "without PIE (p=0)": 0.0}

    def one(seed: int) -> Rows:
        rows: Rows = {}
        for name, prob in runs.items():
            m = train_run(
                setup,
                f"pivot/p{prob:g}",
                seed,
                f"schedule.steps={setup.steps}",
                f"schedule.warmup_steps={max(1, setup.steps // 10)}",
                f"data.datasets={listing(datasets)}",
                f"pivot_prob={prob}",
            )
            rows[f"{name}, GT identity"] = split_lve(m, setup, datasets, "gt")
            rows[f"{name}, cross identity"] = split_lve(m, setup, datasets, "cross")
            if prob > 0:
                rows[f"{name}, pivot identity"] = split_lve(m, setup, datasets, "pivot")
        return rows

    per_seed = over_seeds(setup, one)
    pairs = {name: (f"{name}, cross identity", f"{name}, GT identity") for name in runs}
    lines = [
        "# Pivot identity embedding (Fig. 3) in miniature",
        "",
        f"Two unified models on {', '.join(datasets)} ({setup.steps} steps each), one "
        "replacing the GT identity by the pivot row with probability 0.1, one never. "
        f"LVE on the test split (per-sequence mean; {seeds_text(setup)}) when each "
        "head is conditioned on the clip's own subject (GT), on a subject of another "
        "dataset (cross identity: the first subject of the next dataset, the mismatch "
        "of Fig. 3), or on the pivot row. Test speakers that have no training clip "
        "(VOCASET-style splits) are conditioned on the pivot even as 'GT', so the "
        "default datasets are ones whose test speakers are seen.",
        "",
        *table_lines(per_seed, datasets, "model, inference identity"),
        "",
        *ratio_table_lines(per_seed, pairs, datasets, "cross-identity cost (cross / GT - 1)"),
    ]
    costs = {
        name: [nanmean([r[a][d] / r[b][d] - 1 for d in datasets]) for r in per_seed]
        for name, (a, b) in pairs.items()
    }
    lines += [
        "",
        "Mean cross-identity cost over the datasets: "
        + "; ".join(f"{name} {pct(c)}" for name, c in costs.items())
        + ".",
    ]
    png = setup.out_dir / "pivot.png"
    bars(mean_rows(per_seed), datasets, png, "Fig. 3 in miniature: test LVE")
    return write_result(setup, "pivot", lines, time.time() - t0)


PCA_WARMUP = {
    "PCA + DW": (True, True),
    "no PCA": (False, True),
    "no DW": (True, False),
    "neither": (False, False),
}


def pca_warmup(setup: Setup, datasets: list[str], lrs: tuple[float, ...] = (5e-4, 3e-3)) -> str:
    """With / without PCA and decoder warm-up, single vs multi-dataset, two lrs (Fig. 5).

    A run counts as diverged when its loss became non-finite or its LVE is not below the
    static-template LVE (the model learnt nothing usable).
    """
    t0 = time.time()
    base = static_lve(setup, datasets)
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
                    extra = [
                        f"schedule.steps={steps}",
                        f"data.datasets={listing(keys)}",
                        f"optim.lr={lr}",
                        "schedule.warmup_epochs=0",
                        f"schedule.warmup_steps={max(1, steps // 5) if use_dw else 0}",
                    ]
                    if not use_pca:
                        extra.append("model.pca_components=0")
                    try:
                        vals = split_lve(train_run(setup, run, seed, *extra), setup, keys)
                    except (FloatingPointError, RuntimeError, ValueError) as e:
                        log.warning("%s seed %d failed: %s", run, seed, e)
                        vals = dict.fromkeys(keys, math.nan)
                    rows[f"{scope}, lr {lr:g}, {variant}"] = vals
        return rows

    per_seed = over_seeds(setup, one)
    lines = [
        "# PCA and decoder warm-up (Fig. 5) in miniature",
        "",
        f"Single-dataset ({datasets[0]}, {setup.steps} steps) and unified "
        f"({', '.join(datasets)}, {setup.steps * 2} steps) models at two learning rates, "
        "with and without PCA heads for the vertex conventions and with and without "
        "decoder warm-up (DW: the audio encoder frozen for the first fifth of the steps). "
        f"LVE on the test split (per-sequence mean; {seeds_text(setup)}). A run "
        "diverged on a dataset when its LVE is non-finite or not below the static "
        "template's.",
        "",
        *table_lines(per_seed, datasets, "setting"),
        "",
    ]
    diverged = []
    for row in per_seed[0]:
        if row == "static template":
            continue
        bad = {
            d: sum(not (math.isfinite(r[row][d]) and r[row][d] < base[d]) for r in per_seed)
            for d in per_seed[0][row]
        }
        if any(bad.values()):
            text = ", ".join(f"{d}: {k}/{len(per_seed)}" for d, k in bad.items() if k)
            diverged.append(f"| {row} | {text} |")
    if diverged:
        lines += ["| setting | diverged (dataset: seeds) |", "|---|---|", *diverged]
    else:
        lines.append(
            f"No run diverged: every one of the {(len(per_seed[0]) - 1) * len(per_seed)} "
            "models ends below the static template on every dataset it trained on."
        )
    mean = mean_rows(per_seed)
    summary = {
        v: nanmean(
            [
                nanmean(list(mean[f"{s}, lr {lr:g}, {v}"].values()))
                / nanmean(list(mean[f"{s}, lr {lr:g}, PCA + DW"].values()))
                for s in scopes
                for lr in lrs
            ]
        )
        for v in PCA_WARMUP
    }
    lines += [
        "",
        "Mean LVE relative to PCA + DW, averaged over scopes, learning rates and "
        "datasets: " + "; ".join(f"{v} {x:.2f}x" for v, x in summary.items()) + ".",
    ]
    lines_plot(
        {k: v for k, v in mean.items() if k != "static template"},
        datasets,
        lrs,
        list(PCA_WARMUP),
        setup.out_dir / "pca-warmup.png",
    )
    return write_result(setup, "pca-warmup", lines, time.time() - t0)


def finetune_fraction(
    setup: Setup,
    datasets: list[str],
    fractions: tuple[float, ...] = (1.0, 0.5, 0.25, 0.125, 0.0625),
) -> str:
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
        log.warning(
            "%s's convention %s is also in %s: it is not unseen", target, conv_of[target], others
        )
    cols = [f"{f:g}" for f in fractions]

    def one(seed: int) -> Rows:
        pre = train_run(
            setup,
            "finetune_fraction/pretrain",
            seed,
            f"schedule.steps={setup.steps * 2}",
            f"schedule.warmup_steps={max(1, setup.steps // 5)}",
            f"data.datasets={listing(others)}",
        )
        rows: Rows = {"UniTalker encoder": {}, "bare encoder": {}}
        for f, col in zip(fractions, cols, strict=True):
            common = [
                f"schedule.steps={setup.steps}",
                f"data.datasets=[{target}]",
                f"data.fraction={f}",
                f"schedule.warmup_steps={max(1, setup.steps // 10)}",
            ]
            m = train_run(
                setup,
                f"finetune_fraction/unitalker_{col}",
                seed,
                *common,
                f"model.init_from={pre}",
                "finetune.reinit_decoder=true",
                "finetune.drop_other_heads=true",
            )
            rows["UniTalker encoder"][col] = split_lve(m, setup, [target])[target]
            m = train_run(setup, f"finetune_fraction/bare_{col}", seed, *common)
            rows["bare encoder"][col] = split_lve(m, setup, [target])[target]
        return rows

    per_seed = over_seeds(setup, one)
    seen = sorted({conv_of.get(d, d) for d in others})
    lines = [
        "# Fine-tuning on an unseen convention at decreasing data fractions (Fig. 4)",
        "",
        f"Target: {target} ({conv_of.get(target, '?')}, {n_train} training clips at "
        f"fraction 1), a convention the pre-trained model never saw. "
        f"UniTalker-[{', '.join(others)}] (conventions {', '.join(seen)}) trains "
        f"{setup.steps * 2} steps; each fine-tuning run trains {setup.steps} steps on "
        f"the kept fraction of {target}'s training set, from the UniTalker encoder "
        "(decoder re-initialised, as the paper) or from a randomly initialised encoder "
        "(ours has no self-supervised pre-training; the paper's bare encoder is "
        "wav2vec2-xlsr-53). LVE on the full test split (per-sequence mean; "
        f"{seeds_text(setup)}).",
        "",
        *table_lines(per_seed, cols, "encoder \\ fraction kept"),
        "",
        *ratio_table_lines(
            per_seed,
            {"UniTalker vs bare": ("UniTalker encoder", "bare encoder")},
            cols,
            "LVE change",
        ),
    ]
    fraction_plot(mean_rows(per_seed), fractions, cols, setup.out_dir / "finetune-fraction.png")
    return write_result(setup, "finetune-fraction", lines, time.time() - t0)


def table4(setup: Setup, datasets: list[str], method: str = "rig") -> str:
    """Multi-head UniTalker vs the data-preprocessing baseline (Table 4).

    ``datasets[0]`` must be in the common convention (``synth_head_vertices``: S0); the
    settings are the prefixes ``[d0]``, ``[d0, d1]``, ... of ``datasets``. For each, a
    one-head model trains on every dataset converted to the common convention
    (:mod:`unitalker.synth.unify`, ``method``) and a multi-head model on the native
    annotations, with the same steps, seed and clip order; both are evaluated on
    ``datasets[0]``'s test split. With one dataset the two are the same model.
    """
    from unitalker.data import load_manifest
    from unitalker.synth import unify

    t0 = time.time()
    target = datasets[0]
    train = load_manifest(setup.data).split("train")
    conv_of = {p.dataset: p.convention for p in train.parts}
    missing = [d for d in datasets if d not in conv_of]
    if missing:
        raise ValueError(f"{setup.data}: no training split for {missing}")
    if conv_of[target] != unify.COMMON:
        raise ValueError(
            f"table4 evaluates on a dataset in {unify.COMMON}; {target} is "
            f"{conv_of[target]}: put such a dataset first in --datasets"
        )
    unified = unify.write_unified(
        setup.data, setup.work_dir / "table4" / f"data_{method}", datasets, method
    )
    settings = {span(datasets[:n]): datasets[:n] for n in range(1, len(datasets) + 1)}
    cols = list(settings)

    def one(seed: int) -> Rows:
        rows: Rows = {"preprocessing (one head)": {}, "UniTalker (multi-head)": {}}
        for col, keys in settings.items():
            tag = "_".join(keys)
            steps = setup.steps * len(keys)  # the same steps per dataset in every setting
            common = (f"schedule.steps={steps}", f"schedule.warmup_steps={max(1, steps // 10)}")
            m = train_run(
                setup, f"table4/multi_{tag}", seed, f"data.datasets={listing(keys)}", *common
            )
            rows["UniTalker (multi-head)"][col] = split_lve(m, setup, [target])[target]
            if len(keys) == 1:  # one dataset, one convention: the same model
                rows["preprocessing (one head)"][col] = rows["UniTalker (multi-head)"][col]
                continue
            m = train_run(
                setup,
                f"table4/{method}_{tag}",
                seed,
                f"data.datasets={listing(keys)}",
                f"data.manifest={unified}",
                *common,
            )
            rows["preprocessing (one head)"][col] = split_lve(m, setup, [target])[target]
        return rows

    per_seed = over_seeds(setup, one)
    err = unify.conversion_error(n_clips=3)
    convs = {c: [d for d in datasets[1:] if conv_of[d] == c] for c in unify.CONVERTIBLE}
    err_lines = [
        f"| {c} ({', '.join(ds)}) | "
        + " | ".join(
            f"{err[f'{c} {m}']['mean'] * 1e3:.4f} / {err[f'{c} {m}']['max'] * 1e3:.3f}"
            for m in unify.METHODS
        )
        + " |"
        for c, ds in convs.items()
        if ds and c != unify.COMMON
    ]
    lines = [
        "# Table 4 in miniature: multi-head UniTalker vs data preprocessing",
        "",
        f"LVE on {target}'s test split ({unify.COMMON}; per-sequence mean; "
        f"{seeds_text(setup)}). For each training set (columns: the first dataset "
        "through the last one named), the preprocessing baseline converts every "
        f"annotation into {unify.COMMON} (method `{method}`, below) and trains a "
        "one-head model on the union; UniTalker trains one head per convention on the "
        f"native annotations. Both train {setup.steps} steps per dataset of the setting "
        f"({setup.steps} for {target} alone, {setup.steps * len(datasets)} for all "
        f"{len(datasets)}) from the same seed on the same clips in the same order; with "
        "a single dataset they are the same model (as the paper's first column).",
        "",
        *table_lines(per_seed, cols, "method \\ training set"),
        "",
        *ratio_table_lines(
            per_seed,
            {"UniTalker vs preprocessing": ("UniTalker (multi-head)", "preprocessing (one head)")},
            cols[1:],
            "LVE change",
        ),
    ]
    lines += [
        "",
        "Datasets: " + ", ".join(f"{d} {conv_of[d]}" for d in datasets) + ".",
        "",
        "Conversion (`unitalker.synth.unify`). `rig`, the default, uses the generator's "
        "own maps: ARKit weights are rendered through the `head` rig, FLAME-like params "
        "are split back into jaw channels and expression directions (a basis of the "
        "rig's non-jaw span) and rendered through the same rig, and `head2` frames are "
        "solved for their rig weights by least squares (exact: both rigs are the same "
        "displacement fields) and re-rendered on `head`; only a subject's neutral "
        "shape is carried across meshes by interpolation in the shared surface "
        "parametrisation. The converted clip is what S0's renderer would have made of "
        "the same articulation. `surface` is what one does without the generator: "
        "surface interpolation of every `head2` frame (retopology), and the FLAME-like "
        "params' own vertex function (a skinned jaw where the rig has a jaw "
        "blendshape). Vertex error against the `head` rendering of the same "
        "articulation, mean / max in mm over generated clips:",
        "",
        "| source convention | " + " | ".join(f"`{m}`" for m in unify.METHODS) + " |",
        "|---|" + "---:|" * len(unify.METHODS),
        *err_lines,
        "",
        "This favours the baseline: the paper's conversions carry retopology and "
        "fitting error (0.2 mm chamfer for the meshes, and an ARKit-to-FLAME blendshape "
        "set that is not how the VOCA faces moved), while here `rig` makes every "
        f"dataset's labels the {target} renderer's own, so the one-head model sees "
        "more data of exactly the target convention and nothing to reconcile.",
    ]
    name = "table4" if method == "rig" else f"table4-{method}"
    fraction_plot(
        mean_rows(per_seed),
        tuple(cols),
        cols,
        setup.out_dir / f"{name}.png",
        xlabel="training datasets",
        ylabel=f"{target} test LVE",
        log_x=False,
        title="Table 4 in miniature: multi-head vs data preprocessing",
    )
    command = "table4" + ("" if method == "rig" else f" --conversion {method}")
    return write_result(setup, name, lines, time.time() - t0, command)

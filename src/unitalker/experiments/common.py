"""What every experiment shares: the run setup, training and scoring a run, table cells.

Numbers are reported as measured: LVE is the per-sequence mean (the original UniTalker's
averaging) in the dataset's units.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from unitalker.config import load_config
from unitalker.training.config import TrainConfig

log = logging.getLogger(__name__)

SMALL = [
    "model.encoder.family=builtin",
    "model.encoder.hidden_size=64",
    "model.encoder.n_layers=2",
    "model.encoder.n_heads=4",
    "model.encoder.n_mels=40",
    "model.decoder.hidden=64",
    "model.decoder.id_dim=16",
    "model.pca_components=32",
    "log.tensorboard=false",
    "log.every=50",
    "data.val_split=",
    "data.batch_size=4",
    "optim.lr=0.0005",
    "optim.grad_clip=0",
    "schedule.freeze_features=false",
    "data.max_seconds=6.0",
]
"""The experiment model: built-in encoder, TCN decoder, ~0.3 M parameters."""
QUICK = [
    "model.encoder.hidden_size=32",
    "model.encoder.n_layers=1",
    "model.encoder.n_heads=2",
    "model.decoder.hidden=32",
    "model.pca_components=8",
]
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

    def config(self, run: str, seed: int, *extra: str, file: Path | None = None) -> TrainConfig:
        """The run's config: the experiment model (``SMALL``), or a config ``file`` as is."""
        base = [] if file is not None else SMALL + (QUICK if self.quick else [])
        return load_config(
            TrainConfig,
            file,
            [
                f"data.manifest={self.data}",
                f"out_dir={self.run_dir(run, seed)}",
                f"seed={seed}",
                *base,
                *extra,
            ],
        )

    def run_dir(self, run: str, seed: int) -> Path:
        return self.work_dir / run / f"seed{seed}"


Rows = dict[str, dict[str, float]]


def listing(keys: list[str]) -> str:
    return "[" + ", ".join(keys) + "]"


def train_run(setup: Setup, run: str, seed: int, *extra: str, file: Path | None = None) -> Path:
    """Train one model (skipped when its final folder exists: reruns resume the table)."""
    from unitalker.models.checkpoint import config_file, read_checkpoint_config
    from unitalker.training.run import train

    final = setup.run_dir(run, seed) / "model"
    record = final.parent / "train_seconds.txt"
    cfg = setup.config(run, seed, *extra, file=file)
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
                raise ValueError(
                    f"{final} was trained with another {key} setting ({a} != {b}): "
                    "use another --work folder or delete that run"
                )
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


def split_lve(model_dir: Path, setup: Setup, datasets: list[str], identity: str = "gt"):
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


def static_lve(setup: Setup, datasets: list[str]) -> dict[str, float]:
    """LVE of the static template (the "does not move" reference)."""
    from unitalker.evaluation.evaluate import evaluate

    report = evaluate(None, setup.data, datasets=tuple(datasets), static_baseline=True)[0]
    return {r.dataset: r.summary.per_sequence["LVE"] for r in report.results}


def over_seeds(setup: Setup, fn: Callable[[int], Rows]) -> list[Rows]:
    return [fn(seed) for seed in setup.seeds]


def mean_rows(per_seed: list[Rows]) -> Rows:
    out: Rows = {}
    for row in per_seed[0]:
        cols = per_seed[0][row]
        out[row] = {c: nanmean([r[row].get(c, math.nan) for r in per_seed]) for c in cols}
    return out


def nanmean(xs: list[float]) -> float:
    ok = [x for x in xs if math.isfinite(x)]
    return sum(ok) / len(ok) if ok else math.nan


def sample_std(xs: list[float]) -> float:
    ok = [x for x in xs if math.isfinite(x)]
    if len(ok) < 2:
        return math.nan
    m = sum(ok) / len(ok)
    return math.sqrt(sum((x - m) ** 2 for x in ok) / (len(ok) - 1))


def fmt(v: float | None) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    return f"{v:.3e}"


def cell(xs: list[float]) -> str:
    """``mean`` or ``mean ± std`` (sample std over seeds; none for a constant row)."""
    if not xs or not any(math.isfinite(x) for x in xs):
        return "-"
    sd = sample_std(xs)
    return fmt(nanmean(xs)) + ("" if math.isnan(sd) or sd == 0 else f" ± {sd:.1e}")


def pct(xs: list[float]) -> str:
    sd = sample_std(xs)
    return f"{nanmean(xs):+.1%}" + ("" if math.isnan(sd) else f" ± {sd:.1%}")


def table_lines(per_seed: list[Rows], cols: list[str], first: str) -> list[str]:
    lines = [f"| {first} | " + " | ".join(cols) + " |", "|---|" + "---:|" * len(cols)]
    for row in per_seed[0]:
        cells = [cell([r[row].get(c, math.nan) for r in per_seed]) for c in cols]
        lines.append(f"| {row} | " + " | ".join(cells) + " |")
    return lines


def ratio_table_lines(
    per_seed: list[Rows], pairs: dict[str, tuple[str, str]], cols: list[str], first: str
) -> list[str]:
    """``name: (a, b)`` -> a row of ``a / b - 1`` per column (mean ± std over seeds), plus
    how many seeds have ``a < b``."""
    n = len(per_seed)
    head = f"| {first} | " + " | ".join(cols) + (" | lower in |" if n > 1 else " |")
    lines = [head, "|---|" + "---:|" * len(cols) + ("---:|" if n > 1 else "")]
    for name, (a, b) in pairs.items():
        ratios = {c: [r[a][c] / r[b][c] - 1 for r in per_seed] for c in cols}
        cells = [pct(ratios[c]) for c in cols]
        if n > 1:
            wins = sum(x < 0 for c in cols for x in ratios[c])
            cells.append(f"{wins}/{n * len(cols)}")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return lines


def seeds_text(setup: Setup) -> str:
    n = len(setup.seeds)
    return (
        "one seed"
        if n == 1
        else f"mean ± sample std over the {n} seeds {', '.join(map(str, setup.seeds))}, which "
        "set initialisation, data order, pivot draws and data subsets"
    )


def write_result(
    setup: Setup,
    name: str,
    lines: list[str],
    seconds: float,
    command: str | None = None,
    needs_data: bool = True,
) -> str:
    seeds = " ".join(map(str, setup.seeds))
    known = [v for v in setup.train_seconds.values() if v is not None]
    cost = f"{len(setup.train_seconds)} models"
    if known:
        cost += f", {sum(known) / 60:.1f} min of training"
        if len(known) < len(setup.train_seconds):
            cost += f" for the {len(known)} with a record"
    lines += [
        "",
        f"Cost: {cost} on 2 CPU cores{' (quick test-sized run)' if setup.quick else ''}; "
        f"this invocation took {seconds / 60:.1f} min. Reproduce: "
        f"`unitalker experiment {command or name} --seeds {seeds}`"
        + (" after `scripts/prepare_synth.sh data`" if needs_data else "")
        + " (trained runs under `--work` are reused).",
    ]
    text = "\n".join(lines) + "\n"
    setup.out_dir.mkdir(parents=True, exist_ok=True)
    (setup.out_dir / f"{name}.md").write_text(text)
    return text


def span(keys: list[str]) -> str:
    """``S0-S3`` for a run of consecutive keys (the paper's column names), else ``S0+S2``."""
    try:
        nums = [int(k[1:]) for k in keys]
    except ValueError:
        nums = []
    run = (
        bool(nums)
        and len({k[0] for k in keys}) == 1
        and nums == list(range(nums[0], nums[0] + len(keys)))
    )
    if len(keys) == 1:
        return keys[0]
    return f"{keys[0]}-{keys[-1]}" if run else "+".join(keys)

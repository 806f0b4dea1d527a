"""The paper's experiments in miniature, at test size (``--quick``) on the tiny fixture."""

from __future__ import annotations

import math
import re

import pytest

from unitalker import experiments as ex
from unitalker.experiments.common import split_lve


def _numbers(text: str, row: str) -> list[float]:
    line = next(ln for ln in text.splitlines() if ln.startswith(f"| {row} |"))
    cells = [c.strip() for c in line.strip("|").split("|")[1:]]
    return [float(c) for c in cells if re.fullmatch(r"[-+0-9.e]+", c)]


@pytest.fixture
def setup(release, tmp_path):
    return ex.Setup(release, tmp_path / "docs", tmp_path / "runs", steps=2, quick=True)


def _mean_std(cell: str) -> tuple[float, float]:
    mean, std = (float(x) for x in cell.split(" ± "))
    return mean, std


def test_table5_quick(setup):
    text = ex.table5(setup, ["TA", "TB"])
    assert (setup.out_dir / "table5.md").read_text() == text
    rows = {
        r: _numbers(text, r)
        for r in ("static template", "single-dataset", "unified", "unified + FT")
    }
    assert all(len(v) == 2 for v in rows.values()), rows
    # the cells are the LVEs of the runs they name (rounded to 4 digits in the table)
    runs = {
        "single-dataset": "table5/single_{d}",
        "unified": "table5/unified",
        "unified + FT": "table5/ft_{d}",
    }
    for row, run in runs.items():
        for j, d in enumerate(["TA", "TB"]):
            lve = split_lve(setup.run_dir(run.format(d=d), 0) / "model", setup, [d])[d]
            assert rows[row][j] == pytest.approx(lve, rel=1e-3), (row, d)
    # even 2 steps (seed 0) learn the motion's offset from the template: every trained
    # model ends well below the static template (measured: at most 0.69 of it)
    for row in runs:
        for j, d in enumerate(["TA", "TB"]):
            assert rows[row][j] < 0.8 * rows["static template"][j], (row, d, rows)
    # the change table is computed from those cells
    after = text.split("LVE change vs single-dataset")[1].splitlines()
    line = next(ln for ln in after if ln.startswith("| unified |"))
    change = [float(c.strip().rstrip("%")) for c in line.strip("|").split("|")[1:]]
    want = [rows["unified"][j] / rows["single-dataset"][j] - 1 for j in range(2)]
    assert change == pytest.approx([round(100 * w, 1) for w in want], abs=0.15)
    assert (setup.work_dir / "table5" / "unified" / "seed0" / "model" / "unitalker.json").exists()
    assert (setup.out_dir / "table5.png").stat().st_size > 1000
    assert "Cost: 5 models, " in text  # 2 single-dataset, 1 unified, 2 fine-tuned
    # a rerun reuses every model and re-renders the same table
    again = ex.Setup(setup.data, setup.out_dir, setup.work_dir, setup.steps, quick=True)
    text2 = ex.table5(again, ["TA", "TB"])
    assert text2.split("Cost:")[0] == text.split("Cost:")[0]
    assert len(again.train_seconds) == 5


def test_pivot_quick_reports_cross_identity_cost(setup):
    text = ex.pivot(setup, ["TA", "TB"])
    gt = _numbers(text, "with PIE (p=0.1), GT identity")
    cross = _numbers(text, "with PIE (p=0.1), cross identity")
    assert len(gt) == len(cross) == 2
    assert "without PIE (p=0), pivot identity" not in text  # the p=0 pivot row never trained
    cost = next(ln for ln in text.splitlines() if ln.startswith("| with PIE (p=0.1) |"))
    want = f"{(cross[0] / gt[0] - 1):+.1%}"
    # table values are rounded to 4 digits: the cost agrees to the rounding
    got = float(cost.split("|")[2].strip().rstrip("%")) / 100
    assert abs(got - float(want.rstrip("%")) / 100) < 2e-3


def test_pca_warmup_quick(setup):
    text = ex.pca_warmup(setup, ["TA", "TB"], lrs=(5e-4,))
    for scope in ("single [TA]", "unified [TA, TB]"):
        for variant in ex.PCA_WARMUP:
            assert f"| {scope}, lr 0.0005, {variant} |" in text
    no_pca = setup.work_dir / "pca_warmup" / "single_lr0.0005_nopca" / "seed0" / "model"
    from unitalker.models.checkpoint import load_model

    assert "tt_verts" not in load_model(no_pca, "cpu").pca_layer_dict
    with_pca = no_pca.parents[2] / "single_lr0.0005_pca_dw" / "seed0" / "model"
    assert "tt_verts" in load_model(with_pca, "cpu").pca_layer_dict


def test_finetune_fraction_quick(setup):
    text = ex.finetune_fraction(setup, ["TA", "TB"], fractions=(1.0, 0.5))
    assert len(_numbers(text, "UniTalker encoder")) == 2
    assert len(_numbers(text, "bare encoder")) == 2
    from unitalker.models.checkpoint import load_model

    ft = load_model(
        setup.work_dir / "finetune_fraction" / "unitalker_0.5" / "seed0" / "model", "cpu"
    )
    assert list(ft.heads) == ["tt_verts"]  # the pre-training heads were dropped


def test_experiment_cli_missing_data(tmp_path, capsys):
    from unitalker.cli import main

    with pytest.raises(SystemExit) as e:
        main(["experiment", "pivot", "--data", str(tmp_path / "nope")])
    assert "prepare_synth.sh" in str(e.value)


def test_seeds_give_mean_and_std(setup):
    """Two seeds: each cell is mean ± std of the two seeds' values (checked on the runs)."""
    setup.seeds = (0, 1)
    text = ex.finetune_fraction(setup, ["TA", "TB"], fractions=(1.0,))
    line = next(ln for ln in text.splitlines() if ln.startswith("| bare encoder |"))
    mean, std = _mean_std(line.split("|")[2].strip())
    vals = [
        split_lve(setup.run_dir("finetune_fraction/bare_1", s) / "model", setup, ["TA"])["TA"]
        for s in (0, 1)
    ]
    assert mean == pytest.approx(sum(vals) / 2, rel=1e-3)
    assert std == pytest.approx(abs(vals[0] - vals[1]) / 2**0.5, rel=0.06)
    assert vals[0] != vals[1]  # the seed changes the run
    assert "/2 |" in text  # 'lower in k/2' column


def test_reuse_refuses_a_run_with_other_settings(setup):
    ex.pivot(setup, ["TA", "TB"])
    other = ex.Setup(setup.data, setup.out_dir, setup.work_dir, steps=3, quick=True)
    with pytest.raises(ValueError, match="another schedule setting"):
        ex.pivot(other, ["TA", "TB"])


@pytest.mark.slow
def test_finetune_takes_quick(tmp_path):
    """Generated Live Link Face takes -> converter -> the documented recipe -> held-out LVE."""
    from pathlib import Path

    recipe = Path(__file__).resolve().parents[2] / "configs" / "finetune-arkit.yaml"
    setup = ex.Setup(tmp_path / "unused", tmp_path / "docs", tmp_path / "runs", steps=0, quick=True)
    text = ex.finetune_takes(setup, [], minutes=(0.05, 0.1), test_minutes=0.05, config=recipe)
    assert (setup.out_dir / "finetune-takes.md").read_text() == text
    for row in ("static template", "default model, not fine-tuned", "fine-tuned (new identity)"):
        vals = _numbers(text, row)
        assert len(vals) == 2 and all(math.isfinite(v) and v > 0 for v in vals), row
    assert _numbers(text, "static template")[0] > _numbers(text, "default model, not fine-tuned")[0]
    from unitalker.models.checkpoint import load_model

    model = load_model(setup.work_dir / "finetune_takes" / "0.1min" / "seed0" / "model", "cpu")
    assert "LLF:performer" in model.config.identities  # the new identity row
    assert "synth_head_vertices" in model.config.head_names  # the other heads are kept
    data = setup.work_dir / "finetune_takes" / "data"
    assert (data / "train_0.05min.json").exists() and (data / "test.json").exists()

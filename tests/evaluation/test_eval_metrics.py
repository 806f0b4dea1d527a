"""Each metric against a hand computation on small arrays; evaluate() end to end."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from unitalker.evaluation import metrics as M


def _pair():
    gt = np.zeros((2, 3, 3))
    pred = np.zeros((2, 3, 3))
    pred[0, 0] = [3, 0, 0]  # frame 0: vertex 0 off by 3
    pred[0, 1] = [0, 1, 0]  # frame 0: vertex 1 off by 1
    pred[1, 2] = [0, 0, 2]  # frame 1: vertex 2 off by 2
    return pred, gt


def test_lve_squared_lvd_not():
    pred, gt = _pair()
    lip = np.array([0, 1])
    assert np.allclose(M.lip_sq_max(pred, gt, lip), [9.0, 0.0])  # frame 1: lips untouched
    assert np.allclose(M.lip_dist_max(pred, gt, lip), [3.0, 0.0])
    assert np.allclose(M.lip_sq_max(pred, gt, None), [9.0, 4.0])


def test_mve_ufve():
    pred, gt = _pair()
    assert np.allclose(M.vertex_dist_mean(pred, gt), [(3 + 1) / 3, 2 / 3])
    assert np.allclose(M.vertex_dist_mean(pred, gt, np.array([2])), [0.0, 2.0])


def test_prediction_cut_to_gt_length():
    pred, gt = _pair()
    longer = np.concatenate([pred, np.ones((4, 3, 3)) * 100])
    assert np.allclose(M.lip_sq_max(longer, gt, None), [9.0, 4.0])
    with pytest.raises(ValueError):
        M.lip_sq_max(pred[:1], gt, None)


def test_fdd_signed():
    tpl = np.zeros((2, 3))
    gt = np.zeros((4, 2, 3))
    gt[:, 0, 0] = [0, 1, 0, 1]  # d = x^2 -> [0,1,0,1], std 0.5 ; vertex 1 static -> 0
    pred = np.zeros((4, 2, 3))  # static prediction: no dynamics
    assert M.dynamics(gt, tpl, None) == pytest.approx(0.25)
    assert M.fdd(pred, gt, tpl, None) == pytest.approx(0.25)  # GT minus prediction
    assert M.fdd(gt, pred, tpl, None) == pytest.approx(-0.25)
    assert M.fdd(pred, gt, tpl, np.array([1])) == pytest.approx(0.0)


def test_pooled_vs_per_sequence():
    a = M.SequenceScores("a", np.array([1.0, 1.0, 1.0]), np.ones(3), np.ones(3), 0.5)
    b = M.SequenceScores("b", np.array([4.0]), np.ones(1), np.ones(1), -1.0)
    s = M.summarize([a, b])
    assert s.pooled["LVE"] == pytest.approx(7 / 4)
    assert s.per_sequence["LVE"] == pytest.approx(2.5)
    assert s.pooled["LVD"] == pytest.approx((3 + 2) / 4)
    assert s.per_sequence["FDD"] == pytest.approx(-0.25)
    assert s.per_sequence["FDD_abs"] == pytest.approx(0.75)


def _hand_scores(pred_v, gt_v, tpl_v, lip, upper):
    """LVE, MVE, UFVE of one sequence from their definitions (``[T, V, 3]`` arrays)."""
    err = ((pred_v - gt_v) ** 2).sum(-1)  # [T, V] squared distances
    dist = np.sqrt(err)
    return err[:, lip].max(1), dist.mean(1), dist[:, upper].mean(1)


def _files_of(release, key):
    """``{clip name: (gt motion, template)}`` of a test split read straight from disk."""
    import json

    folder = release / key
    split = json.loads((folder / "test.json").read_text())
    tpls = np.load(folder / "id_template.npy")
    return {
        Path(d["annot_path"]).stem: (np.load(folder / d["annot_path"]), tpls[d["id"]])
        for d in split["data"]
    }


def test_evaluate_end_to_end(eval_release, tmp_path):
    """The report's numbers equal LVE / MVE / UFVE computed by hand from the files: the
    static baseline from the annotations and templates alone, the model from the
    predictions it made (vertex heads directly, blendshape heads through the rig)."""
    from train_fixtures import N_VERTS, tiny_config

    from unitalker.evaluation.evaluate import evaluate
    from unitalker.models.checkpoint import load_model
    from unitalker.training.run import train

    res = train(tiny_config(eval_release, tmp_path, "schedule.steps=1", "data.datasets=[TA, TB]"))
    model = load_model(res.final_dir, "cpu")
    mesh = np.load(eval_release / "_res" / "mesh.npz")
    lip, upper = mesh["lips"], mesh["upper"]

    def verts(conv, x):  # [T, dim] -> [T, V, 3]
        x = np.asarray(x, np.float64)
        if conv == "tt_bs":
            return mesh["neutral"] + np.einsum("tk,kvc->tvc", x, mesh["rig_basis"])
        return x.reshape(len(x), N_VERTS, 3)

    def pooled(rows):
        return [np.concatenate(c).mean() for c in zip(*rows, strict=True)]

    base, _ = evaluate(model, eval_release, split="test", static_baseline=True)
    assert {r.dataset for r in base.results} == {"TA", "TB"}  # TC has no head and no mesh
    for r in base.results:
        conv = "tt_verts" if r.dataset == "TA" else "tt_bs"
        rows = [
            _hand_scores(
                verts(conv, np.broadcast_to(t, g.shape)),
                verts(conv, g),
                verts(conv, t[None])[0],
                lip,
                upper,
            )
            for g, t in _files_of(eval_release, r.dataset).values()
        ]
        lve, mve, ufve = pooled(rows)
        assert r.summary.n_sequences == 2
        assert r.summary.pooled["LVE"] == pytest.approx(lve, rel=1e-5)
        assert r.summary.pooled["MVE"] == pytest.approx(mve, rel=1e-5)
        assert r.summary.pooled["UFVE"] == pytest.approx(ufve, rel=1e-5)
        assert r.summary.per_sequence["LVE"] == pytest.approx(
            np.mean([x[0].mean() for x in rows]), rel=1e-5
        )

    report, kept = evaluate(model, eval_release, split="test", keep_predictions=10)
    assert len(kept) == 4
    got = {r.dataset: r for r in report.results}
    assert set(got) == {"TA", "TB"}
    for key, conv in (("TA", "tt_verts"), ("TB", "tt_bs")):
        files = _files_of(eval_release, key)
        rows = []
        for k in (k for k in kept if k["convention"] == conv):
            g, t = files[k["item"]["name"].rsplit("/", 1)[-1]]
            assert k["prediction"].shape == g.shape  # whole clip run, trimmed to the annotation
            rows.append(
                _hand_scores(
                    verts(conv, k["prediction"]),
                    verts(conv, g),
                    verts(conv, t[None])[0],
                    lip,
                    upper,
                )
            )
        assert len(rows) == 2
        lve, mve, ufve = pooled(rows)
        assert got[key].summary.pooled["LVE"] == pytest.approx(lve, rel=1e-4)
        assert got[key].summary.pooled["MVE"] == pytest.approx(mve, rel=1e-4)
        assert got[key].summary.pooled["UFVE"] == pytest.approx(ufve, rel=1e-4)
        # a model is not the static template
        assert got[key].summary.pooled["LVE"] != pytest.approx(
            {r.dataset: r for r in base.results}[key].summary.pooled["LVE"], rel=1e-3
        )
    report.write_csv(tmp_path / "m.csv")
    report.write_json(tmp_path / "m.json")
    import csv
    import json

    csv_rows = list(csv.DictReader((tmp_path / "m.csv").open()))
    assert [(r["dataset"], r["averaging"]) for r in csv_rows] == [
        ("TA", "pooled"),
        ("TA", "per_sequence"),
        ("TB", "pooled"),
        ("TB", "per_sequence"),
    ]
    assert float(csv_rows[0]["LVE"]) == pytest.approx(got["TA"].summary.pooled["LVE"])
    js = json.loads((tmp_path / "m.json").read_text())
    assert js["datasets"][1]["pooled"]["MVE"] == pytest.approx(got["TB"].summary.pooled["MVE"])
    assert "LVE" in report.table()


def test_evaluate_identity_modes(eval_release, tmp_path):
    """gt / pivot / cross condition on the rows they name; the static baseline needs no model."""
    from train_fixtures import tiny_config

    from unitalker.evaluation import evaluate as ev
    from unitalker.models.checkpoint import load_model
    from unitalker.training.builders import table_from_model
    from unitalker.training.run import train

    res = train(tiny_config(eval_release, tmp_path, "schedule.steps=3", "data.datasets=[TA, TB]"))
    model = load_model(res.final_dir, "cpu")
    table = table_from_model(model)
    _randomize_identities(model)
    item = {"identity": 1}
    assert ev._identity_for("gt", item, "TA", table, model.pivot_index) == 1
    assert ev._identity_for("pivot", item, "TA", table, model.pivot_index) == model.pivot_index
    # cross: the first subject of the next dataset, cycling
    assert ev._identity_for("cross", item, "TA", table, 0) == table.offset("TB")
    assert ev._identity_for("cross", item, "TB", table, 0) == table.offset("TA")
    lve = {
        mode: ev.evaluate(model, eval_release, identity=mode, datasets=("TA",))[0]
        .results[0]
        .summary.pooled["LVE"]
        for mode in ("gt", "cross", "pivot")
    }
    assert len(set(lve.values())) == 3
    base = ev.evaluate(None, eval_release, static_baseline=True, datasets=("TA",))[0]
    with_model = ev.evaluate(model, eval_release, static_baseline=True, datasets=("TA",))[0]
    assert base.results[0].summary.pooled == with_model.results[0].summary.pooled
    with pytest.raises(ValueError, match="needs a model"):
        ev.evaluate(None, eval_release)


def test_evaluate_cross_needs_two_datasets(eval_release, tmp_path):
    from train_fixtures import tiny_config

    from unitalker.evaluation.evaluate import evaluate
    from unitalker.models.checkpoint import load_model
    from unitalker.training.run import train

    res = train(tiny_config(eval_release, tmp_path, "schedule.steps=1", "data.datasets=[TA]"))
    with pytest.raises(ValueError, match="at least two datasets"):
        evaluate(load_model(res.final_dir, "cpu"), eval_release, identity="cross")


def test_evaluate_untrained_subjects_use_pivot(eval_release, tmp_path):
    """A test subject with no training clip is conditioned on the pivot, with a note."""
    import json

    from train_fixtures import tiny_config

    from unitalker.evaluation.evaluate import evaluate
    from unitalker.models.checkpoint import load_model
    from unitalker.training.run import train

    res = train(tiny_config(eval_release, tmp_path, "schedule.steps=1", "data.datasets=[TA, TB]"))
    model = load_model(res.final_dir, "cpu")
    _randomize_identities(model)
    # a copy of the data whose training split lacks subject 1 of TA
    import shutil

    root = tmp_path / "rel"
    shutil.copytree(eval_release, root, symlinks=True)
    split = json.loads((root / "TA" / "train.json").read_text())
    split["data"] = [d for d in split["data"] if d["id"] != 1]
    (root / "TA" / "train.json").write_text(json.dumps(split))
    report, kept = evaluate(model, root, datasets=("TA",), keep_predictions=10)
    assert any("pivot identity" in n for n in report.results[0].notes)
    full, kept_full = evaluate(model, eval_release, datasets=("TA",), keep_predictions=10)
    assert not any("pivot identity" in n for n in full.results[0].notes)
    _, kept_piv = evaluate(
        model, eval_release, datasets=("TA",), identity="pivot", keep_predictions=10
    )
    by = lambda ks: {k["item"]["name"]: k["prediction"] for k in ks}  # noqa: E731
    got, want_gt, want_piv = by(kept), by(kept_full), by(kept_piv)
    subj1 = [n for n in got if "_1_" in n]
    subj0 = [n for n in got if "_0_" in n]
    assert subj1 and subj0
    for n in subj1:  # no training clip: the pivot's prediction
        np.testing.assert_array_equal(got[n], want_piv[n])
        assert not np.array_equal(got[n], want_gt[n])
    for n in subj0:  # trained subject: its own row
        np.testing.assert_array_equal(got[n], want_gt[n])


def _randomize_identities(model) -> None:
    """Make identities matter after a 1-step run: random identity rows and heads."""
    import torch

    n = model.config.n_identities
    torch.manual_seed(0)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if (p.dim() == 2 and n in p.shape) or "head" in name:
                p.copy_(torch.randn_like(p) * 0.1)

from __future__ import annotations

import json

import numpy as np
import pytest
from datafixtures import write_npy, write_wav

from unitalker.cli import main
from unitalker.data.pca import PCA_KEYS, IncrementalPCA, fit_pca, load_pca, save_pca


def _lowrank_dataset(root, rank=4, dim=52, clips=12, frames=40):
    rng = np.random.default_rng(0)
    basis = np.linalg.qr(rng.standard_normal((dim, rank)))[0].T  # [rank, dim] orthonormal
    tpl = rng.standard_normal((2, dim)).astype(np.float32)
    write_npy(root / "id_template.npy", tpl)
    data = []
    for k in range(clips):
        coeff = rng.standard_normal((frames, rank)) * np.array([5.0, 3.0, 2.0, 1.0])[:rank]
        sid = k % 2
        write_npy(root / "a" / f"{k}.npy", (coeff @ basis + tpl[sid] + 0.5).astype(np.float32))
        write_wav(root / "w" / f"{k}.wav", frames / 30, sr=16000)
        data.append(
            {
                "annot_path": f"a/{k}.npy",
                "audio_path": f"w/{k}.wav",
                "id": sid,
                "annot_type": "3DETF_blendshape_weight",
                "dataset": "D3",
                "fps": 30,
            }
        )
    (root / "train.json").write_text(json.dumps({"info": {"id_list": ["s0", "s1"]}, "data": data}))
    return basis


def test_pca_recovers_subspace_and_roundtrips(tmp_path):
    basis = _lowrank_dataset(tmp_path / "ds")
    pca = fit_pca(tmp_path / "ds", n_components=6, batch_size=100)
    assert set(pca) == set(PCA_KEYS)
    comp = pca["components_to_data"]
    assert comp.shape == (6, 52) and pca["original_data_mean"].shape == (52,)
    # the top 4 components span the true subspace
    proj = comp[:4] @ basis.T
    np.testing.assert_allclose(np.linalg.svd(proj, compute_uv=False), 1.0, atol=1e-3)
    assert pca["explained_variance_ratio"][:4].sum() > 0.999
    assert np.all(np.diff(pca["S"]) <= 1e-4)
    np.testing.assert_allclose(pca["data_components_mean"], 0, atol=1e-3)
    # encode/decode as the model's PCA layer does
    x = np.load(tmp_path / "ds" / "a" / "3.npy") - np.load(tmp_path / "ds" / "id_template.npy")[1]
    z = (x - pca["original_data_mean"]) @ comp[:4].T
    np.testing.assert_allclose(z @ comp[:4] + pca["original_data_mean"], x, atol=1e-4)
    out = save_pca(tmp_path / "pca.npz", pca)
    back = load_pca(out)
    for k in PCA_KEYS:
        np.testing.assert_array_equal(back[k], pca[k])


def test_pca_cli(tmp_path, capsys):
    _lowrank_dataset(tmp_path / "ds")
    rc = main(
        ["pca", "fit", str(tmp_path / "ds"), "-o", str(tmp_path / "p.npz"), "--components", "8"]
    )
    assert rc == 0
    out = capsys.readouterr().out
    assert "K=8" in out and "cumulative explained variance" in out
    assert load_pca(tmp_path / "p.npz")["components_to_data"].shape == (8, 52)


def test_check_reports_every_problem(release, capsys):
    assert main(["data", "check", str(release)]) == 0
    assert "no problems found" in capsys.readouterr().out
    d5 = release / "D5_unitalker_faceforensics++"
    (d5 / "audio" / "train_0.npy").unlink()  # missing audio
    write_npy(d5 / "annot" / "train_1.npy", np.zeros((33, 400), np.float32))  # wrong width
    bad = np.zeros((36, 413), np.float32)
    bad[2] = np.inf
    write_npy(d5 / "annot" / "train_2.npy", bad)  # inf frame
    raw = (d5 / "annot" / "train_3.npy").read_bytes()
    (d5 / "annot" / "train_3.npy").write_bytes(raw[:100])  # truncated
    doc = json.loads((d5 / "val.json").read_text())
    doc["data"][0]["fps"] = -5
    (d5 / "val.json").write_text(json.dumps(doc))
    doc = json.loads((d5 / "test.json").read_text())
    doc["data"][0]["annot_path"] = "../../../etc/passwd"
    (d5 / "test.json").write_text(json.dumps(doc))
    d3 = release / "D3D4_3DETF" / "D3_HDTF"
    doc = json.loads((d3 / "val.json").read_text())
    doc["data"] = []
    (d3 / "val.json").write_text(json.dumps(doc))
    write_wav(d3 / "wav" / "train_0.wav", 3.0)  # 3 s audio for 0.8 s annotation

    rc = main(["data", "check", str(release)])
    out = capsys.readouterr().out
    assert rc == 1
    for needle in (
        "train_0.npy: no such file",
        "train_1.npy: annotation has 400 values per frame",
        "train_2.npy: NaN or infinite values in 1 frame(s), first at frame 2",
        "train_3.npy: cannot read annotation npy",
        "unsupported fps -5",
        "resolves outside the data root",
        "D3_HDTF/val.json: empty split",
        "train_0.npy: annotation lasts 0.80 s but its audio train_0.wav lasts 3.00 s",
    ):
        assert needle in out, needle
    assert "8 problem(s)" in out
    print(out)
    assert "D5" in out and "flame_params_from_dadhead" in out


def test_progress_goes_through_callbacks(tmp_path, release):
    from unitalker.data.check import check_manifest

    _lowrank_dataset(tmp_path / "ds")
    calls = []
    fit_pca(tmp_path / "ds", n_components=4, progress=lambda *a: calls.append(a))
    fit = "PCA fit 3DETF_blendshape_weight"
    assert calls[0] == (fit, 0, 12) and (fit, 12, 12) in calls
    assert calls[-1] == ("PCA project", 12, 12) and len(calls) == 2 * 13

    calls.clear()
    report = check_manifest(release, split="all", progress=lambda *a: calls.append(a))
    last = {stage: (done, total) for stage, done, total in calls}
    assert all(done == total for done, total in last.values())
    assert sum(t for _, t in last.values()) == sum(r.clips for r in report.rows) > 0


def test_incremental_pca_equals_scikit_learns():
    """Ours is kept for speed (see data/pca.py); it must give what the original's
    scikit-learn IncrementalPCA gives on the same batches (components up to sign)."""
    sk = pytest.importorskip("sklearn.decomposition")
    rng = np.random.default_rng(0)
    scales = 0.8 ** np.arange(12)
    x = (rng.standard_normal((900, 12)) * scales) @ rng.standard_normal((12, 60))
    x = (x + 0.01 * rng.standard_normal(x.shape) + 3.0).astype(np.float32)
    ours, ref = IncrementalPCA(8), sk.IncrementalPCA(8)
    for batch in np.split(x, [200, 400, 600, 890]):  # the last batch is smaller than K
        ours.partial_fit(batch)
        ref.partial_fit(batch)
    comp, mean, s, ratio = ours.result_arrays()
    sign = np.sign((comp * ref.components_).sum(axis=1))
    np.testing.assert_allclose(comp, ref.components_ * sign[:, None], atol=1e-4)
    np.testing.assert_allclose(mean, ref.mean_, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(s, ref.singular_values_, rtol=1e-5)
    np.testing.assert_allclose(ratio, ref.explained_variance_ratio_, rtol=1e-5)

"""Lip / upper-face regions: declared per convention, read from the user's downloads,
and no number is called LVE without a lip region."""

from __future__ import annotations

import dataclasses
import pickle

import numpy as np
import pytest

from unitalker import conventions
from unitalker.evaluation import metrics as M


def _measurable(conv: conventions.Convention) -> bool:
    """Whether evaluation can turn this convention into vertices (so it needs regions)."""
    from unitalker.geometry.flame import FLAME_PARAMS

    return (
        conv.has_mesh
        or conv.name == FLAME_PARAMS  # with the user's FLAME file
        or conv.name in conventions._RELEASE_RIGS  # with the release's rig
    )


@pytest.mark.parametrize("name", conventions.names())
@pytest.mark.parametrize("region", ["lip", "upper_face"])
def test_every_measured_convention_has_a_region_or_says_why_not(name, region):
    conv = conventions.get(name)
    if not _measurable(conv):
        pytest.skip(f"{name} cannot be turned into vertices: evaluation skips it")
    registered = conv.has_resource(conventions.REGIONS[region])
    declared = [f for f in conventions.region_files(name) if f.region == region]
    if registered or declared:
        assert all(f.paths and f.source for f in declared)
        return
    reason = conventions.no_region_reason(name, region)
    assert (name, region) in conventions._NO_REGION, reason


@pytest.mark.parametrize(
    "name",
    [
        "BIWI_23370_vertices",
        "FLAME_5023_vertices",
        "meshtalk_6172_vertices",
        "flame_params_from_dadhead",
        "3DETF_blendshape_weight",
        "inhouse_blendshape_weight",
    ],
)
def test_original_conventions_declare_a_lip_source(name):
    assert any(f.region == "lip" for f in conventions.region_files(name))


def _write_downloads(root):
    """Stand-ins for the user's files, in their distributed layouts (random indices)."""
    (root / "BIWI" / "regions").mkdir(parents=True)
    (root / "BIWI" / "regions" / "lve.txt").write_text("3, 5, 8, 23369")
    (root / "BIWI" / "regions" / "fdd.txt").write_text("10, 11, 12")
    masks = {
        "lips": np.array([1, 2, 2, 4]),
        "eye_region": np.array([7, 9]),
        "forehead": np.array([20, 21]),
        "nose": np.array([30]),
    }
    (root / "FLAME2020").mkdir()
    with open(root / "FLAME2020" / "FLAME_masks.pkl", "wb") as f:
        pickle.dump(masks, f, protocol=2)
    mf = root / "multiface" / "regions"
    mf.mkdir(parents=True)
    w = np.zeros(6172)
    w[[5, 6]] = [0.2, 0.05]
    (mf / "weighted_mouth_mask.txt").write_text("\n".join(map(str, w)))
    f = np.zeros(6172)
    f[[40, 41]] = [0.5, 0.3]
    (mf / "forehead_mask.txt").write_text("\n".join(map(str, f)))
    res = root / "UniTalker" / "resources" / "binary_resources"
    res.mkdir(parents=True)
    np.save(res / "06_mesh_talk_mouth_idx.npy", np.array([100, 101]))
    np.save(res / "03_emo_talk_mouth_idx.npy", np.array([0, 1]))
    rng = np.random.default_rng(0)
    np.savez(
        res / "EmoTalk.npz", meanshape=rng.normal(size=(6, 3)), blendshape=rng.normal(size=(52, 18))
    )


def test_region_files_are_found_in_their_layouts(tmp_path, monkeypatch):
    monkeypatch.delenv(conventions.REGIONS_ENV, raising=False)
    _write_downloads(tmp_path)
    find = conventions.find_region
    assert find("BIWI_23370_vertices", "lip") is None  # nothing searched
    lip = find("BIWI_23370_vertices", "lip", [tmp_path], n_vertices=23370)
    assert lip.indices.tolist() == [3, 5, 8, 23369] and "FaceFormer" in lip.source
    # the dataset folder itself may be named, too
    up = find("BIWI_23370_vertices", "upper_face", [tmp_path / "BIWI"])
    assert up.indices.tolist() == [10, 11, 12]
    flame = tmp_path / "FLAME2020"
    assert find("FLAME_5023_vertices", "lip", [flame]).indices.tolist() == [1, 2, 2, 4]
    assert find("FLAME_5023_vertices", "upper_face", [flame]).indices.tolist() == [7, 9, 20, 21]
    # the release's own mouth indices come before FaceDiffuser's mask
    rel = tmp_path / "UniTalker"
    assert find("meshtalk_6172_vertices", "lip", [rel, tmp_path]).indices.tolist() == [100, 101]
    assert find("meshtalk_6172_vertices", "lip", [tmp_path]).indices.tolist() == [5]
    assert find("meshtalk_6172_vertices", "upper_face", [tmp_path]).indices.tolist() == [40]
    # rig-mesh indices only apply through the release rig
    assert find("3DETF_blendshape_weight", "lip", [rel]) is None
    assert find("3DETF_blendshape_weight", "lip", [rel], release_rig=True).indices.tolist() == [
        0,
        1,
    ]
    mean, basis, path = conventions.find_release_rig("3DETF_blendshape_weight", [rel])
    assert mean.shape == (6, 3) and basis.shape == (52, 6, 3) and path.endswith("EmoTalk.npz")
    # the environment variable is searched too
    monkeypatch.setenv(conventions.REGIONS_ENV, str(flame))
    assert find("FLAME_5023_vertices", "lip") is not None


def test_region_of_another_topology_is_an_error(tmp_path):
    _write_downloads(tmp_path)
    with pytest.raises(ValueError, match="lve.txt.*5023 vertices"):
        conventions.find_region("BIWI_23370_vertices", "lip", [tmp_path], n_vertices=5023)


def test_pickle_with_code_is_refused(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("owned",))

    with open(tmp_path / "FLAME_masks.pkl", "wb") as f:
        pickle.dump({"lips": Evil()}, f)
    with pytest.raises(ValueError, match="refusing to unpickle"):
        conventions.find_region("FLAME_5023_vertices", "lip", [tmp_path])


def test_flame_params_regions_renumbered_into_the_face_subset(tmp_path):
    from unitalker.evaluation.evaluate import _region

    _write_downloads(tmp_path)
    subset = tmp_path / "face.npy"
    np.save(subset, np.array([0, 2, 4, 6, 7]))
    reg = _region(
        "flame_params_from_dadhead", "lip", (tmp_path / "FLAME2020",), 5, False, str(subset)
    )
    assert reg.indices.tolist() == [1, 1, 2]  # FLAME 2, 2, 4 -> positions in the subset


def test_metrics_without_a_region_are_not_called_lve():
    s = M.SequenceScores("a", np.ones(3), np.ones(3), np.ones(3), 0.5, np.ones(3))
    full = M.summarize([s])
    assert set(full.pooled) == {"LVE", "LVD", "MVE", "UFVE", "UFVE-max", "FDD", "FDD_abs"}
    bare = M.summarize([s], lip_region=False, upper_region=False)
    assert set(bare.pooled) == {"LVE-all", "LVD-all", "MVE", "FDD-all", "FDD_abs-all"}
    assert M.metric_names(False, False) == tuple(bare.pooled)


def test_ufve_is_the_mean_and_ufve_max_lve_form():
    gt = np.zeros((1, 3, 3))
    pred = np.zeros((1, 3, 3))
    pred[0, 1] = [0, 2, 0]
    up = np.array([1, 2])
    s = M.score_sequence("a", pred, gt, gt[0], None, up)
    assert s.ufve.tolist() == [1.0]  # mean of the L2 distances 2 and 0
    assert s.ufve_max.tolist() == [4.0]  # max squared


def test_evaluate_names_metrics_by_region(eval_release, tmp_path, monkeypatch):
    """Without a region the report has LVE-all and says why; with the user's region file
    (found through --regions) it has LVE, and says which file."""
    from unitalker.evaluation.evaluate import evaluate

    bare = dataclasses.replace(conventions.get("tt_verts"), resources=())
    monkeypatch.setitem(conventions._CONVENTIONS, "tt_verts", bare)
    rep, _ = evaluate(None, eval_release, static_baseline=True, datasets=("TA",))
    r = rep.results[0]
    assert "LVE" not in r.summary.pooled and "LVE-all" in r.summary.pooled
    assert any("no lip region" in n and "LVE-all" in n for n in r.notes)
    assert "LVE-all" in rep.table() and "LVE-all" in rep.rows()[0]

    regions = tmp_path / "tt"
    regions.mkdir()
    (regions / "tt_lips.txt").write_text("0, 1, 2, 3")
    np.save(regions / "tt_upper.npy", np.arange(6, 12))
    monkeypatch.setitem(
        conventions._REGION_FILES,
        "tt_verts",
        [
            conventions.RegionFile("lip", ("tt_lips.txt",), source="test lips"),
            conventions.RegionFile("upper_face", ("tt_upper.npy",), source="test upper"),
        ],
    )
    rep2, _ = evaluate(
        None, eval_release, static_baseline=True, datasets=("TA",), regions=(regions,)
    )
    r2 = rep2.results[0]
    assert {"LVE", "UFVE", "FDD"} <= set(r2.summary.pooled)
    assert "test lips" in r2.regions["lip"] and not r2.notes
    # the same numbers as with the registered regions of the fixture
    monkeypatch.undo()
    ref, _ = evaluate(None, eval_release, static_baseline=True, datasets=("TA",))
    assert ref.results[0].summary.pooled == pytest.approx(r2.summary.pooled)


def test_another_datasets_regions_folder_is_not_taken(tmp_path):
    """FaceDiffuser ships ``multiface/regions/lve.txt`` too: BIWI never reads it."""
    (tmp_path / "multiface" / "regions").mkdir(parents=True)
    (tmp_path / "multiface" / "regions" / "lve.txt").write_text("1, 2, 3")
    for root in (tmp_path, tmp_path / "multiface"):
        assert conventions.find_region("BIWI_23370_vertices", "lip", [root]) is None


def test_evaluate_cli_regions(eval_release, tmp_path, monkeypatch, capsys):
    import json

    from unitalker.cli import main

    bare = dataclasses.replace(conventions.get("tt_verts"), resources=())
    monkeypatch.setitem(conventions._CONVENTIONS, "tt_verts", bare)
    monkeypatch.setitem(
        conventions._REGION_FILES,
        "tt_verts",
        [conventions.RegionFile("lip", ("lips.txt",), source="mine")],
    )
    (tmp_path / "lips.txt").write_text("0, 1, 2")
    out = tmp_path / "r.json"
    assert (
        main(
            [
                "evaluate",
                "default",
                str(eval_release),
                "--baseline",
                "--datasets",
                "TA",
                "--regions",
                str(tmp_path),
                "--json",
                str(out),
                "--device",
                "cpu",
            ]
        )
        == 0
    )
    (ds,) = json.loads(out.read_text())["datasets"]
    assert "mine" in ds["regions"]["lip"] and "LVE" in ds["pooled"]
    assert "FDD-all" in ds["pooled"] and "FDD-all" in capsys.readouterr().out

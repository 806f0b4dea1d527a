from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest
from datafixtures import (
    BIWI_DIM,
    MESHTALK_DIM,
    make_3detf,
    make_biwi,
    make_folder,
    make_multiface,
    make_vocaset,
    write_wav,
)

from unitalker.cli import main
from unitalker.data.convert import convert_biwi, convert_folder, convert_multiface, convert_vocaset
from unitalker.data.dataset import ClipDataset
from unitalker.data.manifest import load_manifest
from unitalker.data.safe_pickle import UnsafePickleError, load_templates_pickle


def _split(path, name):
    return json.loads((path / f"{name}.json").read_text())


def test_biwi_splits_test_b_and_scale(tmp_path):
    src = make_biwi(tmp_path / "BIWI")
    rep = convert_biwi(src, tmp_path / "D0_BIWI")
    out = tmp_path / "D0_BIWI"
    assert rep.counts["."] == {"train": 4, "val": 2, "test": 2, "test_b": 1}
    assert any("M3_e03" in s for s in rep.skipped)  # annotation without audio
    train = _split(out, "train")
    assert train["info"]["id_list"] == ["F2", "F3", "F4", "M3", "M4", "M5"]
    assert {e["fps"] for e in train["data"]} == {25.0}
    assert all(not e["audio_path"].startswith("/") for e in train["data"])
    tb = _split(out, "test_b")
    assert (
        tb["info"]["id_list"][:6] == train["info"]["id_list"] and tb["info"]["id_list"][6] == "F1"
    )
    assert tb["data"][0]["id"] == 6
    tpl = np.load(out / "id_template.npy")
    assert tpl.shape == (7, 23370, 3)
    ds = ClipDataset(out, "test_b", max_seconds=None)
    item = ds[0]
    assert item["motion"].shape == (15, BIWI_DIM)
    np.testing.assert_allclose(item["template"], 7 * 0.2, rtol=1e-6)  # F1's template x scale 0.2
    assert item["identity"] == ds.identities.pivot_index  # unseen subject -> pivot
    assert not list(tmp_path.glob(".D0_BIWI.tmp-*"))


def test_vocaset_60_to_30_and_ids(tmp_path):
    rep = convert_vocaset(make_vocaset(tmp_path / "voca"), tmp_path / "D1")
    assert rep.counts["."] == {"train": 2, "val": 1, "test": 1}
    assert len(_split(tmp_path / "D1", "train")["info"]["id_list"]) == 12
    ds = ClipDataset(tmp_path / "D1", "train")
    item = ds[0]
    assert item["fps"] == 30.0
    assert item["motion"].shape == (18, 5023 * 3)  # 36 frames at 60 fps -> every 2nd
    raw = np.load(tmp_path / "D1" / "vertices_npy" / "FaceTalk_170725_00137_TA_sentence01.npy")
    np.testing.assert_array_equal(item["motion"], raw[::2])
    assert item["identity"] == 2  # FaceTalk_170725_00137_TA is the 3rd train subject


def test_multiface_scale_and_splits(tmp_path):
    rep = convert_multiface(make_multiface(tmp_path / "mf"), tmp_path / "D2")
    assert rep.counts["."] == {"train": 4, "val": 2, "test": 2}
    ds = ClipDataset(tmp_path / "D2", "val")
    item = ds[0]
    assert item["motion"].shape == (18, MESHTALK_DIM)
    np.testing.assert_allclose(item["template"], 100.0 * 0.001, rtol=1e-6)
    raw = np.load(tmp_path / "D2" / "vertices_npy" / "01_41.npy")
    np.testing.assert_allclose(item["motion"], raw * 0.001, rtol=1e-6)


def test_3detf_two_datasets_and_regex(tmp_path):
    dst = tmp_path / "D3D4_3DETF"
    assert (
        main(
            ["data", "convert", "3detf", str(make_3detf(tmp_path / "etf")), str(dst), "--seed", "1"]
        )
        == 0
    )
    hd = _split(dst / "D3_HDTF", "train")["info"]["id_list"]
    assert hd == ["RD_Radio1", "WDA_Kim", "WRA_Obama"]
    assert _split(dst / "D4_RAVDESS", "train")["info"]["id_list"] == ["01", "02"]
    m = load_manifest(dst)
    assert [f.folder.name for f in m.dataset_folders()] == ["D3_HDTF", "D4_RAVDESS"]
    total = sum(
        len(_split(dst / "D3_HDTF", s)["data"])
        for s in ("train", "val", "test")
        if (dst / "D3_HDTF" / f"{s}.json").exists()
    )
    assert total == 5


def test_3detf_honours_a_stated_split(tmp_path):
    """{train,val,test}.txt beside audio/ decide the split; ratios are only the fallback."""
    from unitalker.data.convert import convert_3detf

    src = make_3detf(tmp_path / "etf")
    hd = src / "HDTF"
    (hd / "train.txt").write_text("WRA_Obama_000\nRD_Radio1_000.npy  # extension is fine\n")
    (hd / "val.txt").write_text("WRA_Obama_001\n\n")
    (hd / "test.txt").write_text("RD_Radio1_001\nGONE_999\n")  # WDA_Kim_000: not listed
    report = convert_3detf(src, tmp_path / "out", ratios=(1, 0, 0))
    out = tmp_path / "out" / "D3_HDTF"
    stems = {
        s: sorted(Path(d["annot_path"]).stem for d in _split(out, s)["data"])
        for s in ("train", "val", "test")
    }
    assert stems == {
        "train": ["RD_Radio1_000", "WRA_Obama_000"],
        "val": ["WRA_Obama_001"],
        "test": ["RD_Radio1_001"],
    }
    assert any("WDA_Kim_000" in s and "not listed" in s for s in report.skipped)
    assert any("GONE_999" in s for s in report.skipped)
    # RAVDESS states none: the ratios (all train) apply there
    assert len(_split(tmp_path / "out" / "D4_RAVDESS", "train")["data"]) == 6
    (hd / "val.txt").write_text("WRA_Obama_000\n")
    with pytest.raises(ValueError, match="also listed in train.txt"):
        convert_3detf(src, tmp_path / "out2")


def test_folder_by_subject_and_cli_safety(tmp_path, capsys):
    src = make_folder(tmp_path / "mine")
    dst = tmp_path / "out"
    dst.mkdir()
    (dst / "notes.txt").write_text("keep me")
    args = [
        "data",
        "convert",
        "folder",
        str(src),
        str(dst),
        "--convention",
        "inhouse_blendshape_weight",
        "--fps",
        "60",
        "--dataset",
        "D6",
        "--split-by",
        "subject",
        "--ratios",
        "1,0,1",
    ]
    assert main(args) == 2
    assert "not empty" in capsys.readouterr().err
    assert main([*args, "--overwrite"]) == 0
    assert (dst / "notes.txt").read_text() == "keep me"
    splits = {s: _split(dst, s) for s in ("train", "val", "test") if (dst / f"{s}.json").exists()}
    subj = {s: {d["id"] for d in v["data"]} for s, v in splits.items()}
    if "test" in subj and "train" in subj:
        assert not subj["train"] & subj["test"]
    assert np.load(dst / "id_template.npy").shape == (2, 51)


def test_folder_bad_convention_and_fps(tmp_path):
    src = make_folder(tmp_path / "mine")
    with pytest.raises(KeyError, match="unknown convention"):
        convert_folder(src, tmp_path / "o", convention="nope", fps=30)
    with pytest.raises(ValueError, match="unsupported fps"):
        convert_folder(src, tmp_path / "o", convention="inhouse_blendshape_weight", fps=0)
    with pytest.raises(ValueError, match=r"alice_000.npy: annotation has 51 values per frame"):
        convert_folder(src, tmp_path / "o", convention="3DETF_blendshape_weight", fps=30)
    assert not (tmp_path / "o").exists()


def test_safe_pickle_refuses_code(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    bad = tmp_path / "templates.pkl"
    bad.write_bytes(pickle.dumps({"F2": Evil()}))
    with pytest.raises(UnsafePickleError, match="builtins.print"):
        load_templates_pickle(bad)
    good = tmp_path / "good.pkl"
    good.write_bytes(pickle.dumps({"F2": np.arange(6.0).reshape(2, 3)}, protocol=5))
    np.testing.assert_array_equal(load_templates_pickle(good)["F2"], np.arange(6.0).reshape(2, 3))


def test_audio_npy_not_confused_with_annotation(tmp_path):
    src = tmp_path / "s"
    write_wav(src / "audio" / "x_1.wav", 1.0)
    (src / "annotations").mkdir()
    np.save(src / "annotations" / "x_1.npy", np.zeros((30, 52), np.float32))
    rep = convert_folder(
        src, tmp_path / "o", convention="3DETF_blendshape_weight", fps=30, ratios=(1, 0, 0)
    )
    assert rep.counts["."] == {"train": 1}

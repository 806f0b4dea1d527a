from __future__ import annotations

import json
import os

import numpy as np
import pytest
from datafixtures import make_multiface, write_npy

from unitalker.data import dataset as dataset_mod
from unitalker.data.convert import convert_multiface
from unitalker.data.dataset import ClipDataset, ClipError
from unitalker.data.framerate import convert_framerate
from unitalker.data.identities import IdentityTable
from unitalker.data.manifest import ManifestError, load_manifest


def test_release_root_gathers_datasets_in_order(release):
    m = load_manifest(release)
    assert m.split_names == ["train", "val", "test"]
    train = m.split("train")
    assert train.datasets == ["D3", "D5"]
    assert len(train) == 7
    assert train.templates["D5"].shape == (3, 413)
    e = train.part("D5").entries[0]
    assert e.fps == 30.0 and e.subject == "000" and e.audio_path.suffix == ".npy"
    # a dataset folder and a single split file
    assert load_manifest(release / "D5_unitalker_faceforensics++").split("val").datasets == ["D5"]
    single = load_manifest(release / "D5_unitalker_faceforensics++" / "test.json")
    assert len(single.split()) == 1
    with pytest.raises(ManifestError, match="no split 'val'"):
        single.split("val")


def test_identity_table_offsets_pivot_roundtrip(release, tmp_path):
    convert_multiface(make_multiface(tmp_path / "mf"), release / "D2_meshtalk")
    t = IdentityTable.from_manifest(release)
    assert t.datasets == ["D2", "D3", "D5"]
    assert t.offset("D2") == 0 and t.offset("D3") == 2 and t.offset("D5") == 4
    assert len(t) == 8 and t.pivot_index == 7
    assert t.index("D5:001") == 5 and t.index("pivot") == 7
    assert t.template("D2:02").shape == (6172 * 3,)
    np.testing.assert_allclose(t.template("D2:02"), 0.2, rtol=1e-6)  # 200 * 0.001
    with pytest.raises(KeyError, match=r"unknown identity 'D9:x'.*D2:01"):
        t.index("D9:x")
    t2 = IdentityTable.from_dict(json.loads(json.dumps(t.to_dict())))
    assert t2 == t and t2.names == t.names
    ds = ClipDataset(release, "train")
    assert set(ds.identity_of) <= set(range(7))
    d5 = [i for i, e in enumerate(ds.entries) if e.dataset == "D5"]
    assert ds[d5[1]]["identity"] == 4 + 1


def test_items_shapes_cut_and_drop(release):
    ds = ClipDataset(release, "train", max_seconds=0.9)
    for i in range(len(ds)):
        it = ds[i]
        assert it["audio"].dtype == np.float32 and it["motion"].dtype == np.float32
        assert abs(len(it["audio"]) / 16000 - len(it["motion"]) / it["fps"]) < 1 / it["fps"] + 1e-6
        assert len(it["audio"]) <= 0.9 * 16000
        assert it["template"].shape == (it["motion"].shape[1],)
    # min_seconds drops the 24-frame (0.8 s) D3 clips
    ds = ClipDataset(release, "train", min_seconds=0.9)
    assert {e.dataset for e in ds.entries} == {"D5"}
    ev = ClipDataset(release, "test", max_seconds=None)
    assert len(ev) == 2


def test_framerate_rules():
    x = np.arange(12, dtype=np.float32)[:, None]
    np.testing.assert_array_equal(convert_framerate(x, 60, 30)[:, 0], x[::2, 0])
    np.testing.assert_array_equal(convert_framerate(x, 100, 25)[:, 0], x[::4, 0])
    assert convert_framerate(x, 30, 30) is x
    y = convert_framerate(x, 50, 30)  # non-integer ratio: linear interpolation
    assert len(y) == round(12 * 30 / 50)
    np.testing.assert_allclose(y[:, 0], np.minimum(np.arange(len(y)) * 50 / 30, 11), rtol=1e-6)


def _edit_json(path, fn):
    doc = json.loads(path.read_text())
    fn(doc)
    path.write_text(json.dumps(doc))


def test_clear_errors_name_the_file(release):
    d5 = release / "D5_unitalker_faceforensics++"
    # missing audio
    (d5 / "audio" / "train_1.npy").unlink()
    with pytest.raises(ClipError, match=r"train_1.npy: audio file not found"):
        ClipDataset(d5, "train")
    # wrong width
    write_npy(d5 / "audio" / "train_1.npy", np.zeros(16000, np.float32))
    write_npy(d5 / "annot" / "train_2.npy", np.zeros((30, 412), np.float32))
    with pytest.raises(ClipError, match=r"train_2.npy: annotation has 412 values per frame"):
        ClipDataset(d5, "train")
    # NaN frame (found at load time)
    bad = np.zeros((30, 413), np.float32)
    bad[7, 3] = np.nan
    write_npy(d5 / "annot" / "train_2.npy", bad)
    ds = ClipDataset(d5, "train")
    with pytest.raises(
        ClipError, match=r"train_2.npy: NaN or infinite values in 1 frame\(s\), first at frame 7"
    ):
        ds[2]
    # truncated npy
    raw = (d5 / "annot" / "train_3.npy").read_bytes()
    (d5 / "annot" / "train_3.npy").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(ClipError, match=r"train_3.npy: cannot read annotation npy \(truncated"):
        ClipDataset(d5, "train")
    # unsupported fps, path escape, unregistered convention, empty split
    _edit_json(d5 / "val.json", lambda d: d["data"][0].update(fps=0))
    with pytest.raises(ManifestError, match=r"val.json entry 0 \(val_0.npy\): unsupported fps 0"):
        ClipDataset(d5, "val")
    _edit_json(
        d5 / "val.json", lambda d: d["data"][0].update(fps=30, audio_path="../../secret.wav")
    )
    with pytest.raises(
        ManifestError, match=r"val.json: audio_path '../../secret.wav' resolves outside"
    ):
        ClipDataset(d5, "val")
    _edit_json(
        d5 / "val.json",
        lambda d: d["data"][0].update(audio_path="audio/val_0.npy", annot_type="xx"),
    )
    with pytest.raises(ManifestError, match=r"val.json entry 0: unknown convention 'xx'"):
        ClipDataset(d5, "val")
    _edit_json(d5 / "test.json", lambda d: d.update(data=[]))
    with pytest.raises(ManifestError, match=r"test.json: empty split"):
        ClipDataset(d5, "test")


def test_audio_decoded_once_memory_and_disk_cache(release, tmp_path, monkeypatch):
    calls = []
    real = dataset_mod.load_audio

    def counting(path, *a, **k):
        calls.append(path)
        return real(path, *a, **k)

    monkeypatch.setattr(dataset_mod, "load_audio", counting)
    cache = tmp_path / "cache"
    ds = ClipDataset(release, "train", cache_dir=cache)
    for _epoch in range(2):
        for i in range(len(ds)):
            ds[i]
    assert len(calls) == len(ds)
    # a new dataset (new process) reads the disk cache instead of decoding
    ds2 = ClipDataset(release, "train", cache_dir=cache)
    a = ds2[0]["audio"]
    assert len(calls) == len(ds)
    np.testing.assert_array_equal(a, ds[0]["audio"])
    assert len(list(cache.rglob("*.npy"))) == len(ds)


def test_audio_cache_equal_arrays_and_invalidates_on_change(tmp_path, monkeypatch):
    import soundfile as sf

    from unitalker.audio import load_audio
    from unitalker.data.dataset import AudioCache

    t = np.arange(8000) / 16000
    wav = tmp_path / "a.wav"
    sf.write(wav, (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32), 16000)
    cache = AudioCache(tmp_path / "disk")
    a = cache.get(wav)
    np.testing.assert_array_equal(a, load_audio(wav))
    assert cache.get(wav) is a and cache.decoded == 1  # the second read decodes nothing
    fresh = AudioCache(tmp_path / "disk")  # another process: the disk cache has it
    np.testing.assert_array_equal(fresh.get(wav), a)
    assert fresh.decoded == 0
    # the file changes (same name): the first cache decodes the new content (and writes it
    # to disk), the second reads that from disk; neither returns the old audio
    sf.write(wav, (0.3 * np.sin(2 * np.pi * 440 * t[:6000])).astype(np.float32), 16000)
    for c in (cache, fresh):
        b = c.get(wav)
        np.testing.assert_array_equal(b, load_audio(wav))
        assert len(b) == 6000 and c.decoded == (2 if c is cache else 0)
    assert len(cache) == 1  # the old version left memory
    # same size, only the mtime moves: still a new version
    before = cache.get(wav)
    sf.write(wav, (0.1 * np.sin(2 * np.pi * 330 * t[:6000])).astype(np.float32), 16000)
    st = wav.stat()
    os.utime(wav, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    assert not np.array_equal(cache.get(wav), before) and cache.decoded == 3
    with pytest.raises(ClipError, match="a.wav"):
        AudioCache().get(tmp_path / "a.wav.missing")

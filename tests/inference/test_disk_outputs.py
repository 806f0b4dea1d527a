"""Long results streamed to disk: equal to in-memory bit for bit, memory-mapped round trips."""

from __future__ import annotations

import json

import numpy as np
import pytest
from tests.inference.infer_testdata import speechy, tiny_wavlm

from unitalker.export import get_writer, load_npz, write_outputs
from unitalker.export.json_frames import animation_to_json
from unitalker.export.npz import write_npz
from unitalker.inference.animate import CrossfadeMerger, animate


@pytest.mark.parametrize("last", [40, 12])  # the last window longer / shorter than the overlap
def test_disk_merger_equals_memory_bit_for_bit(tmp_path, last):
    rng = np.random.default_rng(0)
    pieces = [(0, 40), (30, 40), (60, last)]
    n = 60 + last + 3  # a few frames past the last window (the rounding-tie fill)
    arrays = [(s, rng.normal(size=(t, 5)).astype(np.float32)) for s, t in pieces]
    mem, disk = CrossfadeMerger(n, 5, 8), CrossfadeMerger(n, 5, 8, tmp_path / "a.npy")
    for s, a in arrays:
        mem.add(s, a)
        disk.add(s, a)
    out = disk.result()
    assert isinstance(out, np.memmap) and not out.flags.writeable
    assert np.array_equal(mem.result(), out)


@pytest.fixture(scope="module")
def results():
    model = tiny_wavlm()
    wav = speechy(7.3)
    kw = {"window": 3.0, "overlap": 1.0}
    return animate(model, wav, memmap=False, **kw), animate(model, wav, memmap=True, **kw), wav


def test_animate_memmap_equals_in_memory(results, tmp_path):
    mem, disk, _ = results
    for h in mem:
        assert isinstance(disk[h].data, np.memmap)
        assert np.array_equal(mem[h].data, disk[h].data)
    model = tiny_wavlm()
    animate(model, speechy(1.0), memmap=True, spill_dir=tmp_path)
    assert list(tmp_path.iterdir()) == []  # mapped files are unlinked: nothing left behind


def test_memmap_results_round_trip_through_every_streamed_writer(results, tmp_path):
    mem, disk, _ = results
    write_outputs(mem, tmp_path / "mem", "clip", ["npz", "csv", "json"])
    write_outputs(disk, tmp_path / "disk", "clip", ["npz", "csv", "json"])
    for f in (tmp_path / "mem").iterdir():
        g = tmp_path / "disk" / f.name
        if f.suffix != ".npz":
            assert f.read_bytes() == g.read_bytes(), f.name
    back = load_npz(tmp_path / "disk" / "clip.npz")
    for h in mem:
        assert np.array_equal(back[h].data, mem[h].data) and back[h].fps == mem[h].fps


def test_streamed_json_equals_one_shot_dump(results, tmp_path):
    mem, _, _ = results
    a = mem["3DETF_blendshape_weight"]
    get_writer("json").write_head(a, tmp_path / "a.json")
    ref = json.dumps(animation_to_json(a), separators=(",", ":"), default=str)
    assert (tmp_path / "a.json").read_text() == ref


def test_write_npz_matches_numpy(tmp_path):
    rng = np.random.default_rng(1)
    arrays = {
        "big": rng.normal(size=(3000, 1000)).astype(np.float32),  # stored (> 8 MB)
        "small": rng.normal(size=(7, 3)).astype(np.float32),
        "empty": np.zeros((0, 4), np.float32),
        "scalar": np.asarray(25.0),
        "text": np.asarray('{"a": 1}'),
    }
    write_npz(tmp_path / "a.npz", arrays)
    with np.load(tmp_path / "a.npz", allow_pickle=False) as z:
        assert sorted(z.files) == sorted(arrays)
        for k, v in arrays.items():
            assert z[k].dtype == v.dtype and np.array_equal(z[k], v)

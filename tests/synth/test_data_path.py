"""Every A2F-Synth dataset goes through the normal data path: the layout converters
(BIWI, VOCASET, 3D-ETF) or the release layout, then the manifest and the clip loader."""

from __future__ import annotations

import numpy as np

from unitalker import conventions
from unitalker.data.dataset import ClipDataset
from unitalker.data.manifest import load_manifest


def test_every_dataset_converts_and_loads(tiny_release):
    """``tiny_release`` (conftest) converts S0-S2 with ``unitalker data convert`` and links
    S3-S5, as ``scripts/prepare_synth.sh`` does."""
    release = tiny_release
    manifest = load_manifest(release)
    # the tiny S2 states its split (no train clip: val 3 / test 3), and it is honoured
    assert sorted(manifest.split("train").datasets) == ["S0", "S1", "S3", "S4", "S5"]
    seen = set()
    for name in ("train", "test"):
        ds = ClipDataset(manifest, name, max_seconds=None, min_seconds=0.0)
        for i in range(len(ds)):
            item = ds[i]
            conv = conventions.get(item["convention"])
            assert item["motion"].shape[1] == conv.dim
            assert np.isfinite(item["motion"]).all()
            # annotations arrive at the convention's rate: 60 fps VOCASET-style data is halved
            seconds = len(item["audio"]) / 16000
            assert abs(item["motion"].shape[0] / conv.fps - seconds) < 0.2, item["name"]
            seen.add(item["dataset"])
    assert seen == {"S0", "S1", "S2", "S3", "S4", "S5"}
    # the S1 (VOCASET-style) annotations are stored at 60 fps and loaded at 30
    assert conventions.get_dataset("S1").native_fps == 60.0

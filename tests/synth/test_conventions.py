"""Every registered synth convention has consistent resources; assets rebuild identically."""

from __future__ import annotations

import numpy as np
import pytest

from unitalker import conventions
from unitalker.geometry import vertices
from unitalker.synth import conventions as sc

SYNTH = [c for c in conventions.all_conventions() if c.name.startswith("synth_")]


def test_registered():
    assert {c.name for c in SYNTH} == {sc.ARKIT, sc.HEAD, sc.HEAD2, sc.FLAME}
    keys = {d.key for d in conventions.datasets()}
    assert {"S0", "S1", "S2", "S3", "S4", "S5"} <= keys
    assert {conventions.get_dataset(k).native_fps for k in ("S0", "S1", "S2")} == {25.0, 60.0, 30.0}


@pytest.mark.parametrize("conv", SYNTH, ids=lambda c: c.name)
def test_resources_consistent(conv):
    n_v = conv.n_vertices if conv.kind != "params" else conv.resource("neutral").shape[0]
    faces = conv.resource("faces")
    assert faces.ndim == 2 and faces.shape[1] == 3 and faces.min() >= 0 and faces.max() < n_v
    assert len(np.unique(faces)) == n_v  # every vertex is used
    for key in ("lip_indices", "upper_face_indices"):
        idx = conv.resource(key)
        assert idx.ndim == 1 and len(idx) > 10 and idx.min() >= 0 and idx.max() < n_v
        assert len(np.unique(idx)) == len(idx)
    if conv.kind == "blendshapes":
        assert conv.resource("rig_basis").shape == (conv.dim, n_v, 3)
        assert conv.resource("rig_meanshape").shape == (n_v, 3)
        assert conv.has_mesh
    else:
        assert conv.resource("neutral").shape == (n_v, 3)


def test_topologies_differ():
    a, b = sc.asset("head"), sc.asset("head2")
    assert a["neutral"].shape != b["neutral"].shape
    assert 2000 <= len(a["neutral"]) <= 5000


def test_flame_params_roundtrip():
    rng = np.random.default_rng(0)
    w = rng.uniform(0, 0.5, (4, 52)).astype(np.float32)
    p = sc.arkit_to_flame(w)
    assert p.shape == (4, 43)
    v_flame = vertices(sc.FLAME, p)
    v_rig = vertices(sc.ARKIT, w)
    # linear rig vs skinned jaw + 40-component expression model: close, not identical
    assert np.abs(v_flame - v_rig).max() < 0.004
    zero = vertices(sc.FLAME, np.zeros((1, 43)))[0]
    assert np.allclose(zero, sc.asset("flame")["template"], atol=1e-6)


def test_build_assets_reproduce_shipped(tmp_path):
    """Rebuilding gives the shipped assets: meshes byte for byte; the FLAME-like expression
    basis up to each component's sign (an SVD on another machine's LAPACK may break the
    tie between mirrored vertices the other way)."""
    for p in sc.build_assets(tmp_path):
        if p.name != "flame.npz":
            assert p.read_bytes() == (sc.ASSET_DIR / p.name).read_bytes(), p.name
            continue
        new, old = np.load(p), np.load(sc.ASSET_DIR / p.name)
        assert new.files == old.files
        for k in new.files:
            if k != "exprdirs":
                assert np.array_equal(new[k], old[k]), k
        a, b = (
            new["exprdirs"].reshape(len(new["exprdirs"]), -1),
            old["exprdirs"].reshape(len(old["exprdirs"]), -1),
        )
        sign = np.where((a * b).sum(1) < 0, -1.0, 1.0)
        assert np.allclose(a * sign[:, None], b, atol=1e-6)


def test_attach_arkit_rig():
    conv = conventions.get("3DETF_blendshape_weight").with_resources(**sc.attach_arkit_rig())
    assert conv.has_mesh and conv.resource("rig_basis").shape[0] == 52


def test_shipped_conventions_fit_the_assets():
    """The registered data (assets/synth/conventions.json) agrees with the built assets."""
    head, head2, flame = sc.asset("head"), sc.asset("head2"), sc.asset("flame")
    assert conventions.get(sc.HEAD).dim == head["neutral"].size
    assert conventions.get(sc.HEAD2).dim == head2["neutral"].size
    arkit = conventions.get(sc.ARKIT)
    assert arkit.channel_names == conventions.ARKIT52_EMOTALK
    assert np.array_equal(arkit.resource("rig_basis"), head["rig_basis"])
    assert np.array_equal(arkit.resource("rig_meanshape"), head["neutral"])
    fl = conventions.get(sc.FLAME)
    assert fl.dim == 3 + sc.N_EXPR == len(fl.channel_names)
    assert fl.channel_names[:3] == ("jaw_rx", "jaw_ry", "jaw_rz")
    for key in ("template", "exprdirs", "jaw_weights", "jaw_pivot"):
        assert np.array_equal(fl.resource(f"lbs_{key}"), flame[key]), key
    assert flame["exprdirs"].shape == (sc.N_EXPR, *head["neutral"].shape)


def test_registered_datasets_match_the_generator():
    from unitalker.synth.presets import DATASETS
    from unitalker.synth.voices import VOICE_DATASETS, VOICE_PRESETS

    for d in DATASETS:
        lang = "multi" if len(d.languages) > 1 else d.languages[0]
        want = conventions.DatasetInfo(
            d.key,
            d.name,
            d.convention,
            len(d.subjects["bench"]),
            d.fps,
            folder=d.folder,
            repeat=d.repeat,
            language=lang,
            domain=d.domain,
        )
        assert conventions.get_dataset(d.key) == want
    for v in VOICE_DATASETS:
        n_subjects = VOICE_PRESETS["bench"][0]
        want = conventions.DatasetInfo(
            v.key, v.name, v.convention, n_subjects, v.fps, folder=v.folder, language="en"
        )
        assert conventions.get_dataset(v.key) == want

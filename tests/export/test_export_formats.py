"""Every export opens in an independent reader with the expected content."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from tests.meshdata import FPS, RIG_NAMES, random_animation, require_rig

from unitalker import conventions
from unitalker.animation import Animation
from unitalker.conventions import INHOUSE51, LIVE_LINK_ORDER, LIVE_LINK_ROTATIONS
from unitalker.export import (
    ExportError,
    available_formats,
    formats_for,
    get_writer,
    load_npz,
    write_outputs,
)
from unitalker.export.livelink_csv import timecode

EXPECTED_HEADER = ["Timecode", "BlendShapeCount", *LIVE_LINK_ORDER, *LIVE_LINK_ROTATIONS]
REGISTRY = [c.name for c in conventions.all_conventions()]
ARKIT_REGISTRY = [
    c.name
    for c in conventions.all_conventions()
    if c.kind == "blendshapes" and get_writer("csv").fits(random_animation(c, 1))
]


def test_available_formats() -> None:
    assert set(available_formats()) == {"npz", "csv", "json", "glb", "usd", "obj", "ply", "mp4"}
    with pytest.raises(ExportError, match="unknown output format"):
        get_writer("fbx")


def test_formats_for_kinds(sphere_anim, rig_anim, norig_conv, faceless_conv) -> None:
    assert set(formats_for(sphere_anim)) == {"npz", "json", "glb", "usd", "obj", "ply"}
    assert "mp4" in formats_for(sphere_anim, audio=True)
    assert set(formats_for(rig_anim)) == {"npz", "json", "csv", "glb", "usd", "obj", "ply"}
    assert set(formats_for(random_animation(norig_conv))) == {"npz", "json", "csv"}
    assert set(formats_for(random_animation(faceless_conv))) == {"npz", "json", "glb", "usd", "ply"}
    params = random_animation(conventions.get("flame_params_from_dadhead"))
    assert set(formats_for(params)) == {"npz", "json"}


# --- npz / json round trips for every registered convention --------------------------


@pytest.mark.parametrize("name", REGISTRY)
def test_npz_json_roundtrip_registry(name: str, tmp_path) -> None:
    anim = random_animation(conventions.get(name), n_frames=3)
    paths = write_outputs({name: anim}, tmp_path, "clip", ["npz", "json"])
    assert [p.name for p in paths] == ["clip.npz", f"clip_{name}.json"]
    with np.load(paths[0], allow_pickle=False) as z:
        assert z[name].shape == (3, anim.conv.dim)
        assert float(z[f"{name}__fps"]) == anim.fps
        meta = json.loads(str(z["__meta__"]))
    assert meta["heads"][name]["identity"] == "pivot"
    back = load_npz(paths[0])[name]
    np.testing.assert_array_equal(back.data, anim.data)
    assert (back.fps, back.convention, back.identity, back.meta) == (
        anim.fps,
        name,
        "pivot",
        {"seed": 0},
    )
    doc = json.loads(paths[1].read_text())
    assert doc["fps"] == anim.fps and doc["convention"] == name and doc["identity"] == "pivot"
    assert len(doc["frames"]) == 3
    if anim.conv.kind == "blendshapes" and anim.conv.channel_names:
        assert doc["channels"] == list(anim.conv.channel_names)
        values = [[f[c] for c in doc["channels"]] for f in doc["frames"]]
    else:
        values = doc["frames"]
    np.testing.assert_allclose(np.asarray(values), anim.data, atol=1e-6)


def test_npz_several_heads_and_unregistered_convention(sphere_anim, rig_anim, tmp_path) -> None:
    (path,) = write_outputs(
        {"a": sphere_anim, rig_anim.convention: rig_anim}, tmp_path, "two", "npz"
    )
    heads = load_npz(path)
    assert set(heads) == {"a", rig_anim.convention}
    assert heads["a"].convention == sphere_anim.convention


def test_npz_carries_unregistered_convention(tmp_path, monkeypatch) -> None:
    """A file made with a convention this process does not know still loads."""
    conv = conventions.register(conventions.Convention("test_only_in_file_xyz", "params", 2, 10.0))
    anim = Animation(conv.name, 10.0, np.ones((4, 2)), identity="s1")
    (path,) = write_outputs({conv.name: anim}, tmp_path, "x", "npz")
    monkeypatch.delitem(conventions._CONVENTIONS, conv.name)  # as in another process
    back = load_npz(path)
    assert back[conv.name].identity == "s1" and conventions.get(conv.name).fps == 10.0
    monkeypatch.delitem(conventions._CONVENTIONS, conv.name)


def test_load_npz_errors(tmp_path) -> None:
    with pytest.raises(FileNotFoundError):
        load_npz(tmp_path / "missing.npz")
    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    with pytest.raises(ExportError, match="not a readable npz"):
        load_npz(tmp_path / "bad.npz")


# --- Live Link CSV ---------------------------------------------------------------------


def _read_csv(path):
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    return rows[0], rows[1:]


@pytest.mark.parametrize("name", ARKIT_REGISTRY)
def test_csv_registry_blendshapes(name: str, tmp_path) -> None:
    conv = conventions.get(name)
    anim = random_animation(conv, n_frames=40)
    (path,) = write_outputs({name: anim}, tmp_path, "clip", "csv")
    header, rows = _read_csv(path)
    assert header == EXPECTED_HEADER
    assert len(rows) == 40
    assert all(len(r) == 2 + 61 and r[1] == "61" for r in rows)
    assert rows[0][0] == "00:00:00:00.000" and rows[31][0] == timecode(31, conv.fps)
    values = np.asarray([[float(x) for x in r[2:]] for r in rows])
    assert np.all((values >= 0) & (values <= 1)) and np.all(values[:, 52:] == 0)
    # Every channel with an ARKit name lands in its Live Link column.
    col = {h.lower(): i for i, h in enumerate(EXPECTED_HEADER[2:])}
    for j, ch in enumerate(conv.channel_names):
        key = ch.lower()
        if key in col:
            np.testing.assert_allclose(values[:, col[key]], anim.data[:, j], atol=1e-5)


def test_csv_inhouse51_has_zero_tongue(tmp_path) -> None:
    name = "inhouse_blendshape_weight"
    data = np.zeros((5, 51), np.float32)
    data[:, INHOUSE51.index("JawOpen")] = 0.7
    (path,) = write_outputs({name: Animation(name, 30.0, data)}, tmp_path, "c", "csv")
    header, rows = _read_csv(path)
    assert float(rows[2][header.index("JawOpen")]) == pytest.approx(0.7)
    assert all(float(r[header.index("TongueOut")]) == 0 for r in rows)


def test_csv_partial_rig_case_insensitive(rig_anim, tmp_path) -> None:
    (path,) = write_outputs({rig_anim.convention: rig_anim}, tmp_path, "c", "csv")
    header, rows = _read_csv(path)
    jaw = np.asarray([float(r[header.index("JawOpen")]) for r in rows])
    np.testing.assert_allclose(jaw, rig_anim.data[:, RIG_NAMES.index("JawOpen")], atol=1e-5)
    assert {float(r[header.index("EyeBlinkLeft")]) for r in rows} == {0.5}


def test_timecode() -> None:
    assert timecode(0, 30) == "00:00:00:00.000"
    assert timecode(29, 30) == "00:00:00:29.000"
    assert timecode(30 * 3661 + 5, 30) == "01:01:01:05.000"
    assert timecode(3, 25) == "00:00:00:03.000"
    # 29.97 fps: frame 30 is 1.001 s in, one frame plus 0.03 of a frame past the second.
    assert timecode(30, 29.97) == "00:00:01:00.030"


# --- glb -----------------------------------------------------------------------------


def _glb_checks(path, n_vertices, n_faces, n_targets, n_frames, fps):
    import pygltflib
    import trimesh

    g = pygltflib.GLTF2().load(str(path))
    prim = g.meshes[0].primitives[0]
    assert g.accessors[prim.attributes.POSITION].count == n_vertices
    pos = g.accessors[prim.attributes.POSITION]
    assert pos.min is not None and pos.max is not None
    assert len(prim.targets) == n_targets
    assert len(g.meshes[0].extras["targetNames"]) == n_targets
    for t in prim.targets:
        acc = g.accessors[t["POSITION"] if isinstance(t, dict) else t.POSITION]
        assert acc.min is not None and acc.max is not None and acc.count == n_vertices
    for view in g.bufferViews:
        assert view.byteOffset % 4 == 0
    (anim,) = g.animations
    sampler = anim.samplers[0]
    assert sampler.interpolation == "LINEAR" and anim.channels[0].target.path == "weights"
    times = g.accessors[sampler.input]
    assert times.count == n_frames
    assert times.max[0] == pytest.approx((n_frames - 1) / fps, abs=1e-5)
    assert g.accessors[sampler.output].count == n_frames * n_targets
    # trimesh: an independent loader sees the same mesh and the target names.
    scene = trimesh.load(str(path), force="scene")
    (mesh,) = scene.geometry.values()
    assert len(mesh.vertices) == n_vertices and len(mesh.faces) == n_faces
    return g


def _decode(g, path, accessor_index):
    import pygltflib

    acc = g.accessors[accessor_index]
    view = g.bufferViews[acc.bufferView]
    blob = g.binary_blob()
    width = {"SCALAR": 1, "VEC3": 3}[acc.type]
    dtype = {
        pygltflib.FLOAT: np.float32,
        pygltflib.UNSIGNED_SHORT: np.uint16,
        pygltflib.UNSIGNED_INT: np.uint32,
    }[acc.componentType]
    arr = np.frombuffer(
        blob, dtype, count=acc.count * width, offset=view.byteOffset + (acc.byteOffset or 0)
    )
    return arr.reshape(acc.count, width) if width > 1 else arr


def test_glb_rig(rig_anim, rig_conv, tmp_path) -> None:
    (path,) = write_outputs({rig_conv.name: rig_anim}, tmp_path, "clip", "glb")
    faces = rig_conv.resource("faces")
    v = rig_conv.n_vertices
    g = _glb_checks(path, v, len(faces), len(RIG_NAMES), 15, FPS)
    assert g.meshes[0].extras["targetNames"] == list(RIG_NAMES)
    prim = g.meshes[0].primitives[0]
    jaw = _decode(g, path, prim.targets[0]["POSITION"])
    np.testing.assert_allclose(jaw, rig_conv.resource("rig_basis")[0], atol=1e-6)
    w = _decode(g, path, g.animations[0].samplers[0].output).reshape(15, -1)
    np.testing.assert_allclose(w, rig_anim.data, atol=1e-6)


def _glb_playback(path):
    """What a player shows at each frame time: ``base + weights @ targets``, and the extras."""
    import pygltflib

    g = pygltflib.GLTF2().load(str(path))
    prim = g.meshes[0].primitives[0]
    k = len(prim.targets)
    base = _decode(g, path, prim.attributes.POSITION)
    targets = np.stack([_decode(g, path, t["POSITION"]) for t in prim.targets])
    w = _decode(g, path, g.animations[0].samplers[0].output).reshape(-1, k)
    return g, base[None] + np.einsum("tk,kvc->tvc", w, targets), w, g.meshes[0].extras


def _motion_range(frames):
    return float((frames.max(0) - frames.min(0)).max())


def test_glb_vertices_reconstructs_motion(sphere_anim, sphere_conv, tmp_path) -> None:
    (path,) = write_outputs({sphere_conv.name: sphere_anim}, tmp_path, "clip", "glb")
    g, recon, w, extras = _glb_playback(path)
    k = len(g.meshes[0].primitives[0].targets)
    assert 1 <= k <= 20  # 20 frames: at most 20 components
    _glb_checks(path, sphere_conv.dim // 3, len(sphere_conv.resource("faces")), k, 20, FPS)
    assert w.min() >= -1e-6 and w.max() <= 1 + 1e-6  # Blender's default slider range
    frames = sphere_anim.vertices()
    err = np.abs(recon - frames).max()
    assert err <= 0.01 * _motion_range(frames)  # the default bound, on the playback
    assert extras["mode"] == "bounded" and extras["morph_targets"] == k
    assert extras["max_abs_error"] == pytest.approx(err, rel=1e-3, abs=1e-7)
    assert extras["max_error_fraction_of_motion_range"] <= 0.01


def _offset_motion(sphere_conv, frames: int, seed: int = 0):
    """A subject whose template is far from the neutral mesh (the static offset dominates
    the energy measured from the neutral), speaking with a few smooth modes plus noise."""
    rng = np.random.default_rng(seed)
    verts = sphere_conv.resource("neutral").astype(np.float64)
    static = 0.3 * rng.standard_normal(verts.shape)
    t = np.arange(frames) / 25.0
    modes = rng.standard_normal((6, *verts.shape)) * 0.02
    freq, phase = rng.uniform(1, 6, 6), rng.uniform(0, 6, 6)
    amp = np.sin(2 * np.pi * freq[None] * t[:, None] + phase[None])  # [T, 6]
    motion = np.einsum("tm,mvc->tvc", amp, modes) + 1e-4 * rng.standard_normal(
        (frames, *verts.shape)
    )
    return Animation(sphere_conv.name, 25.0, (verts + static + motion).reshape(frames, -1))


@pytest.mark.parametrize("frames", [60, 400])  # exact SVD / randomised SVD of growing rank
def test_glb_default_error_bound_on_motion_far_from_neutral(sphere_conv, tmp_path, frames):
    """The bound holds on the motion, not on the offsets from the neutral face."""
    anim = _offset_motion(sphere_conv, frames)
    (path,) = write_outputs({sphere_conv.name: anim}, tmp_path, "far", "glb")
    _, recon, _, extras = _glb_playback(path)
    f = anim.vertices()
    assert np.abs(recon - f).max() <= 0.01 * _motion_range(f)
    assert 6 <= extras["morph_targets"] < frames  # the modes, not one target per frame


def test_glb_lossless_reproduces_frames(sphere_conv, tmp_path):
    anim = _offset_motion(sphere_conv, 50, seed=1)
    (path,) = write_outputs(
        {sphere_conv.name: anim}, tmp_path, "exact", "glb", options={"glb": {"lossless": True}}
    )
    _, recon, _, extras = _glb_playback(path)
    f = anim.vertices()
    scale = np.abs(f).max()
    assert np.abs(recon - f).max() <= 8 * np.finfo(np.float32).eps * scale  # float precision
    assert extras["mode"] == "lossless" and extras["max_abs_error"] <= 1e-6 * scale
    with pytest.raises(ExportError, match="bad options for glb"):
        write_outputs({sphere_conv.name: anim}, tmp_path, "x", "glb", options={"glb": {"nope": 1}})


def test_glb_target_cap_states_its_error(sphere_conv, tmp_path):
    from unitalker.export.glb import morph_basis

    f = _offset_motion(sphere_conv, 40).vertices()
    fit = morph_basis(f, sphere_conv.resource("neutral"), max_targets=2)
    assert len(fit.targets) == 2 and fit.relative_error > 0.01
    assert fit.max_error == pytest.approx(
        np.abs(fit.base[None] + np.einsum("tk,kvc->tvc", fit.weights, fit.targets) - f).max()
    )


@pytest.mark.parametrize("shape", [(40, 900), (130, 6000), (12, 30)])
def test_glb_gram_svd_is_the_svd(shape):
    """The bounded-error mode's SVD through the Gram matrix gives LAPACK's singular values
    and subspaces on wide motion matrices of decaying spectrum (a clip is far wider than
    long), and the same number of morph targets."""
    from unitalker.export import glb

    t, d = shape
    rng = np.random.default_rng(t)
    a = (rng.standard_normal((t, 8)) * 2.0 ** -np.arange(8)) @ rng.standard_normal((8, d))
    a += 1e-4 * rng.standard_normal((t, d))
    u, s, vt = glb._gram_svd(a)
    u0, s0, vt0 = glb._svd(a)
    assert np.allclose(s[:8], s0[:8], rtol=1e-9)
    # the leading components agree up to sign, and the product is the matrix
    for k in range(8):
        assert abs(abs(u[:, k] @ u0[:, k]) - 1) < 1e-8
    assert np.allclose((u * s) @ vt, a, atol=1e-9 * np.abs(a).max())
    if d % 3 == 0:  # morph_basis picks as many targets as LAPACK's SVD needs for the bound
        frames = a.reshape(t, -1, 3)
        fit = glb.morph_basis(frames, np.zeros(frames.shape[1:]))
        motion = a - a.mean(0)
        uu, ss, vv = glb._svd(motion)
        tol = glb.MAX_ERROR * float((a.max(0) - a.min(0)).max())
        _, _, k = glb._pick(motion, uu * ss, vv, tol, t, False, ss)
        assert len(fit.targets) == k and fit.relative_error <= glb.MAX_ERROR


def test_glb_points_without_faces(faceless_conv, tmp_path) -> None:
    import pygltflib

    anim = random_animation(faceless_conv, 6)
    (path,) = write_outputs({faceless_conv.name: anim}, tmp_path, "p", "glb")
    g = pygltflib.GLTF2().load(str(path))
    assert g.meshes[0].primitives[0].mode == pygltflib.POINTS
    assert g.meshes[0].primitives[0].indices is None


# --- obj / ply sequences -------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["obj", "ply"])
def test_mesh_sequences(fmt, sphere_anim, rig_anim, tmp_path) -> None:
    import trimesh

    results = {sphere_anim.convention: sphere_anim, rig_anim.convention: rig_anim}
    paths = write_outputs(results, tmp_path, "clip", fmt)
    for folder, anim in zip(paths, results.values(), strict=True):
        assert folder.is_dir() and folder.name == f"clip_{anim.convention}_{fmt}"
        files = sorted(folder.iterdir())
        assert len(files) == anim.n_frames
        assert files[0].name == f"{anim.convention}_00000.{fmt}"
        frames = anim.vertices()
        for i in (0, anim.n_frames - 1):
            mesh = trimesh.load(str(files[i]), process=False)
            np.testing.assert_allclose(mesh.vertices, frames[i], atol=1e-5)
            np.testing.assert_array_equal(mesh.faces, anim.faces())


def test_ply_points_and_obj_refused_without_faces(faceless_conv, tmp_path) -> None:
    import trimesh

    anim = random_animation(faceless_conv, 3)
    (folder,) = write_outputs({faceless_conv.name: anim}, tmp_path, "p", "ply")
    cloud = trimesh.load(str(sorted(folder.iterdir())[1]))
    np.testing.assert_allclose(cloud.vertices, anim.vertices()[1], atol=1e-6)
    with pytest.raises(ExportError, match="no 'faces' resource"):
        write_outputs({faceless_conv.name: anim}, tmp_path, "p2", "obj")
    assert not (tmp_path / f"p2_{faceless_conv.name}_obj").exists()


@pytest.mark.parametrize("name", [c.name for c in conventions.all_conventions() if c.has_mesh])
def test_registry_mesh_conventions_export(name: str, tmp_path) -> None:
    """Every registered convention with a mesh writes every mesh format that fits it."""
    conv = conventions.get(name)
    require_rig(conv)
    anim = random_animation(conv, n_frames=2)
    fmts = [f for f in formats_for(anim) if f in ("glb", "obj", "ply")]
    paths = write_outputs({name: anim}, tmp_path, "r", fmts)
    assert len(paths) == len(fmts)

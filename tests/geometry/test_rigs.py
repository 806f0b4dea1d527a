"""Every convention's rig: torch and numpy agree, gradients flow, shapes are the
registry's; the skinning rigs against independent references; the one Rodrigues."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from unitalker import conventions, geometry
from unitalker.geometry.rigs import BlendshapeRig, LBSRig, VertexRig
from unitalker.geometry.rotation import rodrigues

MESHED = [c for c in conventions.all_conventions() if c.has_mesh]


def _motion(conv: conventions.Convention, n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if conv.kind == "blendshapes":
        return rng.uniform(0, 1, (n, conv.dim)).astype(np.float32)
    return (rng.normal(size=(n, conv.dim)) * (0.2 if conv.kind == "params" else 0.1)).astype(
        np.float32
    )


def test_every_meshed_kind_is_covered():
    assert {c.kind for c in MESHED} == set(conventions.KINDS)


@pytest.mark.parametrize("conv", MESHED, ids=lambda c: c.name)
def test_torch_and_numpy_agree(conv):
    x = _motion(conv, 5)
    rig = geometry.rig_for(conv)
    kind = {"vertices": VertexRig, "blendshapes": BlendshapeRig, "params": LBSRig}[conv.kind]
    assert isinstance(rig, kind)
    xt = torch.from_numpy(x).requires_grad_(conv.kind != "vertices")
    out = rig(xt)
    v = geometry.vertices(conv, x)
    assert v.dtype == np.float32 and v.shape == tuple(out.shape) == (5, rig.n_vertices, 3)
    if conv.n_vertices is not None:
        assert rig.n_vertices == conv.n_vertices
    np.testing.assert_allclose(out.detach().numpy(), v, atol=1e-6)
    neutral = rig.neutral()
    assert neutral is None or neutral.shape == (rig.n_vertices, 3)
    if xt.requires_grad:  # differentiable everywhere, at zero motion too (Rodrigues at 0)
        out.square().sum().backward()
        zero = torch.zeros(2, conv.dim, requires_grad=True)
        rig(zero).square().sum().backward()
        assert torch.isfinite(xt.grad).all() and torch.isfinite(zero.grad).all()


@pytest.mark.parametrize("conv", [c for c in MESHED if c.kind == "params"], ids=lambda c: c.name)
def test_numpy_vertices_of_long_clips_are_chunked(conv, monkeypatch):
    x = _motion(conv, 7, seed=1)
    whole = geometry.vertices(conv, x)
    rig = geometry._numpy_rig(conv)
    monkeypatch.setattr(rig, "numpy_chunk", 3)
    np.testing.assert_array_equal(geometry.vertices(conv, x), whole)


def test_vertex_rig_returns_a_view():
    conv = next(c for c in MESHED if c.kind == "vertices")
    x = _motion(conv, 3)
    assert np.shares_memory(geometry.vertices(conv, x), x)


def test_no_mesh_gives_none():
    d5 = conventions.get("flame_params_from_dadhead")  # needs the user's FLAME file
    assert not d5.has_mesh and geometry.rig_for(d5) is None
    assert geometry.vertices(d5, np.zeros((2, d5.dim), np.float32)) is None


def test_synth_jaw_model_matches_its_closed_form():
    """(1 - w) v + w (R (v - p) + p), v = template + expr @ exprdirs: the model the
    A2F-Synth FLAME-like convention was defined with."""
    conv = conventions.get("synth_flame_params")
    keys = ("template", "exprdirs", "jaw_weights", "jaw_pivot")
    fl = {k: conv.resource(f"lbs_{k}").astype(np.float64) for k in keys}
    x = _motion(conv, 4).astype(np.float64)
    x[0, :3] = 0.0
    v = fl["template"][None] + np.einsum("tk,kvc->tvc", x[:, 3:], fl["exprdirs"])
    rot = Rotation.from_rotvec(x[:, :3]).as_matrix()
    p = fl["jaw_pivot"]
    rotated = np.einsum("tij,tvj->tvi", rot, v - p) + p
    w = fl["jaw_weights"][None, :, None]
    want = (1 - w) * v + w * rotated
    np.testing.assert_allclose(geometry.vertices(conv, x), want, atol=1e-6)
    torch_out = geometry.rig_for(conv)(torch.from_numpy(x).float()).detach().numpy()
    np.testing.assert_allclose(torch_out, want, atol=2e-6)


def flame_arrays(rng: np.random.Generator, v: int = 10, j: int = 5) -> dict[str, np.ndarray]:
    """A random FLAME-layout model: root, neck, jaw and two eyes."""
    w = rng.random((v, j))
    return {
        "v_template": rng.normal(size=(v, 3)),
        "shapedirs": rng.normal(size=(v, 3, 400)) * 0.01,
        "posedirs": rng.normal(size=(v, 3, 9 * (j - 1))) * 0.01,
        "J_regressor": rng.random((j, v)) / v,
        "weights": w / w.sum(1, keepdims=True),
        "kintree_table": np.array([[4294967295, 0, 1, 1, 1], [0, 1, 2, 3, 4]]),
        "f": np.array([[0, 1, 2]]),
    }


def _reference_lbs(m: dict[str, np.ndarray], betas: np.ndarray, jaw: np.ndarray) -> np.ndarray:
    """Textbook FLAME skinning of one frame, in float64 with scipy's rotations."""
    parents = m["kintree_table"][0].astype(np.int64)
    n_j = len(parents)
    v_shaped = m["v_template"] + m["shapedirs"] @ betas
    joints = m["J_regressor"] @ v_shaped
    rots = [np.eye(3)] * n_j
    rots[2] = Rotation.from_rotvec(jaw).as_matrix()
    feat = np.concatenate([(r - np.eye(3)).ravel() for r in rots[1:]])
    v_posed = v_shaped + m["posedirs"] @ feat
    world = []
    for j in range(n_j):
        local = np.eye(4)
        local[:3, :3] = rots[j]
        local[:3, 3] = joints[j] - (joints[parents[j]] if j else 0)
        world.append(local if j == 0 else world[parents[j]] @ local)
    out = np.zeros_like(v_posed)
    for j, g in enumerate(world):
        moved = v_posed @ g[:3, :3].T + (g[:3, 3] - g[:3, :3] @ joints[j])
        out += m["weights"][:, j : j + 1] * moved
    return out


def test_flame_rig_matches_reference_lbs():
    rng = np.random.default_rng(0)
    model = flame_arrays(rng)
    rig = LBSRig.from_flame(model, jaw=(400, 403), dtype=torch.float64)
    x = rng.normal(size=(3, 413)) * 0.5
    out = rig(torch.from_numpy(x)).numpy()
    for t in range(len(x)):
        want = _reference_lbs(model, x[t, :400], x[t, 400:403])
        np.testing.assert_allclose(out[t], want, atol=1e-10)
    # the rest pose is the template; a subset of vertices is that subset
    zero = rig(torch.zeros(1, 413, dtype=torch.float64))[0].numpy()
    np.testing.assert_allclose(zero, model["v_template"], atol=1e-12)
    sub = LBSRig.from_flame(model, jaw=(400, 403), face_indices=np.array([1, 4]))
    np.testing.assert_allclose(sub(torch.from_numpy(x).float()), out[:, [1, 4]], atol=1e-5)


def test_rodrigues_matches_scipy():
    rng = np.random.default_rng(0)
    aa = np.concatenate([rng.normal(size=(20, 3)), np.zeros((1, 3)), [[np.pi, 0, 0]]])
    want = Rotation.from_rotvec(aa).as_matrix()
    got = rodrigues(torch.from_numpy(aa)).numpy()
    np.testing.assert_allclose(got, want, atol=1e-9)
    batched = rodrigues(torch.from_numpy(aa.reshape(2, 11, 3))).numpy()
    np.testing.assert_allclose(batched.reshape(-1, 3, 3), want, atol=1e-9)
    zero = torch.zeros(1, 3, requires_grad=True)
    rodrigues(zero).sum().backward()
    assert torch.isfinite(zero.grad).all()


def test_registry_and_geometry_import_no_generator_and_no_torch():
    code = (
        "import sys; from unitalker import conventions, geometry; conventions.names(); "
        "conventions.get('synth_flame_params').resource('lbs_template'); "
        "bad = [m for m in sys.modules if m.startswith('unitalker.synth') or m == 'torch']; "
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)

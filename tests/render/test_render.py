"""Offscreen mesh renderer, bar-chart fallback, layouts."""

from __future__ import annotations

import numpy as np
import pytest
from tests.meshdata import FPS, mouth_mask, talking_sphere

from unitalker.animation import Animation
from unitalker.render import renderer as renderer_module
from unitalker.render.geometry import NormalComputer, uv_sphere, vertex_normals
from unitalker.render.layout import LABEL_HEIGHT, BarPanel, MeshPanel, build_layout

needs_egl = pytest.mark.skipif(not renderer_module.egl_available(), reason="no EGL here")


def test_uv_sphere_and_normals() -> None:
    verts, faces = uv_sphere(5000)
    assert abs(len(verts) - 5000) < 100 and faces.max() == len(verts) - 1
    n = vertex_normals(verts, faces)
    np.testing.assert_allclose(np.linalg.norm(n, axis=1), 1, atol=1e-5)
    assert (n * verts).sum(1).min() > 0.99  # outward


def test_normals_of_a_sequence_are_those_of_each_frame() -> None:
    verts, faces = uv_sphere(800)
    rng = np.random.default_rng(0)
    seq = (verts[None] * rng.uniform(0.5, 2.0, (7, 1, 3))).astype(np.float32)  # ellipsoids
    seq[2, 5] += 0.3  # one spike
    nc = NormalComputer(faces, len(verts))
    out = nc(seq)
    assert out.shape == seq.shape and out.dtype == np.float32 and out.flags.c_contiguous
    for t, v in enumerate(seq):
        a, b, c = v[faces[:, 0]], v[faces[:, 1]], v[faces[:, 2]]
        fn = np.cross(b - a, c - a).astype(np.float64)  # area-weighted face normals
        ref = np.zeros_like(fn[: len(v)])
        for k in range(3):
            np.add.at(ref, faces[:, k], fn)
        ref /= np.linalg.norm(ref, axis=1, keepdims=True)
        np.testing.assert_allclose(out[t], ref, atol=1e-5)
        np.testing.assert_array_equal(nc(v), out[t])


@needs_egl
def test_mouth_open_differs_from_closed_in_mouth_region(sphere_conv) -> None:
    verts = sphere_conv.resource("neutral")
    faces = sphere_conv.resource("faces")
    seq = talking_sphere(verts, 8).reshape(8, -1, 3)  # frame 0 closed, frame ~4 open
    r = renderer_module.MeshRenderer(faces, len(verts), size=128)
    r.frame_vertices(seq)
    closed = r.render(seq[0]).astype(int)
    opened = r.render(seq[4]).astype(int)
    r.release()
    assert closed.shape == (128, 128, 3)
    assert closed.std() > 10 and (closed != closed[0, 0]).any(axis=2).mean() > 0.3  # not blank
    # Project the mouth patch into the image through the renderer's own camera.
    view = np.asarray(r.prog["u_view"].value).reshape(4, 4).T
    proj = np.asarray(r.prog["u_proj"].value).reshape(4, 4).T
    # The mouth patch and the ring of triangles around it (they stretch when it opens).
    touched = faces[mouth_mask(verts)[faces].any(axis=1)]
    m = np.zeros(len(verts), bool)
    m[touched.reshape(-1)] = True
    pts = np.concatenate([seq[0][m], seq[4][m]])  # closed and open
    pts = np.c_[pts, np.ones(len(pts))] @ (proj @ view).T
    xy = pts[:, :2] / pts[:, 3:]
    cols = ((xy[:, 0] + 1) / 2 * 128).astype(int)
    rows = ((1 - xy[:, 1]) / 2 * 128).astype(int)
    region = (slice(rows.min() - 2, rows.max() + 3), slice(cols.min() - 2, cols.max() + 3))
    inside = np.abs(opened[region] - closed[region]).mean()
    diff = np.abs(opened - closed).sum(axis=2)
    outside = diff.copy()
    outside[region] = 0
    assert inside > 5
    assert outside.sum() < 0.2 * diff.sum()  # the change is where the mouth is


@needs_egl
def test_orthographic_and_points() -> None:
    verts, faces = uv_sphere(500)
    with renderer_module.MeshRenderer(
        faces, len(verts), size=(96, 64), projection="orthographic"
    ) as r:
        img = r.render(verts)
        assert img.shape == (64, 96, 3) and img.std() > 5
    with renderer_module.MeshRenderer(None, len(verts), size=64) as r:
        assert (r.render(verts) != r.render(verts)[0, 0]).any()
    with pytest.raises(ValueError, match="projection"):
        renderer_module.MeshRenderer(faces, len(verts), projection="fisheye")


def test_bar_chart_blendshapes_and_params(norig_conv) -> None:
    data = np.zeros((3, 3), np.float32)
    data[1, 0] = 1.0
    panel = BarPanel(Animation(norig_conv.name, FPS, data), 128, "bars")
    still = panel.draw(0).copy()
    moved = panel.draw(1).copy()
    assert (still != moved).any() and (panel.draw(5) == still).all()  # past the end: last frame
    params = Animation(
        "flame_params_from_dadhead", 30.0, np.random.default_rng(0).standard_normal((4, 413))
    )
    p = BarPanel(params, 128, "params")
    assert (p.draw(0).copy() != p.draw(1)).any()


def test_layout_without_meshes_needs_no_gl(norig_conv, monkeypatch) -> None:
    def no_egl():
        raise renderer_module.RendererUnavailable("no EGL in this test")

    monkeypatch.setattr(renderer_module, "shared_context", no_egl)
    results = {
        norig_conv.name: Animation(norig_conv.name, FPS, np.random.rand(5, 3)),
        "flame_params_from_dadhead": Animation(
            "flame_params_from_dadhead", 30.0, np.random.rand(5, 413)
        ),
    }
    layout = build_layout(results, 64)
    frame = layout.frame(2)
    assert frame.shape == (64 + LABEL_HEIGHT, 128, 3) and frame.shape[0] % 2 == 0


def test_mesh_without_egl_is_a_clear_error(sphere_anim, monkeypatch) -> None:
    def no_egl():
        raise renderer_module.RendererUnavailable(
            f"cannot create context; {renderer_module.EGL_HINT}"
        )

    monkeypatch.setattr(renderer_module, "shared_context", no_egl)
    with pytest.raises(renderer_module.RendererUnavailable, match="libegl1 libgl1-mesa-dri"):
        build_layout({sphere_anim.convention: sphere_anim}, 64)


@needs_egl
def test_layout_mixed_heads(sphere_anim, rig_anim, norig_conv) -> None:
    results = {
        sphere_anim.convention: sphere_anim,
        rig_anim.convention: rig_anim,
        norig_conv.name: Animation(norig_conv.name, FPS, np.random.rand(20, 3)),
    }
    layout = build_layout(results, 96, heads=[rig_anim.convention, norig_conv.name])
    assert [type(p) for p in layout.panels] == [MeshPanel, BarPanel]
    img = layout.frame(0)
    assert img.shape == (96 + LABEL_HEIGHT, 192, 3)
    layout.close()
    with pytest.raises(KeyError, match="not in the results"):
        build_layout(results, 96, heads=["nope"])


@needs_egl
def test_bench_render_times_what_it_draws() -> None:
    """The bench times the frames it asks for, and they show the wobbling sphere: a
    centred disc on the background, shaded, and the last frame differs from the first."""
    res = renderer_module.bench_render(n_vertices=800, size=64, frames=60)
    assert res.frames == 60 and res.seconds > 0
    assert res.fps == pytest.approx(60 / res.seconds)
    assert res.first.shape == res.last.shape == (64, 64, 3)
    background = res.first[0, 0]
    disc = np.any(res.first != background, axis=-1)
    assert 0.3 < disc.mean() < 0.9  # the sphere fills the frame, not all of it
    ys, xs = np.nonzero(disc)
    assert abs(ys.mean() - 31.5) < 3 and abs(xs.mean() - 31.5) < 3
    assert res.first[disc].std() > 5  # shaded, not a flat silhouette
    assert np.any(res.first != res.last)

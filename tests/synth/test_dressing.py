"""Render-time dressing of the synth heads: a map of the data, never a change of it."""

from __future__ import annotations

import numpy as np
import pytest

from unitalker import conventions
from unitalker.conventions import ARKIT52_EMOTALK
from unitalker.geometry import vertices
from unitalker.synth import conventions as SC
from unitalker.synth import mesh as M
from unitalker.synth.dressing import PARTS, IdleMotion, build_dressing, dressing_for

TOPOLOGIES = ("head", "head2")


def _field(topo: str, name: str) -> np.ndarray:
    return SC.asset(topo)["rig_basis"][ARKIT52_EMOTALK.index(name)]


@pytest.mark.parametrize("topo", TOPOLOGIES)
def test_neutral_maps_to_rest_and_conventions_are_untouched(topo: str) -> None:
    d = build_dressing(topo)
    a = SC.asset(topo)
    # The dressing is built on the conventions' own vertex set: same count, order, rest.
    np.testing.assert_array_equal(d.neutral, a["neutral"])
    np.testing.assert_allclose(d.apply(a["neutral"]), d.rest, atol=1e-7)
    assert d.faces.max() < d.n_vertices and d.colors.shape == d.rest.shape
    assert {PARTS[k] for k in np.unique(d.part)} == set(PARTS)
    # every display vertex is a convex-ish blend: rows of the map sum to ~1
    sums = np.asarray(d.matrix.sum(axis=1)).ravel()
    np.testing.assert_allclose(sums, 1.0, atol=0.01)


@pytest.mark.parametrize("name", [SC.ARKIT, SC.HEAD, SC.HEAD2, SC.FLAME])
def test_every_synth_convention_is_dressed(name: str) -> None:
    d = dressing_for(name)
    assert d is not None and d.neutral.shape == (len(SC.asset(SC.TOPOLOGY_OF[name])["neutral"]), 3)
    assert dressing_for("FLAME_5023_vertices") is None


@pytest.mark.parametrize("topo", TOPOLOGIES)
def test_mouth_is_closed_skin_and_cavity_have_no_hole(topo: str) -> None:
    """Skin + cavity form a surface whose only border is the neck: no see-through mouth."""
    d = build_dressing(topo)
    f = d.faces[(d.part[d.faces] <= PARTS.index("cavity")).all(axis=1)]
    edges = np.sort(np.concatenate([f[:, [0, 1]], f[:, [1, 2]], f[:, [2, 0]]]), axis=1)
    uniq, count = np.unique(edges, axis=0, return_counts=True)
    border = np.unique(uniq[count == 1])
    # the border is the open neck, far below the mouth
    assert len(border) > 0 and d.rest[border, 1].max() < M.Y_MOUTH - 0.03


@pytest.mark.parametrize("topo", TOPOLOGIES)
def test_teeth_and_tongue_follow_the_jaw_not_the_lips(topo: str) -> None:
    d = build_dressing(topo)
    teeth = np.nonzero(d.part == PARTS.index("teeth"))[0]
    tongue = d.part == PARTS.index("tongue")
    upper, lower = teeth[: len(teeth) // 2], teeth[len(teeth) // 2 :]  # built upper arch first
    jaw = d.apply(d.neutral + _field(topo, "jawOpen")) - d.rest
    # the rigid jaw rotation at the lower teeth / tongue, as the rig defines it
    rot = M._rot_x(M.JAW_MAX_ANGLE)
    for sel in (lower, np.nonzero(tongue)[0]):
        p = d.rest[sel].astype(np.float64)
        want = (p - M.JAW_PIVOT) @ rot.T + M.JAW_PIVOT - p
        assert np.abs(jaw[sel] - want).max() < 2e-3  # within 2 mm of 15-30 mm of motion
        assert np.linalg.norm(want, axis=1).mean() > 0.01
    assert np.abs(jaw[upper]).max() < 2e-4  # the upper teeth stay with the skull
    # lip-only motions leave the teeth (nearly) still
    for name in ("mouthFunnel", "mouthPucker", "mouthSmileLeft", "mouthClose"):
        moved = d.apply(d.neutral + _field(topo, name)) - d.rest
        assert np.abs(moved[teeth]).max() < 2e-3, name


def test_flame_like_jaw_moves_the_teeth() -> None:
    d = dressing_for(SC.FLAME)
    params = np.zeros((1, 43), np.float32)
    params[0, 0] = 0.25  # jaw open about the x axis
    v = vertices(SC.FLAME, params)[0]
    moved = d.apply(v) - d.rest
    tongue = d.part == PARTS.index("tongue")
    assert moved[tongue, 1].mean() < -0.004  # the tongue drops with the jaw


def test_blink_field_and_idle_motion() -> None:
    d = build_dressing("head")
    closed = d.apply(d.neutral, blink=1.0)
    lid = np.abs(d.blink[:, 1]) > 0.005
    assert lid.sum() > 10 and (closed[lid, 1] < d.rest[lid, 1]).all()  # upper lids come down
    idle = IdleMotion()
    ts = np.arange(0, 20, 1 / 30)
    b = np.array([idle.blink(t) for t in ts])
    assert b.min() == 0.0 and b.max() == 1.0 and b[: int(0.9 * 30)].max() == 0.0
    assert 3 <= ((b[1:] > 0.5) & (b[:-1] <= 0.5)).sum() <= 10  # a blink every 2-6 s
    r = idle.rotation(3.0)
    np.testing.assert_allclose(r @ r.T, np.eye(3), atol=1e-6)
    angle = np.degrees(np.arccos(np.clip((np.trace(r) - 1) / 2, -1, 1)))
    assert 0 < angle < 3
    assert IdleMotion().blink(1.0) == idle.blink(1.0)  # deterministic


def test_pose_sequence_is_pose_of_each_frame() -> None:
    d = build_dressing("head")
    idle = IdleMotion()
    ts = np.arange(0.9, 1.3, 1 / 25)  # through the first blink
    rng = np.random.default_rng(1)
    disp = d.rest[None] + 0.002 * rng.standard_normal((len(ts), d.n_vertices, 3))
    blinks = np.array([idle.blink(t) for t in ts])
    rots = np.stack([idle.rotation(t) for t in ts])
    assert blinks.max() == 1.0 and blinks.min() < 0.1
    out = d.pose_sequence(disp, blinks, rots)
    for k in range(len(ts)):
        np.testing.assert_allclose(out[k], d.pose(disp[k], blinks[k], rots[k]), atol=1e-6)


def test_smooth_surface_is_display_only() -> None:
    m = M.build_mesh("head")
    np.testing.assert_array_equal(M.surface(m.theta, m.phi), m.vertices)
    smooth = M.surface(m.theta, m.phi, smooth_jaw=True)
    assert np.abs(smooth - m.vertices).max() > 1e-4  # differs (below the mouth) ...
    np.testing.assert_array_equal(
        conventions.get(SC.HEAD).resource("neutral").reshape(-1, 3), SC.asset("head")["neutral"]
    )


def test_a_convention_given_the_synth_rig_is_dressed() -> None:
    import dataclasses
    import uuid

    from unitalker.synth.conventions import attach_arkit_rig

    rigged = conventions.get("3DETF_blendshape_weight").with_resources(**attach_arkit_rig())
    name = f"test_dressing_{uuid.uuid4().hex[:8]}"  # unique: the registry is process-wide
    conventions.register(dataclasses.replace(rigged, name=name))
    assert dressing_for(name) is build_dressing("head")
    assert dressing_for("3DETF_blendshape_weight") is None  # no rig: drawn as bars

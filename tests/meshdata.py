"""Test meshes built on the fly, shared by tests/export and tests/render: a sphere head, a tiny ARKit rig, a rig-less blendshape set (registered under unique names)."""

from __future__ import annotations

import uuid

import numpy as np
import pytest

from unitalker import conventions
from unitalker.animation import Animation
from unitalker.render.geometry import uv_sphere

FPS = 30.0


def _unique(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:8]}"


def mouth_mask(verts: np.ndarray) -> np.ndarray:
    """A 'mouth' patch on the front of the sphere, below the middle."""
    return (verts[:, 2] > 0.6) & (np.abs(verts[:, 1] + 0.3) < 0.25)


def talking_sphere(verts: np.ndarray, n_frames: int, fps: float = FPS) -> np.ndarray:
    """``[T, V*3]``: the mouth patch pushed in and out at 2 Hz."""
    t = np.arange(n_frames) / fps
    seq = np.repeat(verts[None], n_frames, axis=0)
    seq[:, mouth_mask(verts), 2] -= 0.3 * np.abs(np.sin(2 * np.pi * 2 * t))[:, None]
    return seq.reshape(n_frames, -1).astype(np.float32)


@pytest.fixture(scope="session")
def sphere_conv(tmp_path_factory: pytest.TempPathFactory) -> conventions.Convention:
    d = tmp_path_factory.mktemp("sphere")
    verts, faces = uv_sphere(1200)
    np.save(d / "faces.npy", faces)
    np.save(d / "neutral.npy", verts)
    return conventions.register(
        conventions.Convention(
            _unique("test_sphere_vertices"),
            "vertices",
            len(verts) * 3,
            FPS,
            resources=(("faces", str(d / "faces.npy")), ("neutral", str(d / "neutral.npy"))),
        )
    )


@pytest.fixture(scope="session")
def faceless_conv() -> conventions.Convention:
    return conventions.register(
        conventions.Convention(_unique("test_points"), "vertices", 50 * 3, 25.0)
    )


RIG_NAMES = ("JawOpen", "mouthPucker", "eyeBlinkLeft", "customChannel")


@pytest.fixture(scope="session")
def rig_conv(tmp_path_factory: pytest.TempPathFactory) -> conventions.Convention:
    d = tmp_path_factory.mktemp("rig")
    verts, faces = uv_sphere(800)
    rng = np.random.default_rng(1)
    basis = np.zeros((len(RIG_NAMES), len(verts), 3), np.float32)
    basis[0, mouth_mask(verts), 1] = -0.3  # JawOpen pulls the mouth patch down
    basis[1:] = 0.05 * rng.standard_normal(basis[1:].shape)
    np.savez(d / "rig.npz", meanshape=verts, basis=basis)
    np.save(d / "faces.npy", faces)
    return conventions.register(
        conventions.Convention(
            _unique("test_rig_blendshapes"),
            "blendshapes",
            len(RIG_NAMES),
            FPS,
            channel_names=RIG_NAMES,
            resources=(
                ("faces", str(d / "faces.npy")),
                ("rig_basis", f"{d / 'rig.npz'}:basis"),
                ("rig_meanshape", f"{d / 'rig.npz'}:meanshape"),
            ),
        )
    )


@pytest.fixture(scope="session")
def norig_conv() -> conventions.Convention:
    return conventions.register(
        conventions.Convention(
            _unique("test_norig_blendshapes"),
            "blendshapes",
            3,
            FPS,
            channel_names=("jawOpen", "mouthClose", "browInnerUp"),
        )
    )


def require_rig(conv: conventions.Convention) -> None:
    """Skip the test when a blendshape convention's rig files are not present here."""
    if conv.kind == "blendshapes":
        try:
            conv.resource("rig_basis")
        except (FileNotFoundError, ValueError) as e:
            pytest.skip(f"rig resource not present here: {e}")


def random_animation(conv: conventions.Convention, n_frames: int = 12, seed: int = 0) -> Animation:
    """Plausible data for any convention: weights in [0, 1], vertices near a neutral."""
    rng = np.random.default_rng(seed)
    if conv.kind == "blendshapes":
        data = rng.uniform(0, 1, (n_frames, conv.dim))
    elif conv.kind == "vertices":
        neutral = conv.resource("neutral") if conv.has_resource("neutral") else None
        base = neutral.reshape(-1) if neutral is not None else rng.standard_normal(conv.dim)
        data = base[None] + 0.01 * rng.standard_normal((n_frames, conv.dim))
    else:
        data = rng.standard_normal((n_frames, conv.dim))
    return Animation(
        conv.name, conv.fps, data.astype(np.float32), identity="pivot", meta={"seed": seed}
    )


@pytest.fixture()
def sphere_anim(sphere_conv: conventions.Convention) -> Animation:
    verts = sphere_conv.resource("neutral")
    return Animation(sphere_conv.name, FPS, talking_sphere(verts, 20))


@pytest.fixture()
def rig_anim(rig_conv: conventions.Convention) -> Animation:
    t = np.arange(15) / FPS
    w = np.zeros((15, len(RIG_NAMES)), np.float32)
    w[:, 0] = np.abs(np.sin(2 * np.pi * 2 * t))
    w[:, 2] = 0.5
    return Animation(rig_conv.name, FPS, w)

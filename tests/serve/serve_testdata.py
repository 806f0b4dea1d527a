"""Serve-test helpers: drawable test conventions, a clip writer, a loopback uvicorn runner.

In a uniquely named module (not conftest) so test folders never clash on imports."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

VERT = "servetest_sphere_vertices"  # vertex head with faces + neutral
RIG = "servetest_rig_blendshape"  # blendshape head with a rig
BS = "3DETF_blendshape_weight"  # blendshape head without a mesh
HEADS = [VERT, RIG, BS]


def uv_sphere(rings: int = 8, segments: int = 12) -> tuple[np.ndarray, np.ndarray]:
    """A small closed mesh: ``([V, 3] vertices, [F, 3] faces)``."""
    verts = [[0.0, 1.0, 0.0]]
    for i in range(1, rings):
        th = np.pi * i / rings
        for j in range(segments):
            ph = 2 * np.pi * j / segments
            verts.append([np.sin(th) * np.cos(ph), np.cos(th), np.sin(th) * np.sin(ph)])
    verts.append([0.0, -1.0, 0.0])
    faces = []
    ring = lambda i, j: 1 + (i - 1) * segments + (j % segments)  # noqa: E731
    for j in range(segments):
        faces.append([0, ring(1, j + 1), ring(1, j)])
    for i in range(1, rings - 1):
        for j in range(segments):
            a, b, c, d = ring(i, j), ring(i, j + 1), ring(i + 1, j), ring(i + 1, j + 1)
            faces += [[a, b, d], [a, d, c]]
    last = len(verts) - 1
    for j in range(segments):
        faces.append([last, ring(rings - 1, j), ring(rings - 1, j + 1)])
    return np.asarray(verts, np.float32), np.asarray(faces, np.int64)


def register_test_conventions(root: Path) -> None:
    from unitalker import conventions

    verts, faces = uv_sphere()
    rng = np.random.default_rng(0)
    basis = rng.normal(0, 0.1, (4, len(verts), 3)).astype(np.float32)
    np.savez(root / "mesh.npz", verts=verts, faces=faces, basis=basis)
    m = root / "mesh.npz"
    conventions.register(
        conventions.Convention(
            VERT,
            "vertices",
            verts.size,
            30.0,
            resources=(("faces", f"{m}:faces"), ("neutral", f"{m}:verts")),
            description="serve tests: a small sphere",
        ),
        overwrite=True,
    )
    conventions.register(
        conventions.Convention(
            RIG,
            "blendshapes",
            4,
            25.0,
            channel_names=("a", "b", "c", "d"),
            resources=(
                ("faces", f"{m}:faces"),
                ("rig_basis", f"{m}:basis"),
                ("rig_meanshape", f"{m}:verts"),
            ),
            description="serve tests: 4-channel rig",
        ),
        overwrite=True,
    )


def write_clip(path: Path, seconds: float, sr: int = 16000, seed: int = 0) -> np.ndarray:
    """A speech-like clip (chirps + noise bursts), written as 16-bit wav; returns samples."""
    from unitalker.audio import write_wav

    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    env = 0.5 + 0.5 * np.sin(2 * np.pi * 3 * t)
    wav = 0.3 * env * np.sin(2 * np.pi * (150 + 100 * np.sin(2 * np.pi * 0.7 * t)) * t)
    wav += 0.02 * rng.standard_normal(t.size)
    write_wav(path, wav.astype(np.float32), sr)
    return wav.astype(np.float32)


@dataclass
class Running:
    url: str
    ws_url: str
    app: object


@contextlib.contextmanager
def run_server(app) -> Iterator[Running]:
    """Serve ``app`` with uvicorn in a thread on a free 127.0.0.1 port."""
    from unitalker.serve.loadtest import background_server

    with background_server(app) as url:
        yield Running(url, "ws" + url[len("http") :], app)

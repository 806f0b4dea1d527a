"""The vectorised OBJ formatting is byte-identical to the per-vertex f-string writer."""

from __future__ import annotations

import numpy as np
import pytest

from unitalker.animation import Animation
from unitalker.export import write_outputs
from unitalker.export.mesh_sequence import frame_names, obj_face_block, obj_vertex_block


def _reference_obj(verts: np.ndarray, faces: np.ndarray, convention: str) -> bytes:
    """The writer as it was (one f-string per vertex), kept here as the reference."""
    face_text = "\n".join(f"f {a} {b} {c}" for a, b, c in (np.asarray(faces) + 1).tolist())
    vtext = "\n".join(f"v {x:.6f} {y:.6f} {z:.6f}" for x, y, z in verts.tolist())
    return (f"# unitalker {convention}\n" + vtext + "\n" + face_text + "\n").encode("ascii")


def _cases() -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    edge = [[-0.0, 0.0, 1e-9], [-1e-9, -4e-7, 5e-7], [5e-7, -5e-7, 2.5e-6], [-2.5e-6, 1.5e-6, 0.5]]
    edge += [[999.9999, -999.99994, 99.5], [-9.9999995, -99.9999995, 10.0], [1e-3, -1e-3, 7.0]]
    return [
        (rng.standard_normal((2000, 3)) * 0.1).astype(np.float32),  # metres
        (rng.standard_normal((500, 3)) * 300).astype(np.float32),  # millimetres
        (rng.integers(-(10**7), 10**7, (3000, 3)) / 2e7).astype(np.float32),  # ties at 1e-6
        (rng.integers(-(10**9), 10**9, (500, 3)) / 1e6).astype(np.float32),  # >= 1000: fallback
        np.asarray(edge, np.float32),
        np.array([[np.nan, np.inf, -np.inf]], np.float32),  # fallback
        rng.standard_normal((40, 3)),  # float64: fallback
    ]


@pytest.mark.parametrize("case", range(len(_cases())))
def test_vertex_block_equals_fstrings(case: int) -> None:
    v = _cases()[case]
    want = "".join(f"v {x:.6f} {y:.6f} {z:.6f}\n" for x, y, z in v.tolist()).encode()
    assert obj_vertex_block(v) == want


def test_face_block_and_whole_files_equal_the_old_writer(
    sphere_conv, sphere_anim, tmp_path
) -> None:
    faces = sphere_conv.resource("faces")
    want = "".join(f"f {a} {b} {c}\n" for a, b, c in (np.asarray(faces) + 1).tolist()).encode()
    assert obj_face_block(faces) == want
    write_outputs({sphere_anim.convention: sphere_anim}, tmp_path, "s", "obj")
    folder = tmp_path / f"s_{sphere_anim.convention}_obj"
    verts = sphere_anim.vertices()
    names = frame_names(sphere_anim.convention, len(verts), "obj")
    for v, name in zip(verts, names, strict=True):
        data = (folder / name).read_bytes()
        assert data == _reference_obj(v, faces, sphere_anim.convention)
        # and it parses back to the vertices at 1e-6
        rows = [ln.split()[1:] for ln in data.decode().splitlines() if ln.startswith("v ")]
        np.testing.assert_allclose(np.asarray(rows, float), v, atol=5.1e-7)


def test_large_coordinates_fall_back_and_still_match(sphere_conv, tmp_path) -> None:
    verts = sphere_conv.resource("neutral").reshape(-1, 3) * 2000.0  # millimetre-ish, >= 1000
    anim = Animation(sphere_conv.name, 25.0, np.stack([verts, verts * 0.5]).reshape(2, -1))
    write_outputs({anim.convention: anim}, tmp_path, "big", "obj")
    folder = tmp_path / f"big_{anim.convention}_obj"
    for v, name in zip(anim.vertices(), frame_names(anim.convention, 2, "obj"), strict=True):
        want = _reference_obj(v, sphere_conv.resource("faces"), anim.convention)
        assert (folder / name).read_bytes() == want

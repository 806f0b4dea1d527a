"""``obj`` / ``ply``: one mesh file per frame, in a ``<stem>_<convention>_<ext>/`` folder.

For vertex heads and blendshape heads with a rig. Frames are named
``<convention>_<frame>.<ext>`` with the frame number zero-padded (at least 5 digits), so
tools that import numbered sequences (Blender's stop-motion OBJ, Houdini, MeshLab)
order them. Triangles come from the convention's ``faces`` resource; without it ``ply``
writes a point cloud and ``obj`` is refused.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from unitalker.animation import Animation
from unitalker.export.base import ExportError, Writer, register_writer


def frame_names(convention: str, n_frames: int, ext: str) -> list[str]:
    """File names of a sequence's frames (zero-padded, at least 5 digits)."""
    width = max(5, len(str(max(n_frames - 1, 0))))
    return [f"{convention}_{i:0{width}d}.{ext}" for i in range(n_frames)]


_PAD = 0  # padding byte of the fixed-width table, dropped at the end (never in the output)


def _words(strings: list[str]) -> np.ndarray:
    """4-character strings (``\0`` = padding) as native uint32 words."""
    raw = np.frombuffer("".join(strings).encode("latin-1"), np.uint8)
    return raw.view(np.uint32).copy()


# Lookup tables of 4-byte words, indexed by 0..999: the integer part with its sign right-
# aligned ("\0\0\0" "7", "\0\0-7"), "." and three decimals, three decimals and a separator.
_POS = _words([str(i).rjust(4, "\0") for i in range(1000)])
_NEG = _words([f"-{i}".rjust(4, "\0") for i in range(1000)])
_DOT = _words([f".{i:03d}" for i in range(1000)])
_SPACE = _words([f"{i:03d} " for i in range(1000)])
_NEWLINE = _words([f"{i:03d}\n" for i in range(1000)])
_PREFIX = _words(["\0\0v "])[0]


def obj_vertex_block(vertices: np.ndarray) -> bytes:
    """``v x y z`` lines (6 decimals) of ``[V, 3]`` vertices, as ASCII bytes.

    Byte-identical to ``f"v {x:.6f} {y:.6f} {z:.6f}"`` per line, but formatted in numpy
    (about 10x faster): for float32 input ``x * 1e6`` is exact in float64 (24 + 20 bits),
    so rounding it half-to-even gives the digits Python prints; the characters come from
    lookup tables of 4-byte words into a fixed-width table whose padding is then dropped.
    Other dtypes, non-finite values or ``|x| >= 1000`` take the (slower) ``%`` path.
    """
    v = np.asarray(vertices).reshape(-1, 3)
    if not len(v):
        return b""
    if v.dtype != np.float32 or not np.isfinite(v).all() or (np.abs(v) >= 999.9999995).any():
        flat = v.astype(np.float64).ravel().tolist()
        return (("v %.6f %.6f %.6f\n" * len(v)) % tuple(flat)).encode("ascii")
    x = v.astype(np.float64)
    q = np.rint(np.abs(x) * 1e6).astype(np.int64)  # exact: see the docstring
    ip, fp = np.divmod(q, 1_000_000)  # ip < 1000
    words = np.empty((len(v), 10), np.uint32)  # prefix + 3 x (integer, .ddd, ddd<sep>)
    words[:, 0] = _PREFIX
    words[:, 1::3] = np.where(np.signbit(x), _NEG[ip], _POS[ip])
    words[:, 2::3] = _DOT[fp // 1000]
    low = fp % 1000
    words[:, 3:9:3] = _SPACE[low[:, :2]]
    words[:, 9] = _NEWLINE[low[:, 2]]
    out = words.view(np.uint8).ravel()
    return out[out != _PAD].tobytes()


def obj_face_block(faces: np.ndarray) -> bytes:
    """``f a b c`` lines (1-based) of ``[F, 3]`` triangles, as ASCII bytes."""
    idx = (np.asarray(faces, dtype=np.int64).reshape(-1, 3) + 1).ravel().tolist()
    if not idx:
        return b"\n"  # as the writer always did: an empty line where the faces would be
    return (("f %d %d %d\n" * (len(idx) // 3)) % tuple(idx)).encode("ascii")


# Kept over trimesh / meshio: on a 5023-vertex head this writer is 16x (OBJ) and 3.5x (PLY)
# faster than trimesh and 38x / 8x faster than meshio, and its files stay byte-identical.
class _SequenceWriter(Writer):
    layout = "sequence"

    def fits(self, animation: Animation) -> bool:
        return animation.conv.has_mesh

    def why_not(self, animation: Animation) -> str:
        return f"{self.name} needs a mesh; {animation.convention!r} is {animation.conv.kind} without a rig"

    def write_head(self, animation: Animation, path: Path) -> None:
        verts = animation.vertices()
        if verts is None:
            raise ExportError(self.why_not(animation))
        faces = animation.faces()
        names = frame_names(animation.convention, len(verts), self.extension)
        self._write_frames(verts, faces, [path / n for n in names], animation.convention)

    def _write_frames(
        self, verts: np.ndarray, faces: np.ndarray | None, paths: list[Path], convention: str
    ) -> None:
        raise NotImplementedError


@register_writer
class ObjSequenceWriter(_SequenceWriter):
    name = "obj"
    extension = "obj"
    description = "one Wavefront OBJ per frame (needs the convention's faces)"

    def fits(self, animation: Animation) -> bool:
        return super().fits(animation) and animation.conv.has_resource("faces")

    def why_not(self, animation: Animation) -> str:
        if animation.conv.has_mesh:
            return (
                f"obj needs triangles and convention {animation.convention!r} has no 'faces' "
                "resource (ply writes a point cloud instead)"
            )
        return super().why_not(animation)

    def _write_frames(self, verts, faces, paths, convention) -> None:  # noqa: ANN001
        if faces is None:
            raise ExportError(f"obj needs the 'faces' resource of {convention!r}")
        # The face block is the same in every frame: format it once.
        face_block = obj_face_block(faces)
        header = f"# unitalker {convention}\n".encode("ascii")
        for v, p in zip(verts, paths, strict=True):
            p.write_bytes(header + obj_vertex_block(v) + face_block)


@register_writer
class PlySequenceWriter(_SequenceWriter):
    name = "ply"
    extension = "ply"
    description = "one binary PLY per frame (points only when the convention has no faces)"

    def _write_frames(self, verts, faces, paths, convention) -> None:  # noqa: ANN001
        v_count = verts.shape[1]
        lines = [
            "ply",
            "format binary_little_endian 1.0",
            f"comment unitalker {convention}",
            f"element vertex {v_count}",
            "property float x",
            "property float y",
            "property float z",
        ]
        face_block = b""
        if faces is not None:
            faces = np.asarray(faces)
            lines += [f"element face {len(faces)}", "property list uchar int vertex_indices"]
            rec = np.empty(len(faces), dtype=[("n", "u1"), ("idx", "<i4", (3,))])
            rec["n"] = 3
            rec["idx"] = faces
            face_block = rec.tobytes()
        header = ("\n".join([*lines, "end_header"]) + "\n").encode("ascii")
        for v, p in zip(verts, paths, strict=True):
            with open(p, "wb") as f:
                f.write(header)
                f.write(np.ascontiguousarray(v, dtype="<f4").tobytes())
                f.write(face_block)

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
        face_text = "\n".join(f"f {a} {b} {c}" for a, b, c in (np.asarray(faces) + 1).tolist())
        header = f"# unitalker {convention}\n"
        for v, p in zip(verts, paths, strict=True):
            vtext = "\n".join(f"v {x:.6f} {y:.6f} {z:.6f}" for x, y, z in v.tolist())
            p.write_text(header + vtext + "\n" + face_text + "\n", encoding="ascii")


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

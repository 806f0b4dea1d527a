"""``glb``: a glTF 2.0 binary with the head's mesh and a morph-target weight animation.

Opens in Blender, three.js, Babylon and most DCC tools.

- Blendshape heads with a rig: the rig's mean shape is the mesh; each channel's offsets
  are one morph target (named after the channel, ``mesh.extras.targetNames``); the
  weights are animated as stored.
- Vertex heads: the motion offsets from a base mesh are compressed with a truncated
  SVD (components up to ``ENERGY`` of the offset energy, at most ``MAX_TARGETS``); each
  component is one morph target. Weights are rescaled to [0, 1] per component (and the
  base shifted to match), because Blender clamps shape-key values to their slider range,
  which is [0, 1] by default; playback reproduces the SVD reconstruction exactly.
  Clips of at most ``MAX_TARGETS`` frames therefore round-trip losslessly (up to float32).

The animation has one sampler per head: input = frame times in seconds (``t = i / fps``),
output = ``T * K`` weights, ``LINEAR`` interpolation, targeting the node's ``weights``.
Vertex heads without ``faces`` become a ``POINTS`` primitive.
"""

from __future__ import annotations

import json
import logging
import struct
from pathlib import Path

import numpy as np

from unitalker.animation import Animation
from unitalker.export.base import Writer, register_writer

log = logging.getLogger(__name__)

ENERGY = 0.999
MAX_TARGETS = 64

_FLOAT, _USHORT, _UINT = 5126, 5123, 5125
_ARRAY_BUFFER, _ELEMENT_ARRAY_BUFFER = 34962, 34963
_MODE_POINTS, _MODE_TRIANGLES = 0, 4
_GLB_MAGIC, _CHUNK_JSON, _CHUNK_BIN = 0x46546C67, 0x4E4F534A, 0x004E4942


class _Builder:
    """Accumulates bufferViews and accessors in one binary buffer (4-byte aligned)."""

    def __init__(self) -> None:
        self.bin = bytearray()
        self.views: list[dict] = []
        self.accessors: list[dict] = []

    def accessor(
        self, array: np.ndarray, gltf_type: str, *, target: int | None = None, minmax: bool = False
    ) -> int:
        array = np.ascontiguousarray(array)
        comp = {
            np.dtype(np.float32): _FLOAT,
            np.dtype(np.uint16): _USHORT,
            np.dtype(np.uint32): _UINT,
        }[array.dtype]
        width = {"SCALAR": 1, "VEC3": 3}[gltf_type]
        # Every accessor here has 4-byte components (or 2-byte indices): aligning each
        # bufferView to 4 bytes satisfies the spec's alignment rule for all of them.
        self.bin.extend(b"\0" * (-len(self.bin) % 4))
        view = {"buffer": 0, "byteOffset": len(self.bin), "byteLength": array.nbytes}
        if target is not None:
            view["target"] = target
        self.views.append(view)
        self.bin.extend(array.tobytes())
        acc = {
            "bufferView": len(self.views) - 1,
            "componentType": comp,
            "count": int(array.size // width),
            "type": gltf_type,
        }
        if minmax:
            flat = array.reshape(-1, width)
            acc["min"] = [float(x) for x in flat.min(axis=0)]
            acc["max"] = [float(x) for x in flat.max(axis=0)]
        self.accessors.append(acc)
        return len(self.accessors) - 1


def morph_basis(
    frames: np.ndarray, base: np.ndarray, *, energy: float = ENERGY, max_targets: int = MAX_TARGETS
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Compress a vertex sequence into a shifted base, morph targets and [0, 1] weights.

    Args:
        frames: ``[T, V, 3]`` vertices.
        base: ``[V, 3]`` reference mesh.
        energy: fraction of the offset energy to keep.
        max_targets: upper bound on the number of targets ``K``.

    Returns:
        ``base' [V, 3]``, ``targets [K, V, 3]``, ``weights [T, K]`` in [0, 1] with
        ``frames ~= base' + weights @ targets``.
    """
    t, v, _ = frames.shape
    offsets = (frames - base[None]).reshape(t, v * 3).astype(np.float64)
    total = float((offsets**2).sum())
    if total <= 0:
        return (
            base.astype(np.float32),
            np.zeros((0, v, 3), np.float32),
            np.zeros((t, 0), np.float32),
        )
    if t <= 4 * max_targets:
        u, s, vt = np.linalg.svd(offsets, full_matrices=False)
    else:
        u, s, vt = _randomized_svd(offsets, max_targets + 16)
    cum = np.cumsum(s**2) / total
    k = int(min(max_targets, np.searchsorted(cum, energy - 1e-12) + 1, len(s)))
    k = max(k, 1)
    coeff = u[:, :k] * s[:k]  # [T, K]
    lo, hi = coeff.min(axis=0), coeff.max(axis=0)
    span = np.where(hi - lo > 0, hi - lo, 1.0)
    weights = (coeff - lo) / span  # [T, K] in [0, 1]
    targets = vt[:k] * span[:, None]  # [K, V*3]
    new_base = base.reshape(-1).astype(np.float64) + lo @ vt[:k]
    kept = float(cum[k - 1]) if k <= len(cum) else 1.0
    log.debug("glb: %d morph targets keep %.5f of the motion energy", k, kept)
    return (
        new_base.reshape(v, 3).astype(np.float32),
        targets.reshape(k, v, 3).astype(np.float32),
        weights.astype(np.float32),
    )


def _randomized_svd(
    a: np.ndarray, rank: int, n_iter: int = 3
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    # Halko et al.: a range finder with power iterations; exact enough for 99.9 % energy
    # on smooth motion and O(T * D * rank) instead of O(T^2 * D) for long clips.
    rng = np.random.default_rng(0)
    q = a @ rng.standard_normal((a.shape[1], rank))
    for _ in range(n_iter):
        q, _ = np.linalg.qr(q)
        q = a @ (a.T @ q)
    q, _ = np.linalg.qr(q)
    ub, s, vt = np.linalg.svd(q.T @ a, full_matrices=False)
    return q @ ub, s, vt


def build_glb(animation: Animation) -> bytes:
    """The ``.glb`` bytes for one head (see the module docstring)."""
    from unitalker.render.geometry import vertex_normals

    conv = animation.conv
    faces = animation.faces()
    if conv.kind == "blendshapes":
        base = np.asarray(conv.resource("rig_meanshape"), dtype=np.float32)
        targets = np.asarray(conv.resource("rig_basis"), dtype=np.float32)
        weights = animation.data
        names = list(conv.channel_names or [f"channel_{i:02d}" for i in range(conv.dim)])
        extras = {"targetNames": names, "source": "blendshape rig"}
    else:
        frames = animation.vertices()
        assert frames is not None
        neutral = conv.resource("neutral") if conv.has_resource("neutral") else None
        if neutral is None or np.asarray(neutral).shape != frames.shape[1:]:
            neutral = frames.mean(axis=0)
        base, targets, weights = morph_basis(frames, np.asarray(neutral, dtype=np.float32))
        names = [f"motion_pc{i:02d}" for i in range(len(targets))]
        recon = base[None] + np.einsum("tk,kvc->tvc", weights, targets)
        err = float(np.abs(recon - frames).max()) if len(frames) else 0.0
        extras = {"targetNames": names, "source": "svd of vertex motion", "max_abs_error": err}
    v = base.shape[0]
    if targets.shape[1:] != (v, 3):
        raise ValueError(
            f"{conv.name}: rig basis {targets.shape} does not match mean shape {base.shape}"
        )

    b = _Builder()
    attributes = {"POSITION": b.accessor(base, "VEC3", target=_ARRAY_BUFFER, minmax=True)}
    primitive: dict = {"attributes": attributes, "mode": _MODE_POINTS, "material": 0}
    if faces is not None:
        faces = np.asarray(faces)
        attributes["NORMAL"] = b.accessor(vertex_normals(base, faces), "VEC3", target=_ARRAY_BUFFER)
        idx_type = np.uint16 if v < 65535 else np.uint32
        primitive["indices"] = b.accessor(
            faces.astype(idx_type).reshape(-1), "SCALAR", target=_ELEMENT_ARRAY_BUFFER
        )
        primitive["mode"] = _MODE_TRIANGLES
    if len(targets):
        primitive["targets"] = [
            {"POSITION": b.accessor(t, "VEC3", target=_ARRAY_BUFFER, minmax=True)} for t in targets
        ]
    mesh = {"name": conv.name, "primitives": [primitive], "extras": extras}
    gltf: dict = {
        "asset": {"version": "2.0", "generator": "unitalker"},
        "scene": 0,
        "scenes": [{"nodes": [0]}],
        "nodes": [{"mesh": 0, "name": conv.name}],
        "meshes": [mesh],
        "materials": [
            {
                "name": "skin",
                "pbrMetallicRoughness": {
                    "baseColorFactor": [0.80, 0.62, 0.52, 1.0],
                    "metallicFactor": 0.0,
                    "roughnessFactor": 0.6,
                },
                "doubleSided": True,
            }
        ],
    }
    if len(targets):
        mesh["weights"] = [0.0] * len(targets)
        n = animation.n_frames
        times = (np.arange(n, dtype=np.float64) / animation.fps).astype(np.float32)
        if n == 1:  # a sampler needs a time range; hold the single pose for one frame
            times = np.asarray([0.0, 1.0 / animation.fps], dtype=np.float32)
            weights = np.repeat(weights, 2, axis=0)
        t_acc = b.accessor(times, "SCALAR", minmax=True)
        w_acc = b.accessor(np.ascontiguousarray(weights, dtype=np.float32).reshape(-1), "SCALAR")
        gltf["animations"] = [
            {
                "name": f"{conv.name}_speech",
                "samplers": [{"input": t_acc, "output": w_acc, "interpolation": "LINEAR"}],
                "channels": [{"sampler": 0, "target": {"node": 0, "path": "weights"}}],
            }
        ]
    gltf["extras"] = {
        "convention": conv.name,
        "fps": float(animation.fps),
        "identity": animation.identity,
        "frames": animation.n_frames,
    }
    b.bin.extend(b"\0" * (-len(b.bin) % 4))
    gltf["bufferViews"] = b.views
    gltf["accessors"] = b.accessors
    gltf["buffers"] = [{"byteLength": len(b.bin)}]
    return _pack_glb(gltf, bytes(b.bin))


def _pack_glb(gltf: dict, binary: bytes) -> bytes:
    js = json.dumps(gltf, separators=(",", ":"), default=str).encode("utf-8")
    js += b" " * (-len(js) % 4)  # the JSON chunk is padded with spaces, BIN with zeros
    total = 12 + 8 + len(js) + 8 + len(binary)
    return b"".join(
        [
            struct.pack("<III", _GLB_MAGIC, 2, total),
            struct.pack("<II", len(js), _CHUNK_JSON),
            js,
            struct.pack("<II", len(binary), _CHUNK_BIN),
            binary,
        ]
    )


@register_writer
class GlbWriter(Writer):
    name = "glb"
    extension = "glb"
    description = "glTF binary: mesh + morph-target animation (Blender, three.js)"

    def fits(self, animation: Animation) -> bool:
        return animation.conv.has_mesh

    def why_not(self, animation: Animation) -> str:
        return f"glb needs a mesh; {animation.convention!r} is {animation.conv.kind} without a rig"

    def write_head(self, animation: Animation, path: Path) -> None:
        path.write_bytes(build_glb(animation))

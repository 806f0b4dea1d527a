"""``glb``: a glTF 2.0 binary with the head's mesh and a morph-target weight animation.

Opens in Blender, three.js, Babylon and most DCC tools.

- Blendshape heads with a rig: the rig's mean shape is the mesh; each channel's offsets
  are one morph target (named after the channel, ``mesh.extras.targetNames``); the
  weights are animated as stored.
- Vertex heads: the motion (each frame's offset from the clip's mean pose; the mean
  pose's offset from the neutral mesh goes into the base exactly) is compressed with a
  truncated SVD, one morph target per component. The number of components is the
  smallest whose playback error is at most ``MAX_ERROR`` (1 %) of the motion range (the
  largest per-coordinate range over the clip), checked on the actual reconstruction;
  ``lossless=True`` keeps every component, so playback equals the frames to float32
  precision. The mesh's ``extras`` state the mode, the error (max and RMS, absolute and
  relative to the motion range) and the number of targets. Weights are rescaled to
  [0, 1] per component (and the base shifted to match), because Blender clamps shape-key
  values to their slider range, which is [0, 1] by default.

The animation has one sampler per head: input = frame times in seconds (``t = i / fps``),
output = ``T * K`` weights, ``LINEAR`` interpolation, targeting the node's ``weights``.
Vertex heads without ``faces`` become a ``POINTS`` primitive.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from unitalker.animation import Animation
from unitalker.export.base import Writer, register_writer

log = logging.getLogger(__name__)

MAX_ERROR = 0.01
"""Default bound on the playback error, as a fraction of the motion range."""

# glTF enums (pygltflib's FLOAT, UNSIGNED_SHORT, ...; spelt here so importing stays light)
_FLOAT, _USHORT, _UINT = 5126, 5123, 5125
_ARRAY_BUFFER, _ELEMENT_ARRAY_BUFFER = 34962, 34963
_MODE_POINTS, _MODE_TRIANGLES = 0, 4


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


@dataclass(frozen=True)
class MorphFit:
    """Vertex frames as ``base + weights @ targets``, and how well that reproduces them."""

    base: np.ndarray  # [V, 3]
    targets: np.ndarray  # [K, V, 3]
    weights: np.ndarray  # [T, K] in [0, 1]
    max_error: float  # max abs coordinate error of the playback
    rms_error: float
    motion_range: float  # largest per-coordinate range (max - min over frames)
    lossless: bool

    @property
    def relative_error(self) -> float:
        return self.max_error / self.motion_range if self.motion_range > 0 else 0.0

    def extras(self) -> dict:
        return {
            "mode": "lossless" if self.lossless else "bounded",
            "morph_targets": int(len(self.targets)),
            "max_abs_error": self.max_error,
            "rms_error": self.rms_error,
            "motion_range": self.motion_range,
            "max_error_fraction_of_motion_range": self.relative_error,
        }


def morph_basis(
    frames: np.ndarray,
    base: np.ndarray,
    *,
    max_error: float = MAX_ERROR,
    lossless: bool = False,
    max_targets: int | None = None,
) -> MorphFit:
    """Compress a vertex sequence into a shifted base, morph targets and [0, 1] weights.

    Args:
        frames: ``[T, V, 3]`` vertices.
        base: ``[V, 3]`` reference (neutral) mesh; the clip's mean offset from it is kept
            exactly in the returned base.
        max_error: bound on the playback's max abs error as a fraction of the motion range
            (ignored with ``lossless``).
        lossless: keep every SVD component (error at float32 precision).
        max_targets: hard cap on ``K`` (None: as many as the error bound needs); a cap that
            stops short of the bound is logged, and the error is stated in the result.

    Returns:
        A :class:`MorphFit` with ``frames ~= base + weights @ targets``.
    """
    t, v, _ = frames.shape
    f64 = frames.reshape(t, v * 3).astype(np.float64)
    mean = f64.mean(axis=0)
    motion = f64 - mean  # the motion: what the targets must carry
    span_all = f64.max(axis=0) - f64.min(axis=0)
    motion_range = float(span_all.max()) if t else 0.0
    if motion_range <= 0:
        return _fit(frames, mean, np.zeros((t, 0)), np.zeros((0, v * 3)), motion_range, lossless)
    tol = max_error * motion_range
    limit = min(t, v * 3) if max_targets is None else min(max_targets, t, v * 3)
    k, capped = None, False
    if not lossless and t > 256:  # long clips: a randomised SVD of growing rank
        rank = min(limit, 32)
        while rank <= min(t, v * 3) // 2:
            u, s, vt = _randomized_svd(motion, min(rank + 16, min(t, v * 3)))
            coeff, vt, k = _pick(motion, u * s, vt, tol, rank, False, s)
            capped = rank >= limit
            if k is not None or capped:
                break
            rank = min(limit, rank * 2)
    if k is None and not capped:  # exact SVD (through the Gram matrix, bounded error)
        svd = _svd if lossless else _gram_svd
        u, s, vt = svd(motion)
        coeff, vt, k = _pick(motion, u * s, vt, tol, limit, lossless, s)
    if k is None:
        k = min(limit, coeff.shape[1])
        log.warning("glb: %d morph targets (the cap) miss the %.2g error bound", k, max_error)
    fit = _fit(frames, mean, coeff[:, :k], vt[:k], motion_range, lossless)
    log.debug("glb: %d morph targets, max error %.3g of the motion range", k, fit.relative_error)
    return fit


def _pick(
    motion: np.ndarray,
    coeff: np.ndarray,
    vt: np.ndarray,
    tol: float,
    limit: int,
    lossless: bool,
    s: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, int | None]:
    """The smallest ``k <= limit`` whose reconstruction is within ``tol`` (None if none)."""
    if lossless:  # every component above float64 noise
        k = int((s > s[0] * 1e-12).sum()) if len(s) else 0
        return coeff, vt, k
    residual = motion.copy()
    for k in range(1, min(limit, len(s)) + 1):
        residual -= np.outer(coeff[:, k - 1], vt[k - 1])
        if np.abs(residual).max() <= tol:
            return coeff, vt, k
    return coeff, vt, None


def _fit(
    frames: np.ndarray,
    mean: np.ndarray,
    coeff: np.ndarray,
    vt: np.ndarray,
    motion_range: float,
    lossless: bool,
) -> MorphFit:
    t, v, _ = frames.shape
    k = coeff.shape[1]
    lo, hi = (coeff.min(axis=0), coeff.max(axis=0)) if t else (np.zeros(k), np.zeros(k))
    span = np.where(hi - lo > 0, hi - lo, 1.0)
    weights = ((coeff - lo) / span).astype(np.float32)  # [T, K] in [0, 1]
    targets = (vt * span[:, None]).reshape(k, v, 3).astype(np.float32)
    base = (mean + lo @ vt).reshape(v, 3).astype(np.float32)
    recon = base[None] + np.einsum("tk,kvc->tvc", weights, targets)  # what a player shows
    err = np.abs(recon - frames) if t else np.zeros(1)
    rms = float(np.sqrt((err.astype(np.float64) ** 2).mean()))
    return MorphFit(base, targets, weights, float(err.max()), rms, motion_range, lossless)


def _svd(a: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return np.linalg.svd(a, full_matrices=False)


def _gram_svd(a: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Thin SVD of ``a [T, D]`` from the eigenvectors of its ``[T, T]`` Gram matrix.

    A clip is far wider than long (130 frames x 19k coordinates for 5 s of a 6k-vertex
    head), and LAPACK's thin SVD of such a matrix took 2.9 s where this takes 0.1-0.6 s.
    Components below ``1e-7`` of the largest singular value lose their precision in the
    Gram matrix and are dropped; they are far below the bounded-error mode's tolerance
    (a percent of the motion range), which :func:`_pick` checks on the reconstruction
    anyway. Lossless mode keeps LAPACK's SVD.
    """
    if a.shape[0] > a.shape[1]:
        return _svd(a)
    w, u = np.linalg.eigh(a @ a.T)
    w, u = w[::-1], u[:, ::-1]  # descending
    s = np.sqrt(np.clip(w, 0.0, None))
    keep = s > (s[0] * 1e-7 if len(s) else 0.0)
    u, s = u[:, keep], s[keep]
    vt = (u.T @ a) / s[:, None]
    return u, s, vt


def _randomized_svd(
    a: np.ndarray, rank: int, n_iter: int = 3
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``torch.svd_lowrank`` (Halko et al.) of ``a [T, D]``, seeded so a clip always gives the
    same file: O(T * D * rank) instead of O(T^2 * D) for long clips."""
    import torch

    with torch.random.fork_rng(devices=[]):  # the caller's global RNG stays untouched
        torch.manual_seed(0)
        u, s, v = torch.svd_lowrank(torch.from_numpy(a), q=rank, niter=n_iter)
    return u.numpy(), s.numpy(), v.T.numpy()


def build_glb(
    animation: Animation, *, max_error: float = MAX_ERROR, lossless: bool = False
) -> bytes:
    """The ``.glb`` bytes for one head (see the module docstring).

    Args:
        animation: the head.
        max_error: vertex heads: bound on the playback error, a fraction of the motion range.
        lossless: vertex heads: keep every component (playback equals the frames).
    """
    from unitalker.render.geometry import vertex_normals

    conv = animation.conv
    faces = animation.faces()
    if conv.kind == "blendshapes":
        from unitalker import geometry

        rig = geometry.rig_for(conv)  # the morph targets are the rig itself
        base, targets = rig.neutral(), rig.offsets()
        weights = animation.data
        names = list(conv.channel_names or [f"channel_{i:02d}" for i in range(conv.dim)])
        extras = {"targetNames": names, "source": "blendshape rig"}
    else:
        frames = animation.vertices()
        assert frames is not None
        neutral = conv.resource("neutral") if conv.has_resource("neutral") else None
        if neutral is None or np.asarray(neutral).shape != frames.shape[1:]:
            neutral = frames.mean(axis=0)
        fit = morph_basis(
            frames, np.asarray(neutral, dtype=np.float32), max_error=max_error, lossless=lossless
        )
        base, targets, weights = fit.base, fit.targets, fit.weights
        names = [f"motion_pc{i:02d}" for i in range(len(targets))]
        extras = {"targetNames": names, "source": "svd of vertex motion", **fit.extras()}
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
    """The GLB container (header, JSON chunk, BIN chunk, 4-byte padding), by pygltflib."""
    import pygltflib

    doc = pygltflib.GLTF2.from_dict(gltf)
    doc.set_binary_blob(binary)
    return b"".join(doc.save_to_bytes())


@register_writer
class GlbWriter(Writer):
    name = "glb"
    extension = "glb"
    description = "glTF binary: mesh + morph-target animation (Blender, three.js)"

    def __init__(self, max_error: float = MAX_ERROR, lossless: bool = False) -> None:
        """Options for vertex heads: ``max_error`` (fraction of the motion range) or
        ``lossless`` (every component)."""
        if not 0 < max_error < 1:
            raise ValueError(f"glb max_error must be in (0, 1), got {max_error}")
        self.max_error, self.lossless = float(max_error), bool(lossless)

    def fits(self, animation: Animation) -> bool:
        return animation.conv.has_mesh

    def why_not(self, animation: Animation) -> str:
        return f"glb needs a mesh; {animation.convention!r} is {animation.conv.kind} without a rig"

    def write_head(self, animation: Animation, path: Path) -> None:
        path.write_bytes(build_glb(animation, max_error=self.max_error, lossless=self.lossless))

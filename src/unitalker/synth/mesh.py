"""The procedural head: a parametric surface with a real mouth slit, two tessellations,
per-identity shape variation and an ARKit-52 blendshape rig defined on the surface.

The head is an ellipsoid (metres, facing +z, y up, the subject's left at +x) with
nose, eye sockets, brow ridge, lips, cheeks and chin added as smooth bumps. It is
sampled on a (theta, phi) grid that always contains the mouth row; along the mouth the
row's vertices are duplicated (upper-lip copy / lower-lip copy), so the lips really part
when the jaw opens and meet again under ``mouthClose``.

The rig is a set of displacement *fields* of the rest position and of the lip side
(:func:`arkit_rig`), so it can be evaluated on any tessellation of the same surface:
both topologies (``head``: ~2.1k vertices, ``head2``: ~1.3k, different spacing and a
permuted vertex order) get the same semantics.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

from unitalker.conventions import ARKIT52_EMOTALK

RY = 0.10  # mean head half-height (m)
THETA_MOUTH = float(np.arccos(-0.45))  # polar angle of the mouth line (y = -0.045 m)
PHI_MOUTH = 0.38  # half-width of the mouth slit in azimuth (~2.5 cm)
Y_MOUTH = RY * np.cos(THETA_MOUTH)
JAW_PIVOT = np.array([0.0, Y_MOUTH + 0.02, -0.03])
JAW_MAX_ANGLE = 0.32  # rad of jaw rotation at jawOpen = 1


@dataclass(frozen=True)
class IdentityShape:
    """Shape parameters of one identity (the mean head has the defaults)."""

    rx: float = 0.075
    ry: float = RY
    rz: float = 0.09
    nose: float = 1.0
    lips: float = 1.0
    brow: float = 1.0
    chin: float = 1.0
    cheek: float = 1.0
    jaw_width: float = 1.0

    @classmethod
    def random(cls, rng: np.random.Generator) -> IdentityShape:
        """A random identity, within +-6 % head size and +-35 % feature strength."""
        base = cls()
        vals = {}
        for f in fields(cls):
            v = getattr(base, f.name)
            spread = 0.06 if f.name in ("rx", "ry", "rz", "jaw_width") else 0.35
            vals[f.name] = float(v * rng.uniform(1 - spread, 1 + spread))
        return cls(**vals)


@dataclass(frozen=True)
class Topology:
    """How a head is tessellated."""

    rows_above: int  # rows from the crown down to the mouth row (inclusive)
    rows_below: int  # rows below the mouth row
    cols: int  # columns around the head (even, so phi = 0 is a column)
    spacing: str = "linear"  # "linear" or "cosine" row spacing
    permute_seed: int | None = None  # shuffle vertex order deterministically


TOPOLOGIES: dict[str, Topology] = {
    "head": Topology(rows_above=24, rows_below=18, cols=50),
    "head2": Topology(rows_above=19, rows_below=15, cols=38, spacing="cosine", permute_seed=20240),
}


@dataclass
class HeadMesh:
    """A tessellated neutral head.

    Attributes:
        vertices: float64 ``[V, 3]``.
        faces: int32 ``[F, 3]``.
        theta, phi: ``[V]`` surface parameters of each vertex.
        side: int8 ``[V]``: +1 above the mouth line / upper-lip copy, -1 below / lower
            copy, 0 on the mouth row outside the slit.
        slit_pairs: int32 ``[K, 2]`` (upper copy, lower copy) along the slit, left to right.
    """

    vertices: np.ndarray
    faces: np.ndarray
    theta: np.ndarray
    phi: np.ndarray
    side: np.ndarray
    slit_pairs: np.ndarray

    @property
    def mouth_pair(self) -> tuple[int, int]:
        """(upper, lower) vertex of the slit's centre column (phi = 0)."""
        p = self.slit_pairs[len(self.slit_pairs) // 2]
        return int(p[0]), int(p[1])


def _rows(topo: Topology) -> np.ndarray:
    top, bottom = 0.16, 2.55
    a = np.linspace(0, 1, topo.rows_above)
    b = np.linspace(0, 1, topo.rows_below + 1)[1:]
    if topo.spacing == "cosine":
        a = 0.5 - 0.5 * np.cos(np.pi * a)
        b = 0.5 - 0.5 * np.cos(np.pi * b)
    return np.concatenate([top + a * (THETA_MOUTH - top), THETA_MOUTH + b * (bottom - THETA_MOUTH)])


def surface(
    theta: np.ndarray,
    phi: np.ndarray,
    ident: IdentityShape | None = None,
    *,
    smooth_jaw: bool = False,
) -> np.ndarray:
    """Points ``[N, 3]`` of an identity's neutral head at surface parameters (theta, phi).

    ``smooth_jaw`` narrows the jaw with a smoothstep instead of a linear ramp, so the
    surface has no crease at the mouth line and the chin. The conventions' meshes (and
    so the training data) use the default ramp; the smooth surface is for display only
    (:mod:`unitalker.synth.dressing`).
    """
    s = ident or IdentityShape()
    st = np.sin(theta)
    p = np.stack([s.rx * st * np.sin(phi), s.ry * np.cos(theta), s.rz * st * np.cos(phi)], -1)
    x, y, z = p[:, 0], p[:, 1], p[:, 2]
    # jaw narrows below the mouth
    ramp = np.clip((Y_MOUTH - y) / 0.05, 0, 1)
    if smooth_jaw:
        ramp = ramp * ramp * (3 - 2 * ramp)
    x = x * np.where(y < Y_MOUTH, 1 - 0.18 * s.jaw_width * ramp, 1.0)
    n = np.stack([x / s.rx**2, y / s.ry**2, z / s.rz**2], -1)
    n /= np.linalg.norm(n, axis=-1, keepdims=True)
    front = np.clip(z / (0.5 * s.rz), 0, 1)
    ax = np.abs(x)
    ym = s.ry * np.cos(THETA_MOUTH)

    def g(u: np.ndarray, v: np.ndarray) -> np.ndarray:
        return np.exp(-0.5 * (u**2 + v**2))

    bump = (
        0.022 * s.nose * g(x / 0.011, (y + 0.008) / 0.016)  # nose tip
        + 0.010 * s.nose * g(x / 0.008, (y - 0.012) / 0.02)  # nose bridge
        - 0.008 * g((ax - 0.032) / 0.013, (y - 0.02) / 0.009)  # eye sockets
        + 0.005 * s.brow * g((ax - 0.03) / 0.022, (y - 0.04) / 0.007)  # brow ridge
        + 0.006 * s.lips * g(x / 0.024, (y - ym) / 0.011)  # lips
        + 0.007 * s.chin * g(x / 0.02, (y - ym + 0.042) / 0.014)  # chin
        + 0.004 * s.cheek * g((ax - 0.045) / 0.02, (y + 0.015) / 0.02)  # cheeks
    ) * front
    p = np.stack([x, y, z], -1) + n * bump[:, None]
    return p


def build_mesh(topology: str | Topology = "head", ident: IdentityShape | None = None) -> HeadMesh:
    """Tessellate the head (an identity's neutral shape; the mean head by default)."""
    topo = TOPOLOGIES[topology] if isinstance(topology, str) else topology
    thetas = _rows(topo)
    m = topo.rows_above - 1  # index of the mouth row
    phis = -np.pi + 2 * np.pi * np.arange(topo.cols) / topo.cols
    n_r, n_c = len(thetas), topo.cols
    grid = np.arange(n_r * n_c).reshape(n_r, n_c)
    th = np.repeat(thetas, n_c)
    ph = np.tile(phis, n_r)
    slit_cols = np.nonzero(np.abs(phis) < PHI_MOUTH - 1e-9)[0]
    lower = n_r * n_c + np.arange(len(slit_cols))  # lower-lip copies of the slit
    pole = lower[-1] + 1
    th = np.concatenate([th, np.full(len(slit_cols), thetas[m]), [0.0]])
    ph = np.concatenate([ph, phis[slit_cols], [0.0]])
    below_row = grid[m].copy()
    below_row[slit_cols] = lower
    faces = []
    for r in range(n_r - 1):
        top_row = below_row if r == m else grid[r]  # below the slit: the lower-lip copies
        nxt = grid[r + 1]
        for j in range(n_c):
            k = (j + 1) % n_c
            a, b, c, d = top_row[j], top_row[k], nxt[j], nxt[k]
            faces.append((a, c, b))
            faces.append((b, c, d))
    for j in range(n_c):  # crown cap
        faces.append((pole, grid[0][j], grid[0][(j + 1) % n_c]))
    faces = np.asarray(faces, dtype=np.int64)
    side = np.where(th < thetas[m] - 1e-9, 1, np.where(th > thetas[m] + 1e-9, -1, 0)).astype(
        np.int8
    )
    side[grid[m][slit_cols]] = 1
    side[lower] = -1
    side[pole] = 1
    pairs = np.stack([grid[m][slit_cols], lower], 1)
    verts = surface(th, ph, ident)
    if topo.permute_seed is not None:
        perm = np.random.default_rng(topo.permute_seed).permutation(len(verts))  # new -> old
        inv = np.empty_like(perm)
        inv[perm] = np.arange(len(perm))
        verts, th, ph, side = verts[perm], th[perm], ph[perm], side[perm]
        faces, pairs = inv[faces], inv[pairs]
    return HeadMesh(verts, faces.astype(np.int32), th, ph, side, pairs.astype(np.int32))


# --------------------------------------------------------------------------------------
# The ARKit-52 rig as displacement fields.


def _rot_x(angle: float) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[1, 0, 0], [0, c, -s], [0, s, c]])


def jaw_weights(p: np.ndarray, side: np.ndarray) -> np.ndarray:
    """Skinning weight ``[V]`` of the jaw: the lower face, fading at the back and the neck."""
    x, y, z = p.T
    lowside = np.where(side < 0, 1.0, np.where(side == 0, 0.5 * (y <= Y_MOUTH + 1e-6), 0.0))
    front = np.clip((z + 0.01) / 0.05, 0, 1)
    neck = np.clip((y - (Y_MOUTH - 0.12)) / 0.04, 0, 1)
    return lowside * front * neck


def arkit_rig(mesh: HeadMesh) -> np.ndarray:
    """ARKit-52 deltas ``[52, V, 3]`` (EmoTalk order) evaluated on a mesh's rest positions."""
    p = mesh.vertices
    side = mesh.side
    x, y, z = p.T
    ax = np.abs(x)
    front = np.clip(z / 0.04, 0, 1)
    up = (side > 0).astype(float)
    lo = (side < 0).astype(float)

    def g(cx: float, cy: float, sx: float, sy: float, mirror: int = 0) -> np.ndarray:
        xx = x if mirror == 0 else (x * mirror)
        return np.exp(-0.5 * (((xx - cx) / sx) ** 2 + ((y - cy) / sy) ** 2)) * front

    def vec(
        dx: float | np.ndarray = 0.0, dy: float | np.ndarray = 0.0, dz: float | np.ndarray = 0.0
    ) -> np.ndarray:
        return np.stack(np.broadcast_arrays(dx, dy, dz, x)[:3], -1).astype(float)

    lipzone = (
        np.exp(-0.5 * ((y - Y_MOUTH) / 0.009) ** 2) * np.clip(1 - (ax / 0.034) ** 4, 0, 1) * front
    )
    lip_u, lip_l = lipzone * up, lipzone * lo
    wj = jaw_weights(p, side)
    jaw = ((p - JAW_PIVOT) @ _rot_x(JAW_MAX_ANGLE).T + JAW_PIVOT - p) * wj[:, None]
    # the lower lip follows the jaw fully; mouthClose returns it to the upper lip
    # (falloff in theta, so the lower-lip copies of the slit get exactly 1)
    below = np.maximum(mesh.theta - THETA_MOUTH, 0)
    close = -jaw * (np.exp(-0.5 * (below / 0.13) ** 2) * lo)[:, None]
    corner = {s: g(0.026, Y_MOUTH, 0.010, 0.010, s) for s in (1, -1)}  # left (+x), right
    lipside = {s: lipzone * np.clip(0.5 + 0.5 * s * x / 0.02, 0, 1) for s in (1, -1)}
    eye = {s: g(0.032, 0.026, 0.013, 0.007, s) for s in (1, -1)}  # upper lid
    lowlid = {s: g(0.032, 0.012, 0.013, 0.005, s) for s in (1, -1)}
    brow = {s: g(0.03, 0.042, 0.02, 0.01, s) for s in (1, -1)}
    brow_out = {s: g(0.045, 0.04, 0.012, 0.01, s) for s in (1, -1)}
    cheek = {s: g(0.045, -0.025, 0.018, 0.018, s) for s in (1, -1)}
    cheek_hi = {s: g(0.035, -0.002, 0.014, 0.01, s) for s in (1, -1)}
    nose = {s: g(0.012, 0.0, 0.007, 0.008, s) for s in (1, -1)}
    brow_in = g(0.0, 0.045, 0.018, 0.01) * (ax < 0.03)
    # normal-ish direction for puffs
    nrm = p / np.linalg.norm(p, axis=1, keepdims=True)

    d: dict[str, np.ndarray] = {}
    for s, nm in ((1, "Left"), (-1, "Right")):
        d[f"browDown{nm}"] = vec(dy=-0.004 * brow[s], dz=0.001 * brow[s])
        d[f"browOuterUp{nm}"] = vec(dy=0.006 * brow_out[s])
        d[f"cheekSquint{nm}"] = vec(dy=0.004 * cheek_hi[s], dz=0.001 * cheek_hi[s])
        d[f"eyeBlink{nm}"] = vec(dy=-0.011 * eye[s], dz=0.002 * eye[s])
        d[f"eyeLookDown{nm}"] = vec(dy=-0.003 * eye[s])
        d[f"eyeLookUp{nm}"] = vec(dy=0.002 * eye[s])
        d[f"eyeLookIn{nm}"] = vec(dx=-s * 0.0015 * (eye[s] + lowlid[s]))
        d[f"eyeLookOut{nm}"] = vec(dx=s * 0.0015 * (eye[s] + lowlid[s]))
        d[f"eyeSquint{nm}"] = vec(dy=0.003 * lowlid[s] - 0.003 * eye[s])
        d[f"eyeWide{nm}"] = vec(dy=0.004 * eye[s])
        d[f"mouthDimple{nm}"] = vec(dx=s * 0.002 * corner[s], dz=-0.003 * corner[s])
        d[f"mouthFrown{nm}"] = vec(dy=-0.006 * corner[s])
        d[f"mouthLowerDown{nm}"] = vec(dy=-0.006 * lipside[s] * lo, dz=0.001 * lipside[s] * lo)
        d[f"mouthPress{nm}"] = vec(dy=0.0015 * lipside[s] * (lo - up), dz=-0.002 * lipside[s])
        d[f"mouthSmile{nm}"] = vec(
            dx=s * 0.006 * corner[s], dy=0.006 * corner[s], dz=-0.002 * corner[s]
        )
        d[f"mouthStretch{nm}"] = vec(dx=s * 0.007 * corner[s], dy=-0.003 * corner[s])
        d[f"mouthUpperUp{nm}"] = vec(dy=0.005 * lipside[s] * up, dz=0.001 * lipside[s] * up)
        d[f"noseSneer{nm}"] = vec(dy=0.004 * nose[s], dz=0.001 * nose[s])
    d["browInnerUp"] = vec(dy=0.006 * brow_in)
    d["cheekPuff"] = nrm * (0.008 * (cheek[1] + cheek[-1]))[:, None]
    d["jawOpen"] = jaw
    d["jawForward"] = vec(dz=0.006 * wj)
    d["jawLeft"] = vec(dx=0.008 * wj)
    d["jawRight"] = vec(dx=-0.008 * wj)
    d["mouthClose"] = close
    d["mouthFunnel"] = vec(
        dx=-0.25 * x * lipzone, dy=0.003 * lip_u - 0.003 * lip_l, dz=0.006 * lipzone
    )
    d["mouthPucker"] = vec(dx=-0.35 * x * lipzone, dz=0.009 * lipzone)
    d["mouthLeft"] = vec(dx=0.006 * lipzone + 0.003 * (corner[1] + corner[-1]))
    d["mouthRight"] = vec(dx=-0.006 * lipzone - 0.003 * (corner[1] + corner[-1]))
    d["mouthRollLower"] = vec(dy=0.002 * lip_l, dz=-0.005 * lip_l)
    d["mouthRollUpper"] = vec(dy=-0.002 * lip_u, dz=-0.005 * lip_u)
    d["mouthShrugLower"] = vec(
        dy=0.004 * lip_l + 0.003 * wj * (y < Y_MOUTH - 0.02), dz=0.002 * lip_l
    )
    d["mouthShrugUpper"] = vec(dy=0.003 * lip_u, dz=0.001 * lip_u)
    # no tongue geometry: the lower lip drops and everts around a visible tongue
    d["tongueOut"] = vec(dy=-0.004 * lip_l, dz=0.004 * lip_l)
    missing = set(ARKIT52_EMOTALK) - set(d)
    assert not missing, missing
    return np.stack([d[name] for name in ARKIT52_EMOTALK]).astype(np.float64)


def lip_indices(mesh: HeadMesh) -> np.ndarray:
    """Vertices of the lip region (for LVE)."""
    x, y, z = mesh.vertices.T
    return np.nonzero((np.abs(x) < 0.032) & (np.abs(y - Y_MOUTH) < 0.014) & (z > 0.03))[0].astype(
        np.int32
    )


def upper_face_indices(mesh: HeadMesh) -> np.ndarray:
    """Vertices of the upper face: eyes, brows, forehead (for UFVE / FDD)."""
    x, y, z = mesh.vertices.T
    return np.nonzero((y > 0.004) & (y < 0.075) & (z > 0.03))[0].astype(np.int32)


def mouth_gap(vertices: np.ndarray, pair: tuple[int, int]) -> np.ndarray:
    """Vertical lip gap (m) at the mouth centre for ``[T, V, 3]`` (or ``[V, 3]``) vertices."""
    v = np.asarray(vertices)
    return v[..., pair[0], 1] - v[..., pair[1], 1]

"""Render-time dressing of the synth heads: a finer skin, a mouth cavity, teeth, a tongue,
eyes, skin tints and a procedural blink with a little idle head motion.

Nothing here touches the conventions' data: vertex counts, order, rest positions and the
rig stay as trained. A :class:`Dressing` is a *display mesh* derived from a convention's
animated vertices ``X`` (``[V, 3]``) by one sparse linear map::

    display = rest + A @ (X - neutral)          # [D, 3]

* the skin is the head's parametric surface re-tessellated about 3x finer (and with the
  jaw narrowing smoothed, so the outline has no crease), each display vertex following
  the bilinear blend of the convention vertices around it in (theta, phi);
* the mouth cavity is a closed pouch hung on the display skin's lip slit, so the mouth
  is never see-through; its roof follows the upper face, its floor the jaw;
* teeth, tongue and the floor of the cavity are *attached* to the jaw: each of their
  vertices is a fixed combination of a few chin vertices, solved once (ridge least
  squares over the rig's fields) so that the rig's jaw motions move it as the jaw moves
  it (rotation about the jaw pivot, forward and side shifts) and the lip-only motions
  leave it still. That works for every convention on the synth topologies: vertex heads,
  the ARKit rig and the FLAME-like parameters, whatever drove the chin.

Blink and idle motion (:class:`IdleMotion`) are applied on top at render time only: the
rig's ``eyeBlinkLeft`` / ``eyeBlinkRight`` fields evaluated on the display skin, and a
small rotation of the whole head about the neck.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass

import numpy as np

log = logging.getLogger(__name__)

# Linear RGB-ish (sRGB in [0, 1]; the renderer squares them) colours of the parts.
SKIN = (0.80, 0.62, 0.52)
LIP = (0.74, 0.42, 0.40)
BROW = (0.36, 0.25, 0.19)
CAVITY_RIM = (0.42, 0.13, 0.13)
CAVITY_DEEP = (0.10, 0.025, 0.03)
TOOTH = (0.93, 0.91, 0.84)
TONGUE = (0.72, 0.33, 0.34)
SCLERA = (0.93, 0.92, 0.89)
IRIS = (0.36, 0.25, 0.16)

# Display tessellation per convention topology: (rows above the mouth, below, columns).
DISPLAY_TOPOLOGY = (30, 22, 72)

TOOTH_COUNT = 8  # per arch (front teeth; the back ones are never seen)


@dataclass(frozen=True)
class Dressing:
    """A display mesh driven by a convention's vertices (see the module docstring).

    Attributes:
        neutral: float32 ``[V, 3]`` the convention's neutral (the map's origin).
        rest: float32 ``[D, 3]`` the display mesh at the neutral.
        faces: int32 ``[F, 3]`` display triangles.
        colors: float32 ``[D, 3]`` per-vertex colours (sRGB in [0, 1]).
        matrix: scipy CSR ``[D, V]`` the linear map.
        blink: float32 ``[D, 3]`` displacement of a full blink (both eyes).
        part: int8 ``[D]`` what each display vertex is (see :data:`PARTS`).
        neck_pivot: float32 ``[3]`` centre of the idle head rotation.
        smooth: scipy CSR ``[V, V]`` a light smoothing of the convention's displacements
            away from the lips and eyes (hides per-vertex noise of predicted meshes, such
            as a crinkled chin), applied before :attr:`matrix`.
    """

    neutral: np.ndarray
    rest: np.ndarray
    faces: np.ndarray
    colors: np.ndarray
    matrix: object
    blink: np.ndarray
    part: np.ndarray
    neck_pivot: np.ndarray
    smooth: object = None

    def _delta(self, v: np.ndarray) -> np.ndarray:
        d = v - self.neutral if v.ndim == 2 else v - self.neutral[None]
        if self.smooth is None:
            return d
        if d.ndim == 2:
            return self.smooth @ d
        t, n, _ = d.shape
        flat = (self.smooth @ d.transpose(1, 0, 2).reshape(n, t * 3)).reshape(n, t, 3)
        return flat.transpose(1, 0, 2)

    @property
    def n_vertices(self) -> int:
        return int(self.rest.shape[0])

    def apply(
        self,
        vertices: np.ndarray,
        blink: float = 0.0,
        rotation: np.ndarray | None = None,
    ) -> np.ndarray:
        """Convention vertices ``[V, 3]`` -> display vertices ``[D, 3]`` float32.

        Args:
            vertices: one frame of the convention's mesh.
            blink: eyelid closure in [0, 1] added on top of what the frame does.
            rotation: ``[3, 3]`` idle head rotation about :attr:`neck_pivot`, or None.
        """
        v = np.asarray(vertices, dtype=np.float32).reshape(-1, 3)
        return self.pose(self.rest + self.matrix @ self._delta(v), blink, rotation)

    def pose(
        self, display: np.ndarray, blink: float = 0.0, rotation: np.ndarray | None = None
    ) -> np.ndarray:
        """Add a blink and an idle rotation to display vertices ``[D, 3]`` (see :meth:`apply`)."""
        out = display
        if blink:
            out = out + np.float32(blink) * self.blink
        if rotation is not None:
            out = (out - self.neck_pivot) @ np.asarray(rotation, np.float32).T + self.neck_pivot
        return np.ascontiguousarray(out, dtype=np.float32)

    def pose_sequence(
        self, display: np.ndarray, blinks: np.ndarray, rotations: np.ndarray
    ) -> np.ndarray:
        """:meth:`pose` of ``T`` frames at once: ``[T, D, 3]`` display vertices, ``[T]``
        eyelid closures and ``[T, 3, 3]`` rotations -> ``[T, D, 3]`` float32."""
        out = np.asarray(display, np.float32) + (
            np.asarray(blinks, np.float32)[:, None, None] * self.blink[None]
        )
        r = np.asarray(rotations, np.float32)
        out = np.matmul(out - self.neck_pivot, r.transpose(0, 2, 1)) + self.neck_pivot
        return np.ascontiguousarray(out, dtype=np.float32)

    def front_faces(self, behind: float = 0.02) -> np.ndarray:
        """Faces that a frontal camera can see: drops the skin triangles lying entirely
        more than ``behind`` metres behind the ears' plane (z = 0), about 40 % of the skin.
        For fixed frontal previews (the video); an orbiting viewer needs :attr:`faces`."""
        z = self.rest[:, 2]
        hidden = (z[self.faces] < -behind).all(axis=1) & (self.part[self.faces] == 0).all(axis=1)
        return self.faces[~hidden]

    def apply_sequence(self, vertices: np.ndarray) -> np.ndarray:
        """``[T, V, 3]`` -> ``[T, D, 3]`` (no blink, no idle motion): for framing."""
        v = np.asarray(vertices, dtype=np.float32)
        delta = self._delta(v).transpose(1, 0, 2).reshape(v.shape[1], -1)
        out = (self.matrix @ delta).reshape(self.n_vertices, len(v), 3).transpose(1, 0, 2)
        return out + self.rest[None]


PARTS = ("skin", "cavity", "teeth", "tongue", "eyes")


# --------------------------------------------------------------------------------------
# Building


def _grid_lookup(mesh) -> tuple[np.ndarray, np.ndarray, dict, int, int]:  # noqa: ANN001
    """Rows, columns and ``(row, col, lower) -> vertex`` of a tessellated synth head."""
    th, ph = mesh.theta, mesh.phi
    pole = int(np.argmin(th))
    rows = np.unique(np.round(th[np.arange(len(th)) != pole], 9))
    cols = np.unique(np.round(ph, 9))
    r_of = np.searchsorted(rows, np.round(th, 9))
    c_of = np.searchsorted(cols, np.round(ph, 9))
    m = int(np.argmin(np.abs(rows - _theta_mouth())))
    table: dict[tuple[int, int, bool], int] = {}
    for i in range(len(th)):
        if i == pole:
            continue
        r = int(r_of[i])
        # only the mouth row has two copies (upper / lower lip) of a grid point
        table[(r, int(c_of[i]), bool(r == m and mesh.side[i] < 0))] = i
    return rows, cols, table, pole, m


def _theta_mouth() -> float:
    from unitalker.synth.mesh import THETA_MOUTH

    return THETA_MOUTH


def _bilinear(coarse, fine) -> object:  # noqa: ANN001
    """Sparse ``[D, V]``: each fine skin vertex as the bilinear blend of its coarse quad."""
    from scipy.sparse import csr_matrix

    rows, cols, table, pole, m = _grid_lookup(coarse)
    n_r, n_c = len(rows), len(cols)
    grid = np.full((n_r, n_c, 2), -1, dtype=np.int64)  # [row, col, lower copy]
    for (r, c, lower), i in table.items():
        grid[r, c, int(lower)] = i
    grid[:, :, 1] = np.where(grid[:, :, 1] < 0, grid[:, :, 0], grid[:, :, 1])
    t, p, side = fine.theta, fine.phi, fine.side
    n = len(t)
    step = 2 * np.pi / n_c
    pp = (p - cols[0]) % (2 * np.pi) / step
    c0 = np.floor(pp + 1e-9).astype(np.int64) % n_c
    v = np.clip(pp - np.floor(pp + 1e-9), 0, 1)
    c1 = (c0 + 1) % n_c
    r = np.clip(np.searchsorted(rows, t) - 1, 0, n_r - 2)
    u = np.clip((t - rows[r]) / (rows[r + 1] - rows[r]), 0, 1)
    on_mouth = np.abs(t - rows[m]) < 1e-9
    # Vertices on the mouth row: the upper side interpolates in the quad above (u = 1),
    # the lower side in the quad below (u = 0, its top row the lower-lip copies); the
    # corners (side 0) average the two. Off the row, the quad's top row uses the lower
    # copies when that row is the mouth row.
    passes = []
    above = on_mouth & (side >= 0)
    below = on_mouth & (side <= 0)
    off = ~on_mouth
    share = np.where(on_mouth & (side == 0), 0.5, 1.0)
    for mask, rr, uu, low in (
        (off, r, u, (r == m).astype(np.int64)),
        (above, np.full(n, m - 1), np.ones(n), np.zeros(n, np.int64)),
        (below, np.full(n, m), np.zeros(n), np.ones(n, np.int64)),
    ):
        idx = np.nonzero(mask)[0]
        if not len(idx):
            continue
        rr, uu, low, vv = rr[idx], uu[idx], low[idx], v[idx]
        corners = (
            (grid[rr, c0[idx], low], (1 - uu) * (1 - vv)),
            (grid[rr, c1[idx], low], (1 - uu) * vv),
            (grid[rr + 1, c0[idx], 0], uu * (1 - vv)),
            (grid[rr + 1, c1[idx], 0], uu * vv),
        )
        for j, w in corners:
            passes.append((idx, j, w * share[idx]))
    pole_f = t < rows[0] - 1e-9
    ri = np.concatenate([q[0] for q in passes])
    ci = np.concatenate([q[1] for q in passes])
    vals = np.concatenate([q[2] for q in passes])
    keep = (vals > 1e-9) & ~pole_f[ri]
    ri, ci, vals = ri[keep], ci[keep], vals[keep]
    pf = np.nonzero(pole_f)[0]
    ri = np.concatenate([ri, pf])
    ci = np.concatenate([ci, np.full(len(pf), pole)])
    vals = np.concatenate([vals, np.ones(len(pf))])
    return csr_matrix((vals, (ri, ci)), shape=(n, len(coarse.theta)))


def _attachment(
    points: np.ndarray,
    coarse_rest: np.ndarray,
    rig: np.ndarray,
    anchors: np.ndarray,
    jaw: bool,
) -> np.ndarray:
    """Weights ``[P, K]`` on ``anchors`` that move ``points`` rigidly with the jaw (or
    keep them still with the upper face), solved once by ridge least squares.

    Equations, per rig field and axis: the anchors' displacements combined by the weights
    equal the point's target displacement (jaw fields: the jaw's motion at the point;
    every other field: 0); plus a unit translation in x, y, z (so the weights sum to 1
    and identity offsets of the anchors carry over).
    """
    from unitalker.conventions import ARKIT52_EMOTALK
    from unitalker.synth import mesh as M

    d = rig[:, anchors, :]  # [C, K, 3]
    c, k, _ = d.shape
    # rows: (field, axis) -> [C*3, K] plus translation rows [3*3, K]
    a_rig = d.transpose(0, 2, 1).reshape(c * 3, k)
    a_tr = np.repeat(np.eye(3)[:, None, :], 1, 1).reshape(3, 1, 3).repeat(k, 1)  # [3, K, 3]
    a_tr = a_tr.transpose(0, 2, 1).reshape(9, k)
    a = np.concatenate([a_rig, a_tr])  # [C*3 + 9, K]
    # targets [P, C*3 + 9]
    tgt = np.zeros((len(points), c, 3))
    if jaw:
        name = {n: i for i, n in enumerate(ARKIT52_EMOTALK)}
        rot = M._rot_x(M.JAW_MAX_ANGLE)
        tgt[:, name["jawOpen"]] = (points - M.JAW_PIVOT) @ rot.T + M.JAW_PIVOT - points
        tgt[:, name["jawForward"], 2] = 0.006
        tgt[:, name["jawLeft"], 0] = 0.008
        tgt[:, name["jawRight"], 0] = -0.008
    tgt_tr = np.tile(np.eye(3).reshape(1, 9), (len(points), 1))
    b = np.concatenate([tgt.reshape(len(points), c * 3), tgt_tr], 1)  # [P, C*3 + 9]
    # Scale the translation rows like a typical field (mm-scale displacements).
    wrow = np.ones(len(a))
    wrow[c * 3 :] = 0.2
    aw = a * wrow[:, None]
    bw = b * wrow[None]
    lam = 1e-7
    lhs = aw.T @ aw + lam * np.eye(k)
    return np.linalg.solve(lhs, aw.T @ bw.T).T  # [P, K]


def _nearest(
    anchors: np.ndarray, coarse_rest: np.ndarray, points: np.ndarray, k: int = 32
) -> np.ndarray:
    """The ``k`` anchors nearest the points' centroid (keeps the map sparse: a rigid
    part hangs from a few vertices, not from every anchor)."""
    d = np.linalg.norm(coarse_rest[anchors] - points.mean(axis=0), axis=1)
    return np.sort(anchors[np.argsort(d)[:k]])


def _sparse_rows(weights: np.ndarray, cols: np.ndarray, n_cols: int) -> object:
    from scipy.sparse import csr_matrix

    p, k = weights.shape
    return csr_matrix(
        (weights.reshape(-1), (np.repeat(np.arange(p), k), np.tile(cols, p))), shape=(p, n_cols)
    )


def _rounded_box(
    center: np.ndarray, half: np.ndarray, n: int = 60
) -> tuple[np.ndarray, np.ndarray]:
    """A rounded box (a squashed superellipsoid) of ~``n`` vertices."""
    from unitalker.render.geometry import uv_sphere

    v, f = uv_sphere(n)
    v = np.sign(v) * np.abs(v) ** 0.55  # boxier
    return center + v * half, f


def _sphere(center: np.ndarray, radius: np.ndarray, n: int = 200) -> tuple[np.ndarray, np.ndarray]:
    from unitalker.render.geometry import uv_sphere

    v, f = uv_sphere(n)
    return center + v * radius, f


@functools.lru_cache(maxsize=4)
def build_dressing(topology: str) -> Dressing:
    """The dressing of a synth topology (``head`` or ``head2``), built once (~0.3 s)."""
    from scipy.sparse import csr_matrix, vstack

    from unitalker.synth import conventions as SC
    from unitalker.synth import mesh as M

    coarse = M.build_mesh(topology)
    neutral = SC.asset(topology)["neutral"].astype(np.float64)
    if not np.allclose(coarse.vertices, neutral, atol=1e-6):
        raise RuntimeError(f"the {topology} asset does not match its tessellation")
    rig = SC.asset(topology)["rig_basis"].astype(np.float64)  # [52, V, 3]
    smooth = _smoothing(coarse)
    # The parts are attached to the *smoothed* displacements (what the map sees), so that
    # they still follow the jaw exactly.
    rig = np.stack([smooth @ r for r in rig])
    ra, rb, nc = DISPLAY_TOPOLOGY
    fine = M.build_mesh(M.Topology(rows_above=ra, rows_below=rb, cols=nc))
    skin_rest = M.surface(fine.theta, fine.phi, smooth_jaw=True)
    skin_map = _bilinear(coarse, fine)
    # The bilinear map of the *coarse* rest is the coarse surface; the display rest is the
    # true (smooth) surface, so the map acts on displacements only.
    fine_rig = M.arkit_rig(fine)
    from unitalker.conventions import ARKIT52_EMOTALK

    names = list(ARKIT52_EMOTALK)
    blink_skin = fine_rig[names.index("eyeBlinkLeft")] + fine_rig[names.index("eyeBlinkRight")]
    n_skin = len(skin_rest)

    x, y, z = skin_rest.T
    colors = np.tile(np.asarray(SKIN), (n_skin, 1))
    y_slit = skin_rest[fine.mouth_pair[0], 1]
    lip = np.exp(-0.5 * ((y - y_slit) / 0.006) ** 2) * np.clip(1 - (np.abs(x) / 0.029) ** 4, 0, 1)
    lip *= np.clip(z / 0.06, 0, 1)
    # brows: an arc over each eye, thinning outwards
    bx = np.abs(x) - 0.031
    brow = np.exp(-0.5 * ((bx / 0.017) ** 4 + ((y - 0.044 + 6.0 * bx**2) / 0.0032) ** 2))
    brow *= np.clip(z / 0.06, 0, 1)
    colors = colors * (1 - lip[:, None]) + np.asarray(LIP) * lip[:, None]
    colors = colors * (1 - 0.8 * brow[:, None]) + np.asarray(BROW) * 0.8 * brow[:, None]

    # ---- anchors for attachments: chin (jaw) and nose / cheeks (upper face)
    cx, cy, cz = coarse.vertices.T
    wj = M.jaw_weights(coarse.vertices, coarse.side)
    jaw_anchor = np.nonzero((wj > 0.97) & (cy < M.Y_MOUTH - 0.018) & (np.abs(cx) < 0.035))[0]
    up_anchor = np.nonzero(
        (cy > M.Y_MOUTH + 0.025) & (cy < 0.0) & (cz > 0.04) & (np.abs(cx) < 0.04)
    )[0]

    # ---- the mouth rim: the display skin's slit loop (corner, upper copies, corner, lower)
    fth = fine.theta
    on_row = np.nonzero(np.abs(fth - M.THETA_MOUTH) < 1e-9)[0]
    up_ids = fine.slit_pairs[:, 0]
    lo_ids = fine.slit_pairs[:, 1]
    corner_cands = np.setdiff1d(on_row, np.concatenate([up_ids, lo_ids]))
    phi_up = fine.phi[up_ids]
    left = corner_cands[np.argmin(np.abs(fine.phi[corner_cands] - (phi_up.min() - 2 * np.pi / nc)))]
    right = corner_cands[
        np.argmin(np.abs(fine.phi[corner_cands] - (phi_up.max() + 2 * np.pi / nc)))
    ]
    order_u = up_ids[np.argsort(fine.phi[up_ids])]
    order_l = lo_ids[np.argsort(fine.phi[lo_ids])][::-1]
    rim = np.concatenate([[left], order_u, [right], order_l])  # closed loop
    rim_side = np.concatenate([[0], np.ones(len(order_u)), [0], -np.ones(len(order_l))])
    # The rim at rest is a closed slit: the pouch's shape is given per ring as (depth
    # behind the lips, height above / below the mouth line), in metres. The roof rises
    # steeply behind the upper lip (room for the upper teeth); the floor drops only as it
    # goes back, because the chin recedes below the mouth (it must stay behind the skin).
    roof = (
        (0.003, 0.004),
        (0.006, 0.012),
        (0.012, 0.016),
        (0.020, 0.016),
        (0.027, 0.012),
        (0.032, 0.006),
        (0.034, 0.0),
    )
    floor = (
        (0.003, 0.002),
        (0.007, 0.004),
        (0.013, 0.010),
        (0.020, 0.015),
        (0.027, 0.013),
        (0.032, 0.007),
        (0.034, 0.0),
    )
    n_rings = len(roof)
    pts, sides, alphas, ring_t = [], [], [], []
    for k in range(n_rings):
        t = (k + 1) / n_rings
        for i, s in zip(rim, rim_side, strict=True):
            p = skin_rest[i].copy()
            dz, h = (roof if s > 0 else floor)[k]
            if s == 0:
                dz, h = roof[k][0], 0.0
            p[0] = p[0] * (1 - 0.25 * t)
            p[2] = p[2] - dz
            p[1] = p[1] + s * h  # from the rim point (the lips' bulge lowers the slit)
            pts.append(p)
            sides.append(s)
            alphas.append(min(1.0, 2.5 * t))
            ring_t.append(t)
    cav = np.asarray(pts)
    sides = np.asarray(sides, dtype=np.float64)
    alphas = np.asarray(alphas)
    ring_t = np.asarray(ring_t)
    n_rim = len(rim)
    cav_ids = n_skin + np.arange(len(cav)).reshape(n_rings, n_rim)
    # The back ring is a seam: its lower half reuses the upper half's vertices (same
    # columns), so the pouch stays closed when the jaw drops; the seam hangs halfway.
    n_up = len(order_u)
    last = cav_ids[-1].copy()
    last[n_up + 2 :] = last[1 : n_up + 1][::-1]
    cav_ids[-1] = last
    sides[(n_rings - 1) * n_rim : (n_rings - 1) * n_rim + n_rim] = 0.0
    cav_faces = []
    prev = rim
    for k in range(n_rings):
        cur = cav_ids[k]
        for j in range(n_rim):
            jn = (j + 1) % n_rim
            # wound so the normals face into the mouth (the renderer lights both sides)
            tri = [(prev[j], cur[j], prev[jn]), (prev[jn], cur[j], cur[jn])]
            cav_faces += [f for f in tri if len(set(f)) == 3]
        prev = cur
    cav_faces = np.asarray(cav_faces)
    cav_col = (
        np.asarray(CAVITY_RIM)[None] * (1 - ring_t[:, None] ** 0.6)
        + np.asarray(CAVITY_DEEP)[None] * ring_t[:, None] ** 0.6
    )

    # ---- teeth and tongue (in front of the pouch's back, behind the lips)
    lip_front = skin_rest[fine.mouth_pair[0]]
    y0 = lip_front[1]  # the slit's height at the centre (below Y_MOUTH: the lips bulge)
    row_pts = skin_rest[on_row]

    def arch_z(xs: np.ndarray) -> np.ndarray:
        o = np.argsort(row_pts[:, 0])
        front = row_pts[o]
        front = front[front[:, 2] > 0]
        return np.interp(xs, front[:, 0], front[:, 2])

    parts_v, parts_f, parts_c, parts_kind, parts_jaw = [], [], [], [], []
    tx = np.linspace(-0.019, 0.019, TOOTH_COUNT)
    for arch, jawn in (("upper", False), ("lower", True)):
        for xi in tx:
            w = 0.0046 if abs(xi) < 0.008 else 0.0042
            h = 0.0085 if arch == "upper" else 0.0075
            # upper incisors show a little below the upper lip; the lower ones sit behind
            zc = arch_z(np.array([xi]))[0] - (0.0075 if arch == "upper" else 0.011)
            yc = y0 + (h / 2 - 0.0032 if arch == "upper" else -(h / 2 + 0.0004))
            v, f = _rounded_box(np.array([xi * 0.95, yc, zc]), np.array([w / 2, h / 2, 0.0022]))
            parts_v.append(v), parts_f.append(f)
            parts_c.append(np.tile(TOOTH, (len(v), 1)))
            parts_kind.append(np.full(len(v), PARTS.index("teeth"))), parts_jaw.append(jawn)
    tv, tf = _sphere(
        np.array([0.0, y0 - 0.0085, lip_front[2] - 0.029]), np.array([0.015, 0.0055, 0.015])
    )
    parts_v.append(tv), parts_f.append(tf), parts_c.append(np.tile(TONGUE, (len(tv), 1)))
    parts_kind.append(np.full(len(tv), PARTS.index("tongue"))), parts_jaw.append(True)

    # ---- eyes: a white eyeball with a dark iris, sitting in each socket
    eyes_v, eyes_f, eyes_c = [], [], []
    for sx in (1, -1):
        ec = np.array([sx * 0.032, 0.021, 0.0])
        # the socket's surface depth at the eye centre, then sink the ball slightly
        th = np.arccos(np.clip(ec[1] / M.RY, -1, 1))
        ph = np.arcsin(np.clip(ec[0] / (0.075 * np.sin(th)), -1, 1))
        sp = M.surface(np.array([th]), np.array([ph]), smooth_jaw=True)[0]
        r = 0.0105
        ec[2] = sp[2] - r + 0.0014
        v, f = _sphere(ec, np.array([r, r, r]), 260)
        rel = (v - ec) / r
        gaze = np.array([-sx * 0.02, -0.03, 1.0])
        gaze /= np.linalg.norm(gaze)
        cosang = rel @ gaze
        iris = np.clip((cosang - 0.80) / 0.03, 0, 1)
        pupil = np.clip((cosang - 0.95) / 0.01, 0, 1)
        c = np.asarray(SCLERA)[None] * (1 - iris[:, None]) + np.asarray(IRIS)[None] * iris[:, None]
        c = c * (1 - 0.85 * pupil[:, None])
        eyes_v.append(v), eyes_f.append(f), eyes_c.append(c)

    # ---- assemble
    verts = [skin_rest, cav]
    faces = [fine.faces.astype(np.int64), cav_faces]
    cols = [colors, cav_col]
    kind = [np.full(n_skin, 0), np.full(len(cav), PARTS.index("cavity"))]
    base = n_skin + len(cav)
    maps = [skin_map]
    # cavity: blend from its rim vertex's skin row to the bone it hangs from
    rim_rows = skin_map[np.tile(rim, n_rings)]
    cj, cu = _nearest(jaw_anchor, neutral, cav), _nearest(up_anchor, neutral, cav)
    w_jaw = _attachment(cav, neutral, rig, cj, jaw=True)
    w_up = _attachment(cav, neutral, rig, cu, jaw=False)
    bone = _sparse_rows(
        w_jaw * ((sides < 0) + 0.5 * (sides == 0))[:, None], cj, len(neutral)
    ) + _sparse_rows(w_up * ((sides > 0) + 0.5 * (sides == 0))[:, None], cu, len(neutral))
    a = alphas[:, None]
    maps.append(csr_matrix(rim_rows.multiply(1 - a)) + csr_matrix(bone.multiply(a)))
    for v, f, c, k, jawn in zip(parts_v, parts_f, parts_c, parts_kind, parts_jaw, strict=True):
        verts.append(v), faces.append(f + base), cols.append(c), kind.append(k)
        anchors = _nearest(jaw_anchor if jawn else up_anchor, neutral, v)
        maps.append(
            _sparse_rows(_attachment(v, neutral, rig, anchors, jaw=jawn), anchors, len(neutral))
        )
        base += len(v)
    for v, f, c in zip(eyes_v, eyes_f, eyes_c, strict=True):
        verts.append(v), faces.append(f + base), cols.append(c)
        kind.append(np.full(len(v), PARTS.index("eyes")))
        # An eyeball sits in its socket: it hangs from the socket's own vertices (so a
        # deeper or shallower socket of an identity / a prediction carries it along),
        # solved to ignore the lid fields (blink, squint, wide, look).
        centre = v.mean(axis=0)
        socket = np.nonzero(
            (np.abs(cx - centre[0]) < 0.016) & (np.abs(cy - centre[1]) < 0.016) & (cz > 0.02)
        )[0]
        anchors = socket if len(socket) >= 6 else _nearest(up_anchor, neutral, v)
        maps.append(
            _sparse_rows(_attachment(v, neutral, rig, anchors, jaw=False), anchors, len(neutral))
        )
        base += len(v)
    rest = np.concatenate(verts).astype(np.float32)
    matrix = vstack(maps).tocsr().astype(np.float32)
    blink = np.zeros_like(rest)
    blink[:n_skin] = blink_skin
    # The rig's lid closes over a socket, not a ball: in a full blink the eyeballs also
    # sink a little so that no white shows between the lids.
    blink[np.concatenate(kind) == PARTS.index("eyes"), 2] = -0.005
    log.debug(
        "dressing %s: %d display vertices, %d faces", topology, len(rest), sum(map(len, faces))
    )
    return Dressing(
        neutral=neutral.astype(np.float32),
        rest=rest,
        faces=np.concatenate(faces).astype(np.int32),
        colors=np.concatenate(cols).astype(np.float32),
        matrix=matrix,
        blink=blink.astype(np.float32),
        part=np.concatenate(kind).astype(np.int8),
        neck_pivot=np.array([0.0, M.Y_MOUTH - 0.05, -0.01], np.float32),
        smooth=smooth,
    )


def _smoothing(mesh, iterations: int = 3, step: float = 0.5) -> object:  # noqa: ANN001
    """``S = (I - step * diag(w) * L)^iterations`` on the coarse mesh (``L`` the umbrella
    Laplacian over the faces' edges), with ``w = 0`` on the lips and around the eyes so
    their motion passes unchanged, ``w = 1`` elsewhere. Displacements only: the rest shape
    is untouched (``S @ 0 = 0``)."""
    from scipy.sparse import csr_matrix, diags, identity

    n = len(mesh.vertices)
    f = mesh.faces
    i = np.concatenate([f[:, 0], f[:, 1], f[:, 2], f[:, 1], f[:, 2], f[:, 0]])
    j = np.concatenate([f[:, 1], f[:, 2], f[:, 0], f[:, 0], f[:, 1], f[:, 2]])
    adj = csr_matrix((np.ones(len(i)), (i, j)), shape=(n, n))
    adj.data[:] = 1.0  # duplicates summed: back to 0/1
    deg = np.asarray(adj.sum(axis=1)).ravel()
    lap = identity(n) - diags(1.0 / np.maximum(deg, 1)) @ adj
    x, y, z = mesh.vertices.T
    from unitalker.synth import mesh as M

    lips = (np.abs(x) < 0.04) & (np.abs(y - M.Y_MOUTH) < 0.02) & (z > 0.02)
    eyes = (np.abs(np.abs(x) - 0.032) < 0.022) & (np.abs(y - 0.022) < 0.02) & (z > 0.02)
    w = np.where(lips | eyes, 0.0, 1.0)
    one = identity(n) - step * diags(w) @ lap
    out = identity(n)
    for _ in range(iterations):
        out = one @ out
    return csr_matrix(out, dtype=np.float32)


def dressing_for(convention: str) -> Dressing | None:
    """The dressing of a convention drawn on a synth head topology, else None."""
    from unitalker import conventions as registry
    from unitalker.synth.conventions import TOPOLOGY_OF, attach_arkit_rig

    topo = TOPOLOGY_OF.get(convention)
    if topo is None:
        # another ARKit convention given the synth rig (attach_arkit_rig) is drawn dressed too
        try:
            res = dict(registry.get(convention).resources)
        except KeyError:
            return None
        rig = attach_arkit_rig()
        if (
            res.get("rig_basis") == rig["rig_basis"]
            and res.get("rig_meanshape") == rig["rig_meanshape"]
        ):
            topo = "head"
    return build_dressing(topo) if topo is not None else None


# --------------------------------------------------------------------------------------
# Procedural blink and idle motion


@dataclass(frozen=True)
class IdleMotion:
    """A seeded procedural blink and a slow, small head sway, as functions of time.

    Blinks come every 2-6 s (first one after ~1 s), close in 70 ms, hold 40 ms and open in
    150 ms; the head turns by up to ~1.5 degrees (sums of slow sines). Deterministic in
    ``seed``, so every panel of a video blinks together.
    """

    seed: int = 0
    sway_deg: float = 1.5

    @functools.cached_property
    def _blinks(self) -> np.ndarray:
        rng = np.random.default_rng(self.seed)
        gaps = rng.uniform(2.0, 6.0, size=400)
        return 0.9 + np.concatenate([[0.0], np.cumsum(gaps)])

    def blink(self, t: float) -> float:
        """Eyelid closure in [0, 1] at time ``t`` seconds."""
        starts = self._blinks
        i = int(np.searchsorted(starts, t, side="right")) - 1
        if i < 0:
            return 0.0
        dt = t - starts[i]
        close, hold, open_ = 0.07, 0.04, 0.15
        if dt < close:
            return float(np.sin(0.5 * np.pi * dt / close))
        if dt < close + hold:
            return 1.0
        if dt < close + hold + open_:
            u = (dt - close - hold) / open_
            return float(0.5 + 0.5 * np.cos(np.pi * u))
        return 0.0

    def rotation(self, t: float) -> np.ndarray:
        """``[3, 3]`` head rotation at time ``t`` (yaw and pitch, a little roll)."""
        a = np.radians(self.sway_deg)
        ph = self.seed * 0.7
        yaw = a * (0.6 * np.sin(2 * np.pi * 0.11 * t + ph) + 0.4 * np.sin(2 * np.pi * 0.27 * t))
        pitch = a * 0.6 * (0.7 * np.sin(2 * np.pi * 0.17 * t + 1.3 + ph) + 0.3 * np.sin(0.9 * t))
        roll = a * 0.3 * np.sin(2 * np.pi * 0.07 * t + 2.1)
        cy, sy = np.cos(yaw), np.sin(yaw)
        cp, sp = np.cos(pitch), np.sin(pitch)
        cr, sr = np.cos(roll), np.sin(roll)
        ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
        rx = np.array([[1, 0, 0], [0, cp, -sp], [0, sp, cp]])
        rz = np.array([[cr, -sr, 0], [sr, cr, 0], [0, 0, 1]])
        return (ry @ rx @ rz).astype(np.float32)

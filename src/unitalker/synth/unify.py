"""Convert every A2F-Synth convention into ``synth_head_vertices`` (Table 4's baseline).

The paper's "data preprocessing" baseline converts every dataset's annotation into one
common convention (FLAME vertices: retopology for other meshes, a blendshape set with
ARKit semantics on the FLAME mesh for ARKit weights, the FLAME model for FLAME params)
and trains a one-head model on the union. Here the common convention is
``synth_head_vertices`` (the ``head`` mesh, S0's annotation) and two methods exist:

``rig`` (exact, the generator's own maps)
    Every synth convention is rendered from ARKit-52 weights through a linear rig, so
    the weights can be recovered (least squares on the ``head2`` rig, or the jaw angles
    and expression coefficients of the FLAME-like params) and re-rendered on the
    ``head`` rig: the result is what S0's renderer would have produced for the same
    clip. Only the identity's neutral shape needs a surface transfer (below).
``surface`` (what one does without the generator)
    ``head2`` frames are transferred to the ``head`` mesh by interpolation in the
    shared surface parametrisation (theta, phi), upper and lower lip kept apart (the
    analogue of retopology); FLAME-like params go through the convention's own vertex
    function (linear blend skinning of the jaw, where the ``head`` rig uses a jaw
    blendshape); ARKit weights through the rig, as the paper.

ARKit and FLAME-like datasets are identity-free (zero templates), so their converted
clips get the mean head as template. :func:`conversion_error` measures, on generated
clips, how far each method lands from the ``head`` rendering of the same articulation.
"""

from __future__ import annotations

import functools
import json
import logging
import os
from pathlib import Path

import numpy as np

from unitalker.synth.conventions import (
    ARKIT,
    FLAME,
    FLAME_JAW_CHANNELS,
    HEAD,
    HEAD2,
    JAW_SIDE_ANGLE,
    asset,
)

log = logging.getLogger(__name__)

COMMON = HEAD
METHODS = ("rig", "surface")
CONVERTIBLE = (HEAD, HEAD2, ARKIT, FLAME)


@functools.lru_cache(maxsize=1)
def _surface_map() -> tuple[np.ndarray, np.ndarray]:
    """Barycentric transfer ``head2 -> head`` in (theta, phi): ``(idx [V1, 3], w [V1, 3])``.

    Each ``head`` vertex is located in a Delaunay triangulation of the ``head2``
    vertices' surface parameters; vertices above the mouth line use only the upper-lip
    copies of the slit and vertices below only the lower-lip copies, so the lips part
    as they should. Points outside the triangulation (the seam at the back of the head)
    take their nearest neighbour.
    """
    from scipy.spatial import Delaunay, cKDTree

    src, dst = asset("head2"), asset("head")
    tp_s, tp_d = src["theta_phi"].astype(np.float64), dst["theta_phi"].astype(np.float64)
    side_s, side_d = src["side"], dst["side"]
    idx = np.zeros((len(tp_d), 3), np.int64)
    w = np.zeros((len(tp_d), 3), np.float64)
    for half, keep_s, take_d in ((1, side_s >= 0, side_d >= 0), (-1, side_s <= 0, side_d < 0)):
        pool = np.nonzero(keep_s)[0]
        tri = Delaunay(tp_s[pool])
        pts = tp_d[take_d]
        simplex = tri.find_simplex(pts)
        t = tri.transform[simplex]  # [N, 3, 2]
        b = np.einsum("nij,nj->ni", t[:, :2], pts - t[:, 2])
        bary = np.concatenate([b, 1 - b.sum(1, keepdims=True)], 1)
        verts = pool[tri.simplices[simplex]]
        outside = simplex < 0
        if outside.any():
            _, nn = cKDTree(tp_s[pool]).query(pts[outside])
            verts[outside] = pool[nn][:, None]
            bary[outside] = [1.0, 0.0, 0.0]
        rows = np.nonzero(take_d)[0]
        idx[rows], w[rows] = verts, bary
        log.debug("surface map half %d: %d points, %d outside", half, len(pts), outside.sum())
    return idx, w


def transfer_head2(vertices: np.ndarray) -> np.ndarray:
    """``head2`` vertices ``[T, V2*3]`` (or ``[V2*3]``) -> ``head`` vertices ``[T, V1*3]``
    by surface interpolation (the ``surface`` method; also the templates of ``rig``).

    What is interpolated is the displacement from the mean head, whose shape both meshes
    ship: interpolating absolute positions would cut every curved triangle's chord."""
    idx, w = _surface_map()
    v = np.asarray(vertices, np.float64)
    single = v.ndim == 1
    n2 = asset("head2")["neutral"].astype(np.float64)
    v = v.reshape(1 if single else len(v), -1, 3) - n2[None]
    out = np.einsum("tvkc,vk->tvc", v[:, idx], w) + asset("head")["neutral"][None]
    out = out.reshape(len(v), -1)
    return (out[0] if single else out).astype(np.float32)


def _basis(topo: str) -> np.ndarray:
    b = asset(topo)["rig_basis"].astype(np.float64)
    return b.reshape(len(b), -1)  # [52, V*3]


def _arkit_on_head(weights: np.ndarray) -> np.ndarray:
    return weights.astype(np.float64) @ _basis("head")  # offsets [T, V1*3]


def head2_weights(vertices: np.ndarray, template: np.ndarray) -> np.ndarray:
    """ARKit weights ``[T, 52]`` that render ``head2`` frames on the ``head2`` rig (least
    squares, minimum norm: the rig has dependent channels, whose split is arbitrary but
    renders identically on either mesh because both rigs are the same fields)."""
    off = np.asarray(vertices, np.float64) - np.asarray(template, np.float64).reshape(1, -1)
    return off @ _head2_pinv()


@functools.lru_cache(maxsize=1)
def _head2_pinv() -> np.ndarray:
    return np.linalg.pinv(_basis("head2"), rcond=1e-8)  # [V2*3, 52]


def flame_offsets_rig(params: np.ndarray) -> np.ndarray:
    """FLAME-like params ``[T, 43]`` -> ``head`` offsets ``[T, V1*3]`` through the ``head``
    rig: expression coefficients times their directions (a basis of the rig's non-jaw
    span) plus the jaw channels recovered from the jaw angles."""
    from unitalker.conventions import ARKIT52_EMOTALK
    from unitalker.synth.mesh import JAW_MAX_ANGLE

    p = np.asarray(params, np.float64)
    dirs = asset("flame")["exprdirs"].astype(np.float64).reshape(len(p[0]) - 3, -1)
    w = np.zeros((len(p), len(ARKIT52_EMOTALK)))
    i = {n: ARKIT52_EMOTALK.index(n) for n in FLAME_JAW_CHANNELS}
    w[:, i["jawOpen"]] = p[:, 0] / JAW_MAX_ANGLE
    side = p[:, 1] / JAW_SIDE_ANGLE
    w[:, i["jawLeft"]], w[:, i["jawRight"]] = np.maximum(side, 0), np.maximum(-side, 0)
    return p[:, 3:] @ dirs + _arkit_on_head(w)


def to_common(
    convention: str, data: np.ndarray, template: np.ndarray | None, method: str = "rig"
) -> tuple[np.ndarray, np.ndarray]:
    """One clip of a synth convention -> ``synth_head_vertices``.

    Args:
        convention: the clip's convention (one of :data:`CONVERTIBLE`).
        data: ``[T, dim]`` raw annotation.
        template: ``[dim]`` the subject's template in that convention (vertex
            conventions; ignored for the identity-free ones).
        method: ``rig`` (exact) or ``surface`` (module docstring).

    Returns:
        ``(frames [T, V1*3], template [V1*3])`` on the ``head`` mesh, float32.
    """
    if method not in METHODS:
        raise ValueError(f"unknown conversion method {method!r}; choose from {METHODS}")
    data = np.asarray(data, np.float32).reshape(len(data), -1)
    neutral = asset("head")["neutral"].reshape(-1).astype(np.float64)
    if convention == HEAD:
        return data, np.asarray(template, np.float32).reshape(-1)
    if convention == HEAD2:
        tpl = transfer_head2(np.asarray(template).reshape(-1)).astype(np.float64)
        if method == "surface":
            return transfer_head2(data), tpl.astype(np.float32)
        out = tpl + _arkit_on_head(head2_weights(data, np.asarray(template).reshape(-1)))
    elif convention == ARKIT:
        tpl, out = neutral, neutral + _arkit_on_head(data)
    elif convention == FLAME:
        tpl = neutral
        if method == "surface":
            from unitalker.geometry import vertices

            out = vertices(FLAME, data).reshape(len(data), -1)
        else:
            out = neutral + flame_offsets_rig(data)
    else:
        raise ValueError(
            f"{convention!r} cannot be converted to {COMMON}; it must be one of {CONVERTIBLE}"
        )
    return out.astype(np.float32), tpl.astype(np.float32)


def write_unified(
    src: str | Path, out: str | Path, datasets: list[str], method: str = "rig"
) -> Path:
    """Write a release-layout root where every dataset of ``datasets`` is in
    ``synth_head_vertices``: native ones are linked, the others converted clip by clip
    (audio linked). Idempotent: a dataset folder with a ``.done`` marker is kept.

    Args:
        src: the A2F-Synth release layout (``scripts/prepare_synth.sh``).
        out: the new root (created).
        datasets: dataset keys to include.
        method: ``rig`` or ``surface``.

    Returns:
        ``out``.
    """
    from unitalker.data import load_manifest

    man = load_manifest(src)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    for key in datasets:
        folder = out / key
        parts = [man.split(s).part(key) for s in man.split_names if key in man.split(s).datasets]
        if not parts:
            raise ValueError(f"{src}: no dataset {key!r}")
        if (folder / ".done").exists():
            continue
        if parts[0].convention == COMMON:
            if not folder.exists():
                os.symlink(parts[0].folder.resolve(), folder, target_is_directory=True)
            continue
        (folder / "annot").mkdir(parents=True, exist_ok=True)
        (folder / "audio").mkdir(exist_ok=True)
        templates: dict[int, np.ndarray] = {}
        for part in parts:
            rows = []
            for e in part.entries:
                raw = np.load(e.annot_path)
                tpl_src = part.template(e.local_id) if part.templates is not None else None
                frames, tpl = to_common(part.convention, raw, tpl_src, method)
                templates[e.local_id] = tpl
                stem = e.name.replace("/", "_")
                np.save(folder / "annot" / f"{stem}.npy", frames, allow_pickle=False)
                audio = folder / "audio" / f"{stem}{Path(e.audio_path).suffix}"
                if not audio.exists():
                    os.symlink(Path(e.audio_path).resolve(), audio)
                rows.append(
                    {
                        "annot_path": f"annot/{stem}.npy",
                        "audio_path": f"audio/{audio.name}",
                        "id": e.local_id,
                        "annot_type": COMMON,
                        "dataset": key,
                        "fps": e.fps,
                    }
                )
            doc = {"info": {"id_list": part.id_list}, "data": rows}
            (folder / f"{part.split}.json").write_text(json.dumps(doc, indent=1) + "\n")
        n_ids = max(len(parts[0].id_list), max(templates) + 1)
        neutral = asset("head")["neutral"].reshape(-1).astype(np.float32)
        table = np.stack([templates.get(i, neutral) for i in range(n_ids)])
        np.save(folder / "id_template.npy", table, allow_pickle=False)
        (folder / ".done").write_text(method + "\n")
        log.info("converted %s (%s) to %s by %s", key, parts[0].convention, COMMON, method)
    return out


def conversion_error(n_clips: int = 4, seed: int = 0) -> dict[str, dict[str, float]]:
    """Mean and max vertex error (metres) of each method against the ``head`` rendering
    of the same articulation, per source convention, on ``n_clips`` generated clips."""
    from unitalker.synth.articulation import timeline_to_articulation
    from unitalker.synth.conventions import identity_template, render

    rng = np.random.default_rng(seed)
    visemes = ("aa", "oh", "ou", "E", "PP", "FF", "SS", "TH", "CH", "RR")
    errs: dict[str, dict[str, list[float]]] = {}
    for _ in range(n_clips):
        # a random 3 s viseme sequence (90 frames at 30 fps)
        bounds = np.sort(rng.uniform(0, 3, 24))
        timeline = [
            (visemes[int(rng.integers(len(visemes)))], float(a), float(b))
            for a, b in zip(bounds[::2], bounds[1::2], strict=True)
        ]
        curves = timeline_to_articulation(timeline, 30.0, seed=rng, n_frames=90)
        ident = int(rng.integers(2**31))
        for conv in (HEAD2, ARKIT, FLAME):
            vertex = conv == HEAD2
            truth = render(HEAD, curves, ident if vertex else None).reshape(90, -1, 3)
            data = render(conv, curves, ident if vertex else None)
            tpl = identity_template(conv, ident).reshape(-1) if vertex else None
            for method in METHODS:
                got = to_common(conv, data, tpl, method)[0].reshape(90, -1, 3)
                d = np.linalg.norm(got - truth, axis=-1)
                e = errs.setdefault(f"{conv} {method}", {"mean": [], "max": []})
                e["mean"].append(float(d.mean()))
                e["max"].append(float(d.max()))
    return {
        k: {"mean": float(np.mean(v["mean"])), "max": float(np.max(v["max"]))}
        for k, v in errs.items()
    }

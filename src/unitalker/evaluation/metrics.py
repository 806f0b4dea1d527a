"""Lip-sync and face metrics as the field computes them (formats.md Sec. 5).

All functions take vertex sequences ``[T, V, 3]`` (numpy); the prediction is cut to the
ground-truth length first. Per-sequence values are combined two ways, both reported:

* **frame-pooled** (CodeTalker / FaceDiffuser): every frame of every sequence weighs
  the same, ``sum over sequences of per-frame values / total frames``;
* **per-sequence** (the original UniTalker code): the mean over sequences of each
  sequence's mean.

UFVE is the paper's (Sec. 4.2, "following FaceDiffuser"): the MEAN L2 distance over the
upper-face vertices, MVE's form on the upper face, in the data's units (m for VOCASET).
The other form in use, LVE's per-frame MAX SQUARED distance taken over the upper face
(the form of EmoTalk's eye-region EVE), is reported as ``UFVE-max``; on real data it is
about an order of magnitude apart, so the two must never share a name.

A metric is only called LVE / LVD / UFVE / FDD when the convention has the region it is
defined on. Without a lip region the max is taken over all vertices and the numbers are
named ``LVE-all`` / ``LVD-all``; without an upper-face region UFVE would equal MVE and is
not reported, and FDD over all vertices is ``FDD-all``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

METRICS = ("LVE", "LVD", "MVE", "UFVE", "UFVE-max", "FDD", "FDD_abs")
"""The metrics on their regions, in report order."""
ALL_VERTEX_METRICS = ("LVE-all", "LVD-all", "FDD-all", "FDD_abs-all")
"""Their stand-ins when a convention has no lip / upper-face region (all vertices)."""
REPORT_ORDER = (
    "LVE",
    "LVE-all",
    "LVD",
    "LVD-all",
    "MVE",
    "UFVE",
    "UFVE-max",
    "FDD",
    "FDD-all",
    "FDD_abs",
    "FDD_abs-all",
)


def metric_names(lip_region: bool, upper_region: bool) -> tuple[str, ...]:
    """The names the metrics of one dataset carry, given which regions it has."""
    lip = ("LVE", "LVD") if lip_region else ("LVE-all", "LVD-all")
    upper = ("UFVE", "UFVE-max", "FDD", "FDD_abs") if upper_region else ("FDD-all", "FDD_abs-all")
    return tuple(m for m in REPORT_ORDER if m in (*lip, "MVE", *upper))


def _cut(pred: np.ndarray, gt: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    t = min(len(pred), len(gt))
    if len(pred) < len(gt):
        raise ValueError(f"prediction has {len(pred)} frames, ground truth {len(gt)}")
    return np.asarray(pred[:t], np.float64), np.asarray(gt[:t], np.float64)


def lip_sq_max(pred: np.ndarray, gt: np.ndarray, lip: np.ndarray | None) -> np.ndarray:
    """Per frame: max over lip vertices of the SQUARED L2 distance ``[T]`` (LVE's frames)."""
    p, g = _cut(pred, gt)
    if lip is not None:
        p, g = p[:, lip], g[:, lip]
    return ((p - g) ** 2).sum(-1).max(-1)


def lip_dist_max(pred: np.ndarray, gt: np.ndarray, lip: np.ndarray | None) -> np.ndarray:
    """Per frame: max over lip vertices of the (non-squared) L2 distance ``[T]`` (LVD)."""
    return np.sqrt(lip_sq_max(pred, gt, lip))


def vertex_dist_mean(pred: np.ndarray, gt: np.ndarray, idx: np.ndarray | None = None) -> np.ndarray:
    """Per frame: mean over vertices (all, or ``idx``) of the L2 distance ``[T]`` (MVE / UFVE)."""
    p, g = _cut(pred, gt)
    if idx is not None:
        p, g = p[:, idx], g[:, idx]
    return np.sqrt(((p - g) ** 2).sum(-1)).mean(-1)


def dynamics(verts: np.ndarray, template: np.ndarray, upper: np.ndarray | None) -> float:
    """CodeTalker's face dynamics: std over time (ddof 0) of per-vertex ``sum(motion^2)``,
    mean over upper-face vertices, with ``motion = verts - template``."""
    v = np.asarray(verts, np.float64) - np.asarray(template, np.float64).reshape(1, -1, 3)
    if upper is not None:
        v = v[:, upper]
    d = (v**2).sum(-1)  # [T, U]
    return float(d.std(axis=0, ddof=0).mean())


def fdd(pred: np.ndarray, gt: np.ndarray, template: np.ndarray, upper: np.ndarray | None) -> float:
    """Signed FDD of one sequence: ``dynamics(gt) - dynamics(pred)``."""
    p, g = _cut(pred, gt)
    return dynamics(g, template, upper) - dynamics(p, template, upper)


@dataclass
class SequenceScores:
    """Per-frame values of one sequence and its FDD (``ufve_max``: LVE's form on the upper
    face; None when not computed)."""

    name: str
    lve: np.ndarray
    mve: np.ndarray
    ufve: np.ndarray
    fdd: float
    ufve_max: np.ndarray | None = None

    @property
    def frames(self) -> int:
        return len(self.lve)


def score_sequence(
    name: str,
    pred: np.ndarray,
    gt: np.ndarray,
    template: np.ndarray,
    lip: np.ndarray | None,
    upper: np.ndarray | None,
) -> SequenceScores:
    """Every metric's per-frame values for one sequence (``[T, V, 3]`` arrays)."""
    return SequenceScores(
        name,
        lip_sq_max(pred, gt, lip),
        vertex_dist_mean(pred, gt),
        vertex_dist_mean(pred, gt, upper),
        fdd(pred, gt, template, upper),
        lip_sq_max(pred, gt, upper),
    )


@dataclass
class MetricSummary:
    """One dataset's metrics, both ways of averaging."""

    n_sequences: int
    n_frames: int
    pooled: dict[str, float] = field(default_factory=dict)
    per_sequence: dict[str, float] = field(default_factory=dict)


def summarize(
    scores: Sequence[SequenceScores], *, lip_region: bool = True, upper_region: bool = True
) -> MetricSummary:
    """Frame-pooled and per-sequence averages of LVE, LVD, MVE, UFVE, UFVE-max, FDD (+ FDD_abs).

    FDD is one value per sequence, so its two averages coincide (mean over sequences);
    FDD_abs is the mean of absolute per-sequence values. ``lip_region`` / ``upper_region``
    False: the scores were computed over all vertices, and the metrics are named for it
    (:func:`metric_names`).
    """
    if not scores:
        raise ValueError("no sequences to summarize")
    per_frame = {
        "LVE": [s.lve for s in scores],
        "LVD": [np.sqrt(s.lve) for s in scores],
        "MVE": [s.mve for s in scores],
        "UFVE": [s.ufve for s in scores],
    }
    if all(s.ufve_max is not None for s in scores):
        per_frame["UFVE-max"] = [s.ufve_max for s in scores]
    out = MetricSummary(len(scores), sum(s.frames for s in scores))
    for k, arrs in per_frame.items():
        out.pooled[k] = float(np.concatenate(arrs).mean())
        out.per_sequence[k] = float(np.mean([a.mean() for a in arrs]))
    f = np.array([s.fdd for s in scores])
    for d in (out.pooled, out.per_sequence):
        d["FDD"] = float(f.mean())
        d["FDD_abs"] = float(np.abs(f).mean())
    if not (lip_region and upper_region):
        rename = {} if lip_region else {"LVE": "LVE-all", "LVD": "LVD-all"}
        if not upper_region:
            rename.update({"FDD": "FDD-all", "FDD_abs": "FDD_abs-all"})
        keep = set(metric_names(lip_region, upper_region))
        for d in (out.pooled, out.per_sequence):
            renamed = {rename.get(k, k): v for k, v in d.items()}
            d.clear()
            d.update({k: v for k, v in renamed.items() if k in keep})
    return out

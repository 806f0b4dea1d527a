"""The training loss of UniTalker (Eq. 2 of the paper), masked by valid frames.

``L = l(verts_pred, verts_gt) + alpha * l(pca_pred, pca_gt) + beta * l(theta_pred, theta_gt)``

(plus, when asked for, ``lip * l(lips_pred, lips_gt)`` on the lip region's vertices and
``velocity * l(dverts_pred, dverts_gt)`` on the frame-to-frame vertex differences, and
``contact * l(gap_pred, gap_gt)`` on the lip gap of frames whose label lips are closed:
extensions, off by default)

with ``l`` the mean squared error over valid frames and all channels, and per convention:

* vertex conventions: the vertex term on the predicted vertices; PCA heads add the PCA
  term on coefficients (ground truth projected with the head's PCA layer);
* blendshape conventions: the vertex term through the rig when the convention has one,
  and the parameter term on the weights;
* parameter conventions: the parameter term, and the vertex term when a rig exists
  (FLAME LBS with a user FLAME file, A2F-Synth's FLAME-like model).

The vertex maps are the conventions' rigs (:mod:`unitalker.geometry`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from unitalker import conventions
from unitalker.training.config import CONTACT_FRAMES


@dataclass
class LossTerms:
    """The loss and its (unweighted) terms; absent terms are None."""

    total: torch.Tensor
    vertex: torch.Tensor | None = None
    pca: torch.Tensor | None = None
    param: torch.Tensor | None = None
    lip: torch.Tensor | None = None
    velocity: torch.Tensor | None = None
    contact: torch.Tensor | None = None
    viseme: torch.Tensor | None = None

    def as_floats(self) -> dict[str, float]:
        out = {"loss": float(self.total.detach())}
        for k in ("vertex", "pca", "param", "lip", "velocity", "contact", "viseme"):
            v = getattr(self, k)
            if v is not None:
                out[k] = float(v.detach())
        return out


def masked_mse(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Mean of ``(pred - target)^2`` over valid frames and every channel.

    Args:
        pred, target: ``[B, T, ...]``.
        mask: ``[B, T]`` True on valid frames, or None (all valid).
    """
    d = (pred.float() - target.float()) ** 2
    d = d.reshape(d.shape[0], d.shape[1], -1)  # [B, T, C]
    if mask is None:
        return d.mean()
    m = mask.to(d.dtype)[..., None]
    return (d * m).sum() / (m.sum() * d.shape[-1]).clamp_min(1.0)


CLOSURE_MAX_S = 0.2  # a closed run of the label's lips this short is a closure, not rest


def short_runs(flags: torch.Tensor, max_len: int, mask: torch.Tensor | None = None) -> torch.Tensor:
    """``[B, T]`` bool: the True runs of ``flags`` at most ``max_len`` long with a False
    frame on both sides inside the valid frames (``mask``, a prefix of each row; a run
    touching either end of them may be a cut-off rest)."""
    f = flags.detach().cpu().numpy()
    valid = np.full(len(f), f.shape[1]) if mask is None else mask.detach().cpu().numpy().sum(1)
    out = np.zeros_like(f)
    for b, row in enumerate(f):
        n = int(valid[b])
        edges = np.flatnonzero(np.diff(np.concatenate([[0], row[:n].astype(np.int8), [0]])))
        for s, e in zip(edges[::2], edges[1::2], strict=True):  # run = row[s:e]
            if s > 0 and e < n and e - s <= max_len:
                out[b, s:e] = True
    return torch.as_tensor(out, device=flags.device)


class UniTalkerLoss(nn.Module):
    """Eq. 2 for one batch of one convention.

    Args:
        vertex_maps: convention -> differentiable ``[N, D] -> [N, V, 3]`` rig or None
            (see :func:`unitalker.geometry.rig_for`).
        alpha, beta: PCA and parameter weights (0.01, 1e-4).
        vertex_weight: weight of the vertex term (1).
        lip_weight: weight of the lip term (0: none): the vertex MSE over the vertices of
            ``lip_regions[convention]`` only.
        lip_regions: convention -> ``[L]`` vertex indices of its lip region.
        velocity_weight: weight of the velocity term (0: none): the MSE of the vertices'
            frame-to-frame differences, over pairs of valid frames.
        contact_weight: weight of the lip-contact term (0: none): the squared error of the
            lip gap (distance of the ``lip_pairs[convention]`` midline vertices) over the
            valid frames whose label gap is at most ``rest + contact_tol * open_range``
            (the label's lips are closed: /p/, /b/, /m/ and rest), after Imitator's lip
            contact loss (Thambiraja et al., ICCV 2023), which counts bilabial frames.
        lip_pairs: convention -> ``(upper, lower, rest, open_range)``: the midline vertex
            pair, its distance at rest and its added opening on a wide /a/ (metres).
        contact_tol: closed = label opening within this share of the open range.
        contact_frames: ``label``: the frames where the label's lips are closed;
            ``closures``: the label's closed runs of at most :data:`CLOSURE_MAX_S` between
            open frames (the bilabials, as Imitator's term, without the rests); ``all``:
            every valid frame (a lip-gap MSE).
        viseme_weight: weight of the viseme term (0: none): the cross-entropy of the
            viseme classifier's logits against each labelled valid frame's class.
    """

    def __init__(
        self,
        vertex_maps: dict[str, nn.Module | None],
        alpha: float = 0.01,
        beta: float = 1e-4,
        vertex_weight: float = 1.0,
        lip_weight: float = 0.0,
        lip_regions: dict[str, torch.Tensor] | None = None,
        velocity_weight: float = 0.0,
        contact_weight: float = 0.0,
        lip_pairs: dict[str, tuple[int, int, float, float]] | None = None,
        contact_tol: float = 0.1,
        contact_frames: str = "label",
        viseme_weight: float = 0.0,
    ):
        super().__init__()
        self.maps = nn.ModuleDict({k: v for k, v in vertex_maps.items() if v is not None})
        self.alpha, self.beta, self.vertex_weight = alpha, beta, vertex_weight
        self.lip_weight = lip_weight
        self.lips = dict(lip_regions or {}) if lip_weight > 0 else {}
        self.velocity_weight = velocity_weight
        self.contact_weight = contact_weight
        self.pairs = dict(lip_pairs or {}) if contact_weight > 0 else {}
        self.contact_tol = contact_tol
        if contact_frames not in CONTACT_FRAMES:
            raise ValueError(
                f"contact_frames must be one of {CONTACT_FRAMES}, got {contact_frames!r}"
            )
        self.contact_frames = contact_frames
        self.viseme_weight = viseme_weight

    def forward(
        self,
        convention: str,
        pred: torch.Tensor,
        target: torch.Tensor,
        mask: torch.Tensor | None,
        coeffs: torch.Tensor | None = None,
        target_coeffs: torch.Tensor | None = None,
        viseme_logits: torch.Tensor | None = None,
        visemes: torch.Tensor | None = None,
    ) -> LossTerms:
        """Args:
        convention: the batch's convention.
        pred, target: ``[B, T, D]`` motion (template included).
        mask: ``[B, T]`` valid frames.
        coeffs / target_coeffs: ``[B, T, K]`` PCA coefficients (PCA heads).
        viseme_logits / visemes: ``[B, T, C]`` the viseme classifier's logits and
            ``[B, T]`` int64 classes (-1: unlabelled); the viseme term needs both.
        """
        conv = conventions.get(convention)
        t = min(pred.shape[1], target.shape[1])
        pred, target = pred[:, :t], target[:, :t]
        mask = None if mask is None else mask[:, :t]
        total = pred.new_zeros((), dtype=torch.float32)
        terms = LossTerms(total)
        b = pred.shape[0]
        vp = vt = None  # [B, T, V, 3] vertices, where the convention has them
        if conv.kind == "vertices":
            terms.vertex = masked_mse(pred, target, mask)
            if convention in self.lips or convention in self.pairs or self.velocity_weight > 0:
                vp, vt = pred.reshape(b, t, -1, 3), target.reshape(b, t, -1, 3)
        else:
            terms.param = masked_mse(pred, target, mask)
            vmap = self.maps[convention] if convention in self.maps else None  # noqa: SIM401 - ModuleDict has no get()
            if vmap is not None:
                vp = vmap(pred.reshape(b * t, -1).float()).reshape(b, t, -1, 3)
                vt = vmap(target.reshape(b * t, -1).float()).reshape(b, t, -1, 3)
                terms.vertex = masked_mse(vp, vt, mask)
        lip = self.lips.get(convention)
        if lip is not None and vp is not None:
            if int(lip.max()) >= vp.shape[2]:
                raise ValueError(
                    f"the lip region of {convention} indexes vertex {int(lip.max())}, but its "
                    f"vertices number {vp.shape[2]} (a rig on a vertex subset?)"
                )
            lip = lip.to(vp.device)
            terms.lip = masked_mse(vp[:, :, lip], vt[:, :, lip], mask)
        if self.velocity_weight > 0 and vp is not None and t > 1:
            pairs = None if mask is None else mask[:, 1:] & mask[:, :-1]
            terms.velocity = masked_mse(vp.diff(dim=1), vt.diff(dim=1), pairs)
        pair = self.pairs.get(convention)
        if pair is not None and vp is not None:
            up, lo, rest, span = pair
            gp = (vp[:, :, up] - vp[:, :, lo]).norm(dim=-1)  # [B, T]
            gt = (vt[:, :, up] - vt[:, :, lo]).norm(dim=-1)
            closed = gt <= rest + self.contact_tol * span
            if self.contact_frames == "closures":
                closed = short_runs(closed, max(1, round(CLOSURE_MAX_S * conv.fps)), mask)
            elif self.contact_frames == "all":
                closed = torch.ones_like(closed)
            if mask is not None:
                closed = closed & mask
            terms.contact = masked_mse(gp, gt, closed)
        if coeffs is not None and target_coeffs is not None:
            terms.pca = masked_mse(coeffs[:, :t], target_coeffs[:, :t], mask)
        if self.viseme_weight > 0 and viseme_logits is not None and visemes is not None:
            tv = min(t, viseme_logits.shape[1], visemes.shape[1])
            labels = visemes[:, :tv].clone()
            if mask is not None:
                labels[~mask[:, :tv]] = -1
            if bool((labels >= 0).any()):  # a batch without labels adds no term (not NaN)
                terms.viseme = nn.functional.cross_entropy(
                    viseme_logits[:, :tv].reshape(-1, viseme_logits.shape[-1]).float(),
                    labels.reshape(-1),
                    ignore_index=-1,
                )
        if terms.vertex is not None:
            total = total + self.vertex_weight * terms.vertex
        if terms.lip is not None:
            total = total + self.lip_weight * terms.lip
        if terms.velocity is not None:
            total = total + self.velocity_weight * terms.velocity
        if terms.contact is not None:
            total = total + self.contact_weight * terms.contact
        if terms.viseme is not None:
            total = total + self.viseme_weight * terms.viseme
        if terms.pca is not None:
            total = total + self.alpha * terms.pca
        if terms.param is not None:
            total = total + self.beta * terms.param
        terms.total = total
        return terms

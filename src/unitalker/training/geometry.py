"""Differentiable "to vertices" maps, one per convention (used by the loss and the metrics).

* vertex conventions: a reshape;
* blendshape conventions with a rig (``rig_meanshape`` + ``rig_basis`` resources):
  ``meanshape + weights @ basis``;
* ``flame_params_from_dadhead`` (D5): FLAME linear blend skinning, when the user gives a
  FLAME model file (``--flame-model``), optionally on a face-region vertex subset;
* A2F-Synth's ``synth_flame_params``: its own jaw-skinning + linear expression model,
  ported to torch from :func:`unitalker.synth.conventions.flame_params_to_vertices`.

Conventions with no map return None: the loss then has no vertex term for them and the
metrics cannot measure them.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch
from torch import nn

from unitalker import conventions

log = logging.getLogger(__name__)

FLAME_PARAMS = "flame_params_from_dadhead"
SYNTH_FLAME = "synth_flame_params"


class RigMap(nn.Module):
    """Blendshape weights ``[N, C]`` -> vertices ``[N, V, 3]`` through a linear rig."""

    def __init__(self, meanshape: np.ndarray, basis: np.ndarray):
        super().__init__()
        c = basis.shape[0]
        self.register_buffer(
            "mean", torch.as_tensor(np.asarray(meanshape, np.float32)).reshape(-1, 3)
        )
        self.register_buffer("basis", torch.as_tensor(np.asarray(basis, np.float32)).reshape(c, -1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        v = x.to(self.basis.dtype) @ self.basis  # [N, V*3]
        return v.reshape(x.shape[0], -1, 3) + self.mean


class VertexReshape(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.reshape(x.shape[0], -1, 3)


class FlameParamsMap(nn.Module):
    """The 413-d D5 vector (``[0:400]`` betas, ``[400:403]`` jaw) -> FLAME vertices."""

    def __init__(self, lbs: nn.Module):
        super().__init__()
        self.lbs = lbs

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = self.lbs.n_betas
        return self.lbs(x[:, :n], x[:, 400:403])


class SynthFlameMap(nn.Module):
    """A2F-Synth FLAME-like params ``[N, 3 + E]`` (jaw axis-angle, expression) -> head vertices."""

    def __init__(self, flame: dict[str, np.ndarray]):
        super().__init__()
        f32 = lambda a: torch.as_tensor(np.asarray(a, np.float32))  # noqa: E731
        self.register_buffer("template", f32(flame["template"]).reshape(-1, 3))
        self.register_buffer("exprdirs", f32(flame["exprdirs"]))  # [E, V, 3]
        self.register_buffer("jaw_weights", f32(flame["jaw_weights"]).reshape(-1))
        self.register_buffer("jaw_pivot", f32(flame["jaw_pivot"]).reshape(3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        from unitalker.training.flame import _rodrigues

        x = x.to(self.exprdirs.dtype)
        v = self.template + torch.einsum("nk,kvc->nvc", x[:, 3:], self.exprdirs)
        rot = _rodrigues(x[:, :3])
        rotated = torch.einsum("nij,nvj->nvi", rot, v - self.jaw_pivot) + self.jaw_pivot
        w = self.jaw_weights[None, :, None]
        return (1 - w) * v + w * rotated


def vertex_map(
    convention: str,
    *,
    flame_model: str | Path | None = None,
    flame_face_indices: str | Path | None = None,
) -> nn.Module | None:
    """The differentiable vertex map of a convention, or None when it has none.

    Args:
        convention: registered convention name.
        flame_model: FLAME model file for ``flame_params_from_dadhead``.
        flame_face_indices: ``.npy`` vertex subset for that FLAME map.
    """
    conv = conventions.get(convention)
    if conv.kind == "vertices":
        return VertexReshape()
    if conv.kind == "blendshapes" and conv.has_mesh:
        return RigMap(conv.resource("rig_meanshape"), conv.resource("rig_basis"))
    if convention == SYNTH_FLAME:
        try:
            from unitalker.synth.conventions import asset
        except ImportError:
            return None
        return SynthFlameMap(asset("flame"))
    if convention == FLAME_PARAMS and flame_model is not None:
        from unitalker.training.flame import FlameLBS, load_flame_model

        idx = None
        if flame_face_indices:
            idx = np.load(flame_face_indices, allow_pickle=False).astype(np.int64).reshape(-1)
        return FlameParamsMap(FlameLBS(load_flame_model(flame_model), face_indices=idx))
    return None

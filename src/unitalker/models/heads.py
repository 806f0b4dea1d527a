"""Output heads: one per annotation convention, and the PCA layer of vertex heads.

A head maps motion hidden states ``[B, T, H]`` to the convention's space. Heads are
zero-initialised (an untrained head outputs the identity template). Vertex heads of
PCA conventions predict ``K`` coefficients that the PCA layer decodes to ``V*3`` offsets.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch
from torch import nn

PCA_KEYS = (
    "components_to_data",
    "original_data_mean",
    "data_components_mean",
    "data_components_std",
    "explained_variance_ratio",
    "S",
)


class PCALayer(nn.Module):
    """Linear PCA decoding ``coeffs [.., K] -> data [.., D]`` (Eq. 1) and its inverse.

    Buffers hold the ``pca.npz`` arrays of the original release, so a checkpoint carries
    its PCA. Build it from arrays (:meth:`from_arrays`), never from a path.

    Args:
        n_components: K, how many leading components the head predicts.
        dim: D, the flattened data dimension.
    """

    def __init__(self, n_components: int, dim: int):
        super().__init__()
        self.n_components = n_components
        self.register_buffer("components_to_data", torch.zeros(n_components, dim))
        self.register_buffer("original_data_mean", torch.zeros(dim))

    @classmethod
    def from_arrays(
        cls, arrays: Mapping[str, np.ndarray], n_components: int | None = None
    ) -> PCALayer:
        comps = np.asarray(arrays["components_to_data"], dtype=np.float32)
        mean = np.asarray(arrays["original_data_mean"], dtype=np.float32).reshape(-1)
        k = comps.shape[0] if n_components is None else min(n_components, comps.shape[0])
        if comps.shape[1] != mean.shape[0]:
            raise ValueError(f"PCA components {comps.shape} do not match mean {mean.shape}")
        layer = cls(k, comps.shape[1])
        layer.components_to_data.copy_(torch.from_numpy(comps[:k]))
        layer.original_data_mean.copy_(torch.from_numpy(mean))
        return layer

    def decode(self, coeffs: torch.Tensor, offset: torch.Tensor | None = None) -> torch.Tensor:
        """``[.., K] -> [.., D]``: ``coeffs @ components + mean (+ offset)``.

        ``offset`` (broadcastable to the output, e.g. a template ``[B, 1, D]``) is added
        in the same GEMM as the mean: one pass over the output instead of two.
        """
        k = coeffs.shape[-1]
        comps = self.components_to_data  # [K, D]
        if k < comps.shape[0]:
            # Sliced only when needed: in an exported graph the slice's end would be the
            # coefficients' runtime shape, so the weight could never be folded or prepacked
            # (ONNX Runtime then copied 143 MB per run for BIWI and ran an unpacked GEMM).
            comps = comps[:k]
        bias = self.original_data_mean
        if offset is not None and offset.dim() == 3 and offset.shape[0] > 1:
            # per-sample offsets [B, 1, D]: a batched GEMM with the offsets as its input
            return torch.baddbmm(bias + offset, coeffs, comps.expand(coeffs.shape[0], -1, -1))
        if offset is not None:
            bias = bias + offset.reshape(-1)
        # linear(x, W^T, b) = x @ W + b, the bias added by the GEMM itself
        return nn.functional.linear(coeffs, comps.t(), bias)

    def encode(self, data: torch.Tensor) -> torch.Tensor:
        """``[.., D] -> [.., K]`` projection (rows of the components are orthonormal)."""
        return (data - self.original_data_mean) @ self.components_to_data.T


class DeepHead(nn.Module):
    """``layers - 1`` x (Linear + Tanh) then Linear, as the original ``OutHead``
    (parameter names ``head_layer.N``; default initialisation, as the original)."""

    def __init__(self, hidden: int, out_dim: int, n_layers: int):
        super().__init__()
        layers: list[nn.Module] = []
        for _ in range(n_layers - 1):
            layers += [nn.Linear(hidden, hidden), nn.Tanh()]
        layers.append(nn.Linear(hidden, out_dim))
        self.head_layer = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, T, H] -> [B, T, out_dim]``."""
        return self.head_layer(x)


def make_head(hidden: int, out_dim: int, n_layers: int = 1) -> nn.Module:
    """One head: a zero-initialised ``Linear(hidden, out_dim)`` (an untrained head outputs
    the template), or a :class:`DeepHead` of ``n_layers``."""
    if n_layers > 1:
        return DeepHead(hidden, out_dim, n_layers)
    head = nn.Linear(hidden, out_dim)
    nn.init.zeros_(head.weight)
    nn.init.zeros_(head.bias)
    return head


def head_out_dim(dim: int, pca: bool, n_components: int, max_components: int = 512) -> int:
    """The original's rule: ``min(512, annot_dim, n_pca_components)`` for PCA heads."""
    return min(max_components, dim, n_components) if pca else dim

"""Axis-angle rotations (the one Rodrigues formula of the package)."""

from __future__ import annotations

import torch


def rodrigues(aa: torch.Tensor) -> torch.Tensor:
    """Axis-angle ``[..., 3]`` -> rotation matrices ``[..., 3, 3]``.

    ``R = I + sin(a) K + (1 - cos(a)) K^2`` with ``K`` the cross-product matrix of the unit
    axis. The angle is ``sqrt(|aa|^2 + 1e-12)``, so the gradient is finite at ``aa = 0``
    (where ``R = I``).
    """
    angle = torch.sqrt((aa * aa).sum(-1, keepdim=True) + 1e-12)  # [..., 1]
    axis = aa / angle
    c, s = torch.cos(angle)[..., None], torch.sin(angle)[..., None]
    x, y, z = axis.unbind(-1)
    zero = torch.zeros_like(x)
    k = torch.stack([zero, -z, y, z, zero, -x, -y, x, zero], -1).reshape(*aa.shape[:-1], 3, 3)
    eye = torch.eye(3, dtype=aa.dtype, device=aa.device)
    return eye + s * k + (1 - c) * (k @ k)

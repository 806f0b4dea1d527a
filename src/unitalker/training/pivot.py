"""Pivot identity embedding (Sec. 3.3): replace the GT identity by the pivot, p = 0.1.

The draw uses its own seeded generator, so the replacement pattern is reproducible and
its state travels in the trainer checkpoint (exact resume).
"""

from __future__ import annotations

import torch


class PivotReplacer:
    """Replace each sample's identity by ``pivot_index`` with probability ``prob``.

    Args:
        pivot_index: the pivot row (the last identity).
        prob: replacement probability per sample and step (0.1 in the paper).
        seed: generator seed.
    """

    def __init__(self, pivot_index: int | None, prob: float = 0.1, seed: int = 0):
        self.pivot_index = pivot_index
        self.prob = prob if pivot_index is not None else 0.0
        self.generator = torch.Generator().manual_seed(seed)

    def __call__(self, identity: torch.Tensor) -> torch.Tensor:
        """``[B]`` identity indices -> ``[B]`` with some replaced by the pivot."""
        if self.prob <= 0:
            return identity
        draw = torch.rand(identity.shape, generator=self.generator) < self.prob
        return torch.where(
            draw.to(identity.device), torch.full_like(identity, self.pivot_index), identity
        )

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {"generator": self.generator.get_state()}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        self.generator.set_state(state["generator"])

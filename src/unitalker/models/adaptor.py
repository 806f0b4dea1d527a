"""The frequency adaptor: linear interpolation from encoder frames to motion frames.

The original interpolates with ``F.interpolate(mode="linear", align_corners=True)`` from
the encoder's 50 Hz to ``round(seconds * fps)`` frames. Where in the network it happens is
a model setting (``adaptor_position``): 0 before the encoder's transformer (after its conv
features), 1 after the encoder (default, the paper's choice), 2 after the motion decoder.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

POSITIONS = (0, 1, 2)


def interpolate(x: torch.Tensor, n_frames: int) -> torch.Tensor:
    """Resample ``[B, T, C] -> [B, n_frames, C]`` linearly with aligned end points."""
    if x.shape[1] == n_frames:
        return x
    if x.shape[1] == 1:  # a single input frame cannot be interpolated with aligned corners
        return x.expand(-1, n_frames, -1)
    y = F.interpolate(x.transpose(1, 2), size=n_frames, mode="linear", align_corners=True)
    return y.transpose(1, 2)


def adapt(x: torch.Tensor, in_lengths: list[int], out_lengths: list[int]) -> torch.Tensor:
    """Per-sample interpolation of a padded batch.

    Each sample's valid ``in_lengths[b]`` frames are mapped to ``out_lengths[b]`` frames, so
    padding never shifts the time axis; the result is zero-padded to ``max(out_lengths)``.

    Args:
        x: ``[B, T, C]`` padded features.
        in_lengths: valid input frames per sample.
        out_lengths: wanted output frames per sample.

    Returns:
        ``[B, max(out_lengths), C]``.
    """
    b = x.shape[0]
    if len(set(in_lengths)) == 1 and len(set(out_lengths)) == 1:
        return interpolate(x[:, : in_lengths[0]], out_lengths[0])
    out = x.new_zeros(b, max(out_lengths), x.shape[2])
    for i in range(b):
        out[i, : out_lengths[i]] = interpolate(x[i : i + 1, : in_lengths[i]], out_lengths[i])[0]
    return out

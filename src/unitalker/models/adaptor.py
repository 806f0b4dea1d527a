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


def interpolate(x: torch.Tensor, n_frames: int | torch.Tensor) -> torch.Tensor:
    """Resample ``[B, T, C] -> [B, n_frames, C]`` linearly with aligned end points.

    ``n_frames`` a 0-d int64 tensor (a traced forward, whose frame counts are graph values)
    takes :func:`interpolate_gather`.
    """
    if isinstance(n_frames, torch.Tensor):
        return interpolate_gather(x, n_frames)
    if x.shape[1] == n_frames:
        return x
    if x.shape[1] == 1:  # a single input frame cannot be interpolated with aligned corners
        return x.expand(-1, n_frames, -1)
    y = F.interpolate(x.transpose(1, 2), size=n_frames, mode="linear", align_corners=True)
    return y.transpose(1, 2)


def interpolate_gather(x: torch.Tensor, n_frames: torch.Tensor) -> torch.Tensor:
    """:func:`interpolate` written with gathers, for a 0-d int64 ``n_frames``.

    The output length stays a graph value when traced (``F.interpolate``'s ``size`` would be
    frozen to the traced length). Equal to ``F.interpolate(mode="linear",
    align_corners=True)`` up to float rounding (positions are computed in float64); exact
    for ``n_frames == T``.
    """
    t_in = torch._shape_as_tensor(x)[1].to(torch.float64)
    steps = torch.arange(n_frames, dtype=torch.float64)  # type: ignore[call-overload]
    denom = torch.clamp(n_frames.to(torch.float64) - 1.0, min=1.0)
    pos = steps * (t_in - 1.0) / denom  # [n_frames]
    i0 = torch.floor(pos)
    w = (pos - i0).to(x.dtype)[None, :, None]
    i0 = i0.to(torch.int64)
    i1 = torch.minimum(i0 + 1, (t_in - 1.0).to(torch.int64))
    return x[:, i0] * (1.0 - w) + x[:, i1] * w


def adapt(
    x: torch.Tensor, in_lengths: list[int], out_lengths: list[int] | list[torch.Tensor]
) -> torch.Tensor:
    """Per-sample interpolation of a padded batch.

    Each sample's valid ``in_lengths[b]`` frames are mapped to ``out_lengths[b]`` frames, so
    padding never shifts the time axis; the result is zero-padded to ``max(out_lengths)``.

    Args:
        x: ``[B, T, C]`` padded features.
        in_lengths: valid input frames per sample.
        out_lengths: wanted output frames per sample; one 0-d int64 tensor for a traced
            forward (one clip, no padding).

    Returns:
        ``[B, max(out_lengths), C]``.
    """
    b = x.shape[0]
    if isinstance(out_lengths[0], torch.Tensor):  # a traced batch of one, nothing padded
        return interpolate_gather(x, out_lengths[0])
    if len(set(in_lengths)) == 1 and len(set(out_lengths)) == 1:
        n = in_lengths[0]
        return interpolate(x if n >= x.shape[1] else x[:, :n], out_lengths[0])
    out = x.new_zeros(b, max(out_lengths), x.shape[2])
    for i in range(b):
        out[i, : out_lengths[i]] = interpolate(x[i : i + 1, : in_lengths[i]], out_lengths[i])[0]
    return out

"""Annotation frame-rate conversion to a convention's fps.

The original loader takes every 2nd frame of 60 fps data (-> 30) and every 4th of
100 fps data (-> 25) and rejects anything else. We keep that exactly for integer
ratios (``native = k * target``: every k-th frame, starting at frame 0) and fall back
to linear interpolation in time for any other ratio, so new datasets at 24, 50 or
59.94 fps load without a separate preprocessing step.
"""

from __future__ import annotations

import math

import numpy as np

from unitalker import conventions

_RATIO_TOL = 1e-6


def integer_ratio(native_fps: float, target_fps: float) -> int | None:
    """``k`` when ``native_fps == k * target_fps`` for an integer ``k >= 1``, else None."""
    r = native_fps / target_fps
    k = round(r)
    return k if k >= 1 and abs(r - k) < _RATIO_TOL * max(1.0, r) else None


def converted_length(n_frames: int, native_fps: float, target_fps: float) -> int:
    """Frame count after :func:`convert_framerate` (without touching the data)."""
    if n_frames <= 0:
        return 0
    k = integer_ratio(native_fps, target_fps)
    if k is not None:
        return math.ceil(n_frames / k)
    return max(1, round(n_frames * target_fps / native_fps))


def convert_framerate(motion: np.ndarray, native_fps: float, target_fps: float) -> np.ndarray:
    """Resample ``[T, ...]`` annotation frames from ``native_fps`` to ``target_fps``.

    Integer ratios keep every k-th frame (the original's 60->30 and 100->25); other
    ratios interpolate linearly between neighbouring frames at times ``i / target_fps``
    (the last frame is held at the end).

    Returns:
        ``[T', ...]`` in the input dtype (float for interpolation).
    """
    if native_fps <= 0 or target_fps <= 0:
        raise ValueError(f"frame rates must be positive, got {native_fps} -> {target_fps}")
    n = len(motion)
    if n == 0:
        return motion
    k = integer_ratio(native_fps, target_fps)
    if k is not None:
        return motion if k == 1 else motion[::k]
    n_out = converted_length(n, native_fps, target_fps)
    t = np.arange(n_out, dtype=np.float64) * (native_fps / target_fps)
    t = np.minimum(t, n - 1)
    lo = np.floor(t).astype(np.int64)
    hi = np.minimum(lo + 1, n - 1)
    w = (t - lo).astype(np.float32).reshape((-1,) + (1,) * (motion.ndim - 1))
    a = motion[lo].astype(np.float32, copy=False)
    b = motion[hi].astype(np.float32, copy=False)
    return a + (b - a) * w


def to_convention_fps(motion: np.ndarray, native_fps: float, convention: str) -> np.ndarray:
    """Convert to the registered convention's fps (``conventions.get(convention).fps``)."""
    return convert_framerate(motion, native_fps, conventions.get(convention).fps)

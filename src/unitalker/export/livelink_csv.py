"""``csv``: ARKit blendshape weights as a Live Link Face CSV (Unreal, and tools that import it).

Header: ``Timecode,BlendShapeCount,`` + the 52 ARKit names in Live Link order + the 9 head
/ eye rotations; ``BlendShapeCount`` is 61 on every row; ``Timecode`` is
``HH:MM:SS:FF.fff`` (frame within the second, then the sub-frame fraction) at the head's
fps, starting at 00:00:00:00.000. Any blendshape convention whose channel names are ARKit
names (case-insensitively: ``jawOpen``, ``JawOpen``) maps by name, so the EmoTalk 52
order and the in-house 51 order both work; channels the head lacks (``TongueOut`` for
the 51 order) and the rotations are written as 0. Weights are clipped to [0, 1], the
range ARKit and Live Link define.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from unitalker.animation import Animation
from unitalker.conventions import LIVE_LINK_ORDER, LIVE_LINK_ROTATIONS, Convention, arkit_key
from unitalker.export.base import Writer, register_writer

BLENDSHAPE_COUNT = len(LIVE_LINK_ORDER) + len(LIVE_LINK_ROTATIONS)
assert BLENDSHAPE_COUNT == 61
HEADER: tuple[str, ...] = ("Timecode", "BlendShapeCount", *LIVE_LINK_ORDER, *LIVE_LINK_ROTATIONS)


def _key(name: str) -> str:
    return arkit_key(name).lower()


def live_link_indices(conv: Convention) -> np.ndarray | None:
    """For each Live Link name, the index of that channel in ``conv`` or -1 if absent.

    Returns None when ``conv`` is not a blendshape convention or none of its channel
    names is an ARKit name.
    """
    if conv.kind != "blendshapes" or not conv.channel_names:
        return None
    index = {_key(n): i for i, n in enumerate(conv.channel_names)}
    idx = np.asarray([index.get(_key(n), -1) for n in LIVE_LINK_ORDER], dtype=np.int64)
    return idx if (idx >= 0).any() else None


def to_live_link(animation: Animation) -> np.ndarray:
    """``[T, C]`` weights -> ``[T, 52]`` in Live Link order (absent channels 0, clipped to [0, 1])."""
    idx = live_link_indices(animation.conv)
    if idx is None:
        raise ValueError(f"{animation.convention}: channels do not map to ARKit names")
    out = np.zeros((animation.n_frames, len(LIVE_LINK_ORDER)), dtype=np.float32)
    have = idx >= 0
    out[:, have] = animation.data[:, idx[have]]
    return np.clip(out, 0.0, 1.0)


def timecode(frame: int, fps: float) -> str:
    """``HH:MM:SS:FF.fff`` of frame ``frame`` at ``fps`` (FF = frame in the second, .fff sub-frame)."""
    if fps <= 0:
        raise ValueError(f"fps must be positive, got {fps}")
    if float(fps).is_integer():
        whole, ff, sub = divmod(frame, int(fps))[0], frame % int(fps), 0.0
    else:
        t = frame / fps
        whole = math.floor(t + 1e-9)
        in_second = max(frame - whole * fps, 0.0)  # frames into this second
        ff = math.floor(in_second + 1e-6)
        sub = max(in_second - ff, 0.0)
    hh, rem = divmod(int(whole), 3600)
    mm, ss = divmod(rem, 60)
    return f"{hh:02d}:{mm:02d}:{ss:02d}:{ff:02d}.{min(round(sub * 1000), 999):03d}"


@register_writer
class LiveLinkCsvWriter(Writer):
    name = "csv"
    extension = "csv"
    description = "ARKit weights as a Live Link Face CSV (blendshape heads with ARKit names)"

    def fits(self, animation: Animation) -> bool:
        return live_link_indices(animation.conv) is not None

    def why_not(self, animation: Animation) -> str:
        return f"csv needs ARKit blendshape channels; {animation.convention!r} has none"

    def write_head(self, animation: Animation, path: Path) -> None:
        from unitalker.export.base import iter_rows

        rot = ",".join(["0"] * len(LIVE_LINK_ROTATIONS))
        with open(path, "w", newline="", encoding="utf-8") as f:
            f.write(",".join(HEADER) + "\n")
            i = 0
            for block in iter_rows(animation.data, 2**20):  # appended block by block
                weights = to_live_link(Animation(animation.convention, animation.fps, block))
                lines = []
                for row in weights:
                    vals = ",".join(_fmt(v) for v in row)
                    lines.append(f"{timecode(i, animation.fps)},{BLENDSHAPE_COUNT},{vals},{rot}\n")
                    i += 1
                f.write("".join(lines))


def _fmt(v: float) -> str:
    # Six decimals is below anything a rig resolves; strip trailing zeros to keep files small.
    s = f"{v:.6f}".rstrip("0").rstrip(".")
    return s if s not in ("", "-0") else "0"

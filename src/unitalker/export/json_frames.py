"""``json``: one head as plain JSON, for web viewers and scripts.

``{"fps", "convention", "kind", "identity", "channels", "frames", "meta"}`` where
``channels`` is the list of channel names (or null) and ``frames`` is, per frame, an
object ``{channel: value}`` for blendshape heads with names, else a flat list of the
``C`` values (``V*3`` interleaved xyz for vertex heads). Floats are rounded to
``DECIMALS`` places.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from unitalker.animation import Animation
from unitalker.export.base import Writer, register_writer

DECIMALS = 6


def animation_to_json(animation: Animation, decimals: int = DECIMALS) -> dict:
    """The JSON-ready dict for one head (see the module docstring)."""
    conv = animation.conv
    values = np.round(animation.data.astype(np.float64), decimals).tolist()
    names = list(conv.channel_names) if conv.channel_names else None
    if conv.kind == "blendshapes" and names:
        frames = [dict(zip(names, row, strict=True)) for row in values]
    else:
        frames = values
    return {
        "fps": float(animation.fps),
        "convention": animation.convention,
        "kind": conv.kind,
        "identity": animation.identity,
        "channels": names,
        "frames": frames,
        "meta": animation.meta,
    }


@register_writer
class JsonWriter(Writer):
    name = "json"
    extension = "json"
    description = "one head as JSON (named channels for blendshapes)"

    def fits(self, animation: Animation) -> bool:
        return True

    def write_head(self, animation: Animation, path: Path) -> None:
        with open(path, "w", encoding="utf-8") as f:
            json.dump(animation_to_json(animation), f, separators=(",", ":"), default=str)

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
        # The same text as json.dump(animation_to_json(..)), with the frames appended in
        # blocks so that a long (memory-mapped) result is never held as Python floats.
        from unitalker.export.base import iter_rows

        sep = (",", ":")
        head = dict(
            animation_to_json(
                Animation(
                    animation.convention,
                    animation.fps,
                    animation.data[:0],
                    animation.identity,
                    animation.meta,
                )
            )
        )
        text = json.dumps(head, separators=sep, default=str)
        before, mark, after = text.partition('"frames":[]')
        if not mark:
            raise AssertionError("frames key missing from the JSON header")
        with open(path, "w", encoding="utf-8") as f:
            f.write(before + '"frames":[')
            first = True
            for block in iter_rows(animation.data, 2 * 2**20):
                part = animation_to_json(
                    Animation(animation.convention, animation.fps, np.asarray(block))
                )["frames"]
                body = json.dumps(part, separators=sep, default=str)[1:-1]
                if body:
                    f.write(body if first else "," + body)
                    first = False
            f.write("]" + after)

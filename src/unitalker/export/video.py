"""``mp4``: a preview video of all heads side by side, with the audio (see :mod:`unitalker.render`)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np

from unitalker.animation import Animation
from unitalker.export.base import Writer, register_writer


@register_writer
class Mp4Writer(Writer):
    name = "mp4"
    extension = "mp4"
    layout = "combined"
    needs_audio = True
    main_process = True  # the OpenGL context is made here
    description = "preview video of all heads with the audio (meshes, or bar charts)"

    def __init__(self, idle: bool = True, size: int | None = None) -> None:
        """``idle``: synth heads blink and sway (render-time only); ``size``: panel pixels
        (default: :func:`~unitalker.render.video.panel_size`)."""
        if size is not None and size < 16:
            raise ValueError(f"mp4 panel size must be >= 16 pixels, got {size}")
        self.idle = idle
        self.size = size

    def fits(self, animation: Animation) -> bool:
        return True  # heads without a mesh become bar charts

    def write_all(
        self,
        results: Mapping[str, Animation],
        path: Path,
        audio: np.ndarray | None,
    ) -> None:
        from unitalker.render.video import render_video

        render_video(results, audio, path, overwrite=True, idle=self.idle, size=self.size)

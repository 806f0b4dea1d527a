"""Offscreen preview rendering: meshes with moderngl over EGL, bar charts otherwise, mp4 out.

Heavy imports (moderngl, PyAV, PIL) happen inside the functions that use them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__all__ = ["MeshRenderer", "RendererUnavailable", "bench_render", "egl_available", "render_video"]

if TYPE_CHECKING:  # pragma: no cover
    from unitalker.render.renderer import (
        MeshRenderer,
        RendererUnavailable,
        bench_render,
        egl_available,
    )
    from unitalker.render.video import render_video


def __getattr__(name: str) -> Any:
    # Lazy re-exports: `from unitalker.render import render_video` without importing
    # the video module (PyAV) when only the renderer is needed, and vice versa.
    if name in ("MeshRenderer", "RendererUnavailable", "bench_render", "egl_available"):
        from unitalker.render import renderer

        return getattr(renderer, name)
    if name == "render_video":
        from unitalker.render.video import render_video

        return render_video
    raise AttributeError(f"module 'unitalker.render' has no attribute {name!r}")

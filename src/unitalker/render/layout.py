"""Several heads side by side in one frame: mesh panels, or bar charts where there is no mesh.

A head whose convention has a mesh (vertices, or blendshapes with a rig) is drawn by
the :class:`~unitalker.render.renderer.MeshRenderer`; any other head (blendshapes
without a rig, parameter vectors) becomes an animated bar chart of its channels, drawn
with numpy on a background prepared once with PIL, so it costs almost nothing per frame.
Labels sit in a strip above the panels, drawn once.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import numpy as np

from unitalker.animation import Animation

log = logging.getLogger(__name__)

LABEL_HEIGHT = 28
BAR_BG = (246, 246, 244)
BAR_FG = (214, 120, 84)
BAR_NEG = (84, 132, 214)
TEXT = (235, 235, 235)
STRIP_BG = (30, 31, 34)
MAX_NAMED_BARS = 64  # above this many channels, bars get no names (params: 413)


def _font(size: int) -> Any:
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)  # scalable font, Pillow >= 10.1
    except TypeError:  # pragma: no cover - older Pillow: fixed bitmap font
        return ImageFont.load_default()


class Panel(Protocol):
    label: str

    def draw(self, frame: int) -> np.ndarray:
        """``[S, S, 3]`` uint8 image of one frame."""
        ...

    def close(self) -> None: ...


def head_vertices(animation: Animation, frames: np.ndarray | slice) -> np.ndarray:
    """Vertices ``[N, V, 3]`` of some frames of a head with a mesh (vertex heads, rigged
    blendshapes, parameter conventions with a registered vertex function)."""
    verts = Animation(animation.convention, animation.fps, animation.data[frames]).vertices()
    if verts is None:
        raise ValueError(f"convention {animation.convention!r} has no mesh to render")
    return verts


class MeshPanel:
    """One head with a mesh, rendered with lighting; framed on the whole sequence.

    Heads on the synth topologies are drawn *dressed* (:mod:`unitalker.synth.dressing`):
    a finer skin, mouth cavity, teeth, tongue and eyes, and with ``idle`` a procedural
    blink and a slight head sway. All of it is render-time only; the data is untouched.
    """

    def __init__(
        self,
        animation: Animation,
        size: int,
        label: str,
        ctx: Any = None,
        *,
        dress: bool = True,
        idle: bool = True,
    ) -> None:
        from unitalker.render.renderer import MeshRenderer

        self.animation = animation
        self.label = label
        sample = np.unique(
            np.linspace(0, animation.n_frames - 1, min(animation.n_frames, 64)).astype(int)
        )
        verts = head_vertices(animation, sample)
        self.dressing = _dressing(animation, verts.shape[1]) if dress else None
        self._cached: tuple[int, np.ndarray, np.ndarray | None] | None = None
        self.idle = None
        if self.dressing is not None:
            if idle:
                from unitalker.synth.dressing import IdleMotion

                self.idle = IdleMotion()
            self.renderer = MeshRenderer(
                self.dressing.front_faces(),  # the preview camera is frontal
                self.dressing.n_vertices,
                size=size,
                ctx=ctx,
                colors=self.dressing.colors,
            )
            # frame on the dressed skin, with room for the idle sway
            self.renderer.frame_vertices(self.dressing.apply_sequence(verts))
        else:
            self.renderer = MeshRenderer(animation.faces(), verts.shape[1], size=size, ctx=ctx)
            self.renderer.frame_vertices(verts)

    CHUNK = 32  # frames evaluated together (one vectorised rig / sparse product per chunk)

    def _chunk(self, frame: int) -> tuple[np.ndarray, np.ndarray | None]:
        """Vertices and normals drawn at ``frame``, from its chunk of :attr:`CHUNK` frames
        (rig, dressing, blink, idle motion and normals computed for the chunk at once)."""
        start = frame - frame % self.CHUNK
        if self._cached is None or self._cached[0] != start:
            sl = slice(start, min(start + self.CHUNK, self.animation.n_frames))
            v = head_vertices(self.animation, sl)
            if self.dressing is not None:
                v = self.dressing.apply_sequence(v)
                if self.idle is not None:
                    t = np.arange(sl.start, sl.stop) / self.animation.fps
                    v = self.dressing.pose_sequence(
                        v,
                        np.array([self.idle.blink(x) for x in t]),
                        np.stack([self.idle.rotation(x) for x in t]),
                    )
            v = np.ascontiguousarray(v, dtype=np.float32)
            nc = self.renderer.normal_computer
            self._cached = (start, v, None if nc is None else nc(v))
        _, v, n = self._cached
        return v[frame - start], None if n is None else n[frame - start]

    def mesh(self, frame: int) -> np.ndarray:
        """The vertices drawn at ``frame`` (dressed, with blink and idle motion if on)."""
        return self._chunk(frame)[0]

    def normals(self, frame: int) -> np.ndarray | None:
        """The vertex normals drawn at ``frame`` (None for a point cloud)."""
        return self._chunk(frame)[1]

    def draw(self, frame: int) -> np.ndarray:
        return self.renderer.render(*self._chunk(frame))

    def close(self) -> None:
        self.renderer.release()


def _dressing(animation: Animation, n_vertices: int) -> Any:
    """The synth dressing of a head, if it is drawn on a synth topology."""
    from unitalker.synth.dressing import dressing_for

    d = dressing_for(animation.convention)
    if d is None or d.neutral.shape[0] != n_vertices:
        return None
    return d


class BarPanel:
    """An animated bar chart of a head's channels (for heads without a mesh).

    Blendshape weights are drawn as horizontal bars on [0, 1] with channel names; other
    channels (parameters) as vertical bars, each normalised by its largest magnitude in
    the clip so that small parameters still move (blue below zero, orange above).
    With more channels than pixel columns, neighbouring channels share a column (the
    largest magnitude wins).
    """

    def __init__(self, animation: Animation, size: int, label: str) -> None:
        from PIL import Image, ImageDraw

        self.label = label
        self.size = size
        conv = animation.conv
        data = animation.data.astype(np.float32)
        c = data.shape[1]
        names = conv.channel_names
        self.horizontal = conv.kind == "blendshapes" and c <= MAX_NAMED_BARS
        img = Image.new("RGB", (size, size), BAR_BG)
        draw = ImageDraw.Draw(img)
        pad = max(4, size // 64)
        if self.horizontal:
            row = (size - 2 * pad) / c
            font = _font(max(6, min(14, int(row * 0.95))))
            name_w = int(size * 0.36) if names else pad
            self.x0, self.x1 = name_w + pad, size - pad
            tops = pad + np.arange(c) * row
            self.rows = [
                (int(t + row * 0.1), max(int(t + row * 0.1) + 1, int(t + row * 0.9))) for t in tops
            ]
            for i, (y0, _) in enumerate(self.rows):
                if names:
                    draw.text((pad, y0 - 1), names[i][:28], fill=(60, 60, 60), font=font)
            draw.line([(self.x0, pad), (self.x0, size - pad)], fill=(150, 150, 150))
            self.values = np.clip(data, 0.0, 1.0)
        else:
            n_cols = min(c, size - 2 * pad)
            scale = np.abs(data).max(axis=0)
            norm = data / np.where(scale > 0, scale, 1.0)  # [T, C] in [-1, 1]
            bins = np.linspace(0, c, n_cols + 1).astype(int)
            # Per column, the channel value with the largest magnitude in its bin.
            cols = []
            for a, b in zip(bins[:-1], bins[1:], strict=True):
                seg = norm[:, a : max(b, a + 1)]
                pick = np.abs(seg).argmax(axis=1)
                cols.append(seg[np.arange(len(seg)), pick])
            self.values = np.stack(cols, axis=1)  # [T, n_cols]
            self.x0, self.x1 = pad, size - pad
            self.col_edges = np.linspace(self.x0, self.x1, n_cols + 1).astype(int)
            self.mid = size // 2
            self.half = size // 2 - 3 * pad - 14  # room for the caption
            draw.line([(pad, self.mid), (size - pad, self.mid)], fill=(150, 150, 150))
            font = _font(12)
            draw.text(
                (pad, size - pad - 14),
                f"{c} channels, each scaled to its max |value|",
                fill=(90, 90, 90),
                font=font,
            )
        self.background = np.asarray(img, dtype=np.uint8)
        self.canvas = self.background.copy()
        self.n_frames = len(self.values)

    def draw(self, frame: int) -> np.ndarray:
        canvas = self.canvas
        canvas[:] = self.background
        vals = self.values[min(frame, self.n_frames - 1)]
        if self.horizontal:
            ends = self.x0 + 1 + np.round(vals * (self.x1 - self.x0 - 1)).astype(int)
            for (y0, y1), e in zip(self.rows, ends, strict=True):
                canvas[y0:y1, self.x0 + 1 : e] = BAR_FG
        else:
            heights = np.round(vals * self.half).astype(int)
            for i, h in enumerate(heights):
                xa, xb = self.col_edges[i], max(self.col_edges[i + 1] - 1, self.col_edges[i] + 1)
                if h > 0:
                    canvas[self.mid - h : self.mid, xa:xb] = BAR_FG
                elif h < 0:
                    canvas[self.mid + 1 : self.mid + 1 - h, xa:xb] = BAR_NEG
        return canvas

    def close(self) -> None:
        pass


def make_panel(
    animation: Animation,
    size: int,
    label: str | None = None,
    ctx: Any = None,
    *,
    idle: bool = True,
) -> Panel:
    """A mesh panel when the head has a mesh, else a bar chart (``idle``: blink and sway)."""
    label = label or animation.convention
    if animation.conv.has_mesh:
        return MeshPanel(animation, size, label, ctx=ctx, idle=idle)
    log.debug("%s has no mesh: drawing a bar chart", animation.convention)
    return BarPanel(animation, size, label)


class Layout:
    """Panels side by side under a label strip; :meth:`frame` returns the composed image.

    The canvas is ``[LABEL_HEIGHT + size, n * size, 3]`` (even sizes for yuv420p video).
    Mesh panels that share a GL context are drawn in one pass: each into its viewport of
    one framebuffer, read back once per frame (one llvmpipe flush instead of one per head).
    """

    def __init__(self, panels: Sequence[Panel], size: int) -> None:
        from PIL import Image, ImageDraw

        if not panels:
            raise ValueError("a layout needs at least one panel")
        if size < 16 or size % 2:
            raise ValueError(f"panel size must be an even number >= 16, got {size}")
        self.panels = list(panels)
        self.size = size
        self.width = size * len(panels)
        self.height = size + LABEL_HEIGHT
        strip = Image.new("RGB", (self.width, LABEL_HEIGHT), STRIP_BG)
        draw = ImageDraw.Draw(strip)
        font = _font(15)
        for i, p in enumerate(self.panels):
            text = p.label
            while len(text) > 4 and draw.textlength(text, font=font) > size - 12:
                text = text[:-2]
            draw.text((i * size + 6, 6), text, fill=TEXT, font=font)
        self.canvas = np.zeros((self.height, self.width, 3), dtype=np.uint8)
        self.canvas[:LABEL_HEIGHT] = np.asarray(strip)
        self._meshes = [(i, p) for i, p in enumerate(self.panels) if isinstance(p, MeshPanel)]
        self._fbo = None
        if self._meshes:
            ctx = self._meshes[0][1].renderer.ctx
            if all(p.renderer.ctx is ctx for _, p in self._meshes):
                self._fbo = ctx.simple_framebuffer((self.width, size), components=4)
                self._background = self._meshes[0][1].renderer.background

    def frame(self, index: int) -> np.ndarray:
        """The composed ``[H, W, 3]`` uint8 frame (the same buffer each call; copy to keep)."""
        s = self.size
        if self._fbo is not None:
            self._fbo.use()
            self._fbo.viewport = (0, 0, self.width, s)
            self._fbo.clear(*self._background, 1.0, depth=1.0)
            for i, p in self._meshes:
                vp = (i * s, 0, s, s)
                p.renderer.draw(p.mesh(index), self._fbo, vp, normals=p.normals(index))
            data = self._fbo.read(components=3, alignment=1)
            self.canvas[LABEL_HEIGHT:] = np.frombuffer(data, np.uint8).reshape(s, self.width, 3)[
                ::-1
            ]
        for i, p in enumerate(self.panels):
            if self._fbo is not None and isinstance(p, MeshPanel):
                continue
            self.canvas[LABEL_HEIGHT:, i * s : (i + 1) * s] = p.draw(index)
        return self.canvas

    def close(self) -> None:
        if self._fbo is not None:
            self._fbo.release()
            self._fbo = None
        for p in self.panels:
            p.close()


def build_layout(
    results: Mapping[str, Animation],
    size: int,
    heads: Sequence[str] | None = None,
    *,
    idle: bool = True,
) -> Layout:
    """A :class:`Layout` of the chosen heads (default all) in the given order.

    ``idle``: dressed heads blink and sway slightly (render-time only).
    """
    keys = list(heads) if heads else list(results)
    unknown = [k for k in keys if k not in results]
    if unknown:
        raise KeyError(f"heads not in the results: {unknown}; available: {list(results)}")
    ctx = None
    if any(results[k].conv.has_mesh for k in keys):
        from unitalker.render.renderer import shared_context

        ctx = shared_context()  # raises RendererUnavailable with the fix
    panels: list[Panel] = []
    try:
        for k in keys:
            panels.append(make_panel(results[k], size, k, ctx=ctx, idle=idle))
    except Exception:
        for p in panels:
            p.close()
        raise
    return Layout(panels, size)

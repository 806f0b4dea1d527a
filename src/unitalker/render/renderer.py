"""Offscreen mesh rendering on the CPU (or any GPU) with moderngl over EGL.

No display, no X server and no pytorch3d: an OpenGL 3.3 core context from EGL (Mesa's
llvmpipe on a plain server). Per frame only positions and normals are uploaded into
buffers allocated once, and the image comes back with one ``fbo.read``.

Shading is Blinn-Phong with a warm key light from the upper left and a cool, dimmer
fill from the right on a neutral skin colour: enough relief to read lip shapes.
Normals are recomputed per frame in numpy (:class:`~unitalker.render.geometry.NormalComputer`).
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from unitalker.render.geometry import NormalComputer, uv_sphere

log = logging.getLogger(__name__)

EGL_HINT = (
    "install Mesa's EGL and OpenGL drivers (Debian/Ubuntu: apt install libegl1 libgl1-mesa-dri)"
)

SKIN = (0.80, 0.62, 0.52)
BACKGROUND = (0.16, 0.17, 0.19)
Projection = Literal["perspective", "orthographic"]


class RendererUnavailable(RuntimeError):
    """No offscreen OpenGL context can be created here; the message says what to install."""


def create_context() -> Any:
    """A standalone (headless) moderngl context on EGL.

    Raises:
        RendererUnavailable: moderngl is missing, or EGL / a GL driver cannot be loaded.
    """
    try:
        import moderngl
    except ImportError as e:
        raise RendererUnavailable(
            "rendering needs moderngl: pip install 'unitalker[render]'"
        ) from e
    try:
        return moderngl.create_standalone_context(require=330, backend="egl")
    except Exception as e:  # noqa: BLE001 - moderngl/glcontext raise plain Exceptions
        raise RendererUnavailable(
            f"cannot create an offscreen OpenGL 3.3 context with EGL ({type(e).__name__}: {e}); "
            f"{EGL_HINT}"
        ) from e


_THREAD_CONTEXTS = threading.local()


def shared_context() -> Any:
    """One context per thread, shared by the renderers of that thread.

    Contexts are expensive on EGL, so they are reused; but an EGL context is current only
    in the thread that made it, so a server rendering from worker threads needs one each.
    """
    ctx = getattr(_THREAD_CONTEXTS, "ctx", None)
    if ctx is None:
        ctx = _THREAD_CONTEXTS.ctx = create_context()
    return ctx


@functools.lru_cache(maxsize=1)
def egl_available() -> bool:
    """Whether :func:`shared_context` works here (checked once)."""
    try:
        shared_context()
    except RendererUnavailable as e:
        log.info("offscreen rendering unavailable: %s", e)
        return False
    return True


_VERTEX_SHADER = """
#version 330
uniform mat4 u_view;
uniform mat4 u_proj;
uniform float u_point_size;
in vec3 in_pos;
in vec3 in_nrm;
in vec3 in_col;
out vec3 v_pos;
out vec3 v_nrm;
out vec3 v_col;
void main() {
    v_col = in_col;
    vec4 p = u_view * vec4(in_pos, 1.0);
    v_pos = p.xyz;
    v_nrm = mat3(u_view) * in_nrm;  // the view matrix is a rigid motion
    gl_Position = u_proj * p;
    gl_PointSize = u_point_size;
}
"""

_FRAGMENT_SHADER = """
#version 330
uniform bool u_lit;
uniform bool u_ortho;
in vec3 v_pos;
in vec3 v_nrm;
in vec3 v_col;  // linear RGB (per vertex)
out vec4 f_color;
const vec3 KEY_DIR = normalize(vec3(-0.45, 0.55, 0.70));
const vec3 KEY_COL = vec3(1.00, 0.96, 0.90);
const vec3 FILL_DIR = normalize(vec3(0.75, -0.05, 0.45));
const vec3 FILL_COL = vec3(0.35, 0.40, 0.48);
const vec3 AMBIENT = vec3(0.16, 0.16, 0.18);
void main() {
    vec3 base = v_col;
    vec3 col;
    if (u_lit) {
        vec3 n = normalize(v_nrm);
        if (!gl_FrontFacing) n = -n;  // open meshes (mouth cavity) are seen from both sides
        vec3 view = u_ortho ? vec3(0.0, 0.0, 1.0) : normalize(-v_pos);
        float kd = max(dot(n, KEY_DIR), 0.0);
        float fd = max(dot(n, FILL_DIR), 0.0);
        float ks = pow(max(dot(n, normalize(KEY_DIR + view)), 0.0), 32.0) * 0.25 * step(0.0, kd);
        col = base * (AMBIENT + KEY_COL * kd + FILL_COL * fd) + KEY_COL * ks;
    } else {
        col = base * 0.9;
    }
    f_color = vec4(sqrt(col), 1.0);  // gamma 2 is close to sRGB and far cheaper than pow
}
"""


def look_at(eye: np.ndarray, target: np.ndarray, up: np.ndarray) -> np.ndarray:
    """World -> camera matrix ``[4, 4]`` (camera looks down its -Z)."""
    f = target - eye
    f = f / np.linalg.norm(f)
    s = np.cross(f, up)
    s = s / np.linalg.norm(s)
    u = np.cross(s, f)
    m = np.eye(4)
    m[0, :3], m[1, :3], m[2, :3] = s, u, -f
    m[:3, 3] = -m[:3, :3] @ eye
    return m


def perspective(fov_y_deg: float, aspect: float, near: float, far: float) -> np.ndarray:
    f = 1.0 / np.tan(np.radians(fov_y_deg) / 2)
    m = np.zeros((4, 4))
    m[0, 0], m[1, 1] = f / aspect, f
    m[2, 2], m[2, 3] = (far + near) / (near - far), 2 * far * near / (near - far)
    m[3, 2] = -1.0
    return m


def orthographic(half_h: float, aspect: float, near: float, far: float) -> np.ndarray:
    m = np.eye(4)
    m[0, 0], m[1, 1] = 1.0 / (half_h * aspect), 1.0 / half_h
    m[2, 2], m[2, 3] = -2.0 / (far - near), -(far + near) / (far - near)
    return m


class MeshRenderer:
    """Renders one mesh topology to RGB images.

    Args:
        faces: int ``[F, 3]`` triangles, or None to draw the vertices as points.
        n_vertices: ``V``.
        size: image size, an int (square) or ``(width, height)``.
        projection: ``perspective`` (default) or ``orthographic``.
        color: RGB in [0, 1] (sRGB).
        colors: ``[V, 3]`` per-vertex RGB in [0, 1] (sRGB) instead of one ``color``.
        background: RGB in [0, 1].
        elevation: camera elevation above the frontal view, degrees.
        ctx: a moderngl context to share; default :func:`shared_context`.

    The mesh is expected Y-up, facing +Z (FLAME, the procedural heads). Call
    :meth:`frame_bounds` with the sequence's bounds (or let the first :meth:`render`
    frame itself), then :meth:`render` per frame.
    """

    def __init__(
        self,
        faces: np.ndarray | None,
        n_vertices: int,
        *,
        size: int | tuple[int, int] = 512,
        projection: Projection = "perspective",
        color: tuple[float, float, float] = SKIN,
        background: tuple[float, float, float] = BACKGROUND,
        elevation: float = 8.0,
        ctx: Any = None,
        colors: np.ndarray | None = None,
    ) -> None:
        import moderngl

        if projection not in ("perspective", "orthographic"):
            raise ValueError(f"projection must be perspective or orthographic, got {projection!r}")
        self.width, self.height = (size, size) if isinstance(size, int) else size
        self.n_vertices = int(n_vertices)
        self.projection = projection
        self.background = background
        self.elevation = elevation
        self.ctx = ctx if ctx is not None else shared_context()
        ctx = self.ctx
        self.prog = ctx.program(vertex_shader=_VERTEX_SHADER, fragment_shader=_FRAGMENT_SHADER)
        self._normals = NormalComputer(faces, n_vertices) if faces is not None else None
        self.prog["u_lit"].value = self._normals is not None
        self.prog["u_ortho"].value = projection == "orthographic"
        self.prog["u_point_size"].value = max(1.0, self.width / 256)
        # Buffers are allocated once; per frame we only overwrite their contents.
        self.vbo_pos = ctx.buffer(reserve=self.n_vertices * 12)
        self.vbo_nrm = ctx.buffer(np.zeros((self.n_vertices, 3), np.float32).tobytes())
        if colors is None:
            colors = np.broadcast_to(np.asarray(color, np.float32), (self.n_vertices, 3))
        colors = np.asarray(colors, np.float32)
        if colors.shape != (self.n_vertices, 3):
            raise ValueError(f"colors must be [{self.n_vertices}, 3], got {colors.shape}")
        # sRGB -> linear with gamma 2 (the fragment shader's sqrt undoes it)
        self.vbo_col = ctx.buffer(np.ascontiguousarray(colors**2, dtype=np.float32).tobytes())
        content = [
            (self.vbo_pos, "3f", "in_pos"),
            (self.vbo_nrm, "3f", "in_nrm"),
            (self.vbo_col, "3f", "in_col"),
        ]
        if faces is not None:
            self.ibo = ctx.buffer(np.ascontiguousarray(faces, dtype=np.uint32).tobytes())
            self.vao = ctx.vertex_array(
                self.prog, content, index_buffer=self.ibo, index_element_size=4
            )
            self.mode = moderngl.TRIANGLES
        else:
            self.ibo = None
            self.vao = ctx.vertex_array(self.prog, content)
            self.mode = moderngl.POINTS
        self.fbo = ctx.simple_framebuffer((self.width, self.height), components=4)
        self._framed = False

    def frame_vertices(self, vertices: np.ndarray) -> None:
        """Frame a sequence ``[T, V, 3]`` (or one mesh ``[V, 3]``) so every frame fits."""
        pts = np.asarray(vertices, dtype=np.float32).reshape(-1, 3)
        lo, hi = pts.min(axis=0), pts.max(axis=0)
        center = (lo + hi) / 2
        self.frame_bounds(lo, hi, radius=float(np.sqrt(((pts - center) ** 2).sum(1).max())))

    def frame_bounds(self, lo: np.ndarray, hi: np.ndarray, radius: float | None = None) -> None:
        """Point the camera at the box ``[lo, hi]`` (``[3]`` each): frontal, slightly above.

        ``radius`` is the extent around the box centre to keep in view (default: half the
        box diagonal, which is loose for round shapes).
        """
        lo, hi = np.asarray(lo, np.float64), np.asarray(hi, np.float64)
        center = (lo + hi) / 2
        if radius is None:
            radius = float(np.linalg.norm(hi - lo)) / 2
        radius = max(radius, 1e-6)
        aspect = self.width / self.height
        el = np.radians(self.elevation)
        direction = np.array([0.0, np.sin(el), np.cos(el)])
        if self.projection == "perspective":
            fov = 22.0
            half = np.radians(fov) / 2
            # Fit the bounding sphere in the narrower of the two fields of view.
            dist = radius / np.sin(min(half, np.arctan(np.tan(half) * aspect))) * 1.08
            proj = perspective(fov, aspect, max(dist - 2 * radius, dist * 0.01), dist + 2 * radius)
        else:
            dist = 3 * radius
            proj = orthographic(radius * 1.05 / min(1.0, aspect), aspect, radius * 0.5, 5 * radius)
        view = look_at(center + dist * direction, center, np.array([0.0, 1.0, 0.0]))
        # moderngl wants column-major matrices.
        self.prog["u_view"].write(view.T.astype("f4").tobytes())
        self.prog["u_proj"].write(proj.T.astype("f4").tobytes())
        self._framed = True

    def draw(
        self,
        vertices: np.ndarray,
        fbo: Any = None,
        viewport: tuple[int, int, int, int] | None = None,
        normals: np.ndarray | None = None,
    ) -> None:
        """Draw ``[V, 3]`` positions into ``fbo`` (default: this renderer's own, cleared
        first) at ``viewport`` ``(x, y, w, h)``, without reading the image back.
        ``normals`` ``[V, 3]``: precomputed (e.g. by :attr:`normal_computer` for many
        frames at once); default: computed here.

        Drawing several renderers into one shared framebuffer and reading it once is how
        a layout renders all its panels in one pass (one GPU / llvmpipe flush per frame).
        """
        v = np.ascontiguousarray(vertices, dtype=np.float32)
        if v.shape != (self.n_vertices, 3):
            raise ValueError(f"expected vertices [{self.n_vertices}, 3], got {v.shape}")
        if not self._framed:
            self.frame_vertices(v)
        self.vbo_pos.write(v)
        if self._normals is not None:
            n = self._normals(v) if normals is None else normals
            self.vbo_nrm.write(np.ascontiguousarray(n, dtype=np.float32))
        target = fbo if fbo is not None else self.fbo
        target.use()
        self.ctx.enable(self.ctx.DEPTH_TEST | self.ctx.PROGRAM_POINT_SIZE)
        if fbo is None:
            target.clear(*self.background, 1.0, depth=1.0)
        target.viewport = viewport if viewport is not None else (0, 0, self.width, self.height)
        self.vao.render(self.mode)

    @property
    def normal_computer(self) -> NormalComputer | None:
        """The normals of this renderer's faces (None for a point cloud)."""
        return self._normals

    def render(self, vertices: np.ndarray, normals: np.ndarray | None = None) -> np.ndarray:
        """``[V, 3]`` positions -> ``[H, W, 3]`` uint8 image (a read-only view; copy to keep)."""
        self.draw(vertices, normals=normals)
        data = self.fbo.read(components=3, alignment=1)
        # GL's origin is bottom-left: flip rows (a view, no copy).
        return np.frombuffer(data, np.uint8).reshape(self.height, self.width, 3)[::-1]

    def release(self) -> None:
        """Free the GL objects (the shared context stays)."""
        for obj in (
            self.vao,
            self.vbo_pos,
            self.vbo_nrm,
            self.vbo_col,
            self.ibo,
            self.fbo,
            self.prog,
        ):
            if obj is not None:
                obj.release()

    def __enter__(self) -> MeshRenderer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


@dataclass
class RenderBench:
    """What :func:`bench_render` measured: ``frames`` timed frames in ``seconds``, and
    the first and last of them (``[size, size, 3]`` uint8 copies)."""

    frames: int
    seconds: float
    first: np.ndarray
    last: np.ndarray

    @property
    def fps(self) -> float:
        return self.frames / self.seconds


def bench_render(n_vertices: int = 5000, size: int = 512, frames: int = 200) -> RenderBench:
    """Time :class:`MeshRenderer` on ``frames`` frames of a wobbling sphere of ``n_vertices``.

    Counts what a video frame costs: normals in numpy, upload, draw and read-back.
    """
    verts, faces = uv_sphere(n_vertices)
    rng = np.random.default_rng(0)
    phase = rng.uniform(0, 2 * np.pi, size=(1, len(verts), 1)).astype(np.float32)
    seq_t = np.linspace(0, 2 * np.pi, min(frames, 50), dtype=np.float32)[:, None, None]
    seq = verts[None] * (1 + 0.05 * np.sin(seq_t + phase))  # [50, V, 3]
    with MeshRenderer(faces, len(verts), size=size) as r:
        r.frame_vertices(seq)
        r.render(seq[0])  # warm-up: shader compile, first allocation
        t0 = time.perf_counter()
        first = r.render(seq[0]).copy()
        for i in range(1, frames):
            img = r.render(seq[i % len(seq)])
        dt = time.perf_counter() - t0
        last = img.copy() if frames > 1 else first
    res = RenderBench(frames, dt, first, last)
    log.info("render: %.1f frames/s (%d vertices, %dx%d)", res.fps, len(verts), size, size)
    return res

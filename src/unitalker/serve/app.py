"""The FastAPI app: REST inference, the WebSocket stream, mesh data and the viewer page.

Endpoints (the OpenAPI schema is at ``/openapi.json``, a browsable one at ``/docs``):

* ``POST /v1/animate`` multipart ``audio`` + form ``heads`` (comma separated), ``identity``,
  ``format`` (``json`` | ``bin`` | ``npz`` | ``csv`` | ``glb`` | ``mp4``): JSON frames, the
  binary array container (see :mod:`unitalker.serve.protocol`) or an export file (a zip
  when a per-head format yields several files).
* ``WS /v1/stream``: PCM16 in, frames out as soon as the look-ahead allows (protocol in
  :mod:`unitalker.serve.protocol`).
* ``GET /v1/models``, ``GET /v1/conventions``, ``GET /v1/mesh/{convention}``, ``GET /health``.
* ``GET /``: the browser viewer (``static/``).

The model is loaded once by the caller and shared. Every inference runs in a worker thread
behind :class:`~unitalker.serve.gate.JobGate`; a request is admitted before its body is read
(``503`` when full), the body is counted as it streams in (``413`` past the size limit,
``408`` past the upload deadline) and reaches the decoder as a file object that may only be
a plain audio/video container (see :mod:`unitalker.audio`), checked against the duration
limit from its metadata and again while decoding. A stream client that stops reading is
closed after ``stream_send_timeout_seconds``. Every error is a JSON object
``{"error": CODE, "detail": MESSAGE}``.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import logging
import re
import tempfile
import time
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from fastapi import FastAPI, File, Form, Query, Request, UploadFile, WebSocket
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.websockets import WebSocketDisconnect

from unitalker import __version__, conventions
from unitalker.audio import SAMPLE_RATE, AudioError, AudioTooLong, check_sample_rate, load_audio
from unitalker.serve import protocol
from unitalker.serve.gate import JobGate, Overloaded
from unitalker.serve.settings import FORMATS, ServeSettings
from unitalker.serve.streaming import LinearResampler, make_streamer

if TYPE_CHECKING:
    from unitalker.models.protocol import TalkerModel

log = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).resolve().parent / "static"
MEDIA_TYPES = {
    "npz": "application/octet-stream",
    "csv": "text/csv",
    "json": "application/json",
    "glb": "model/gltf-binary",
    "mp4": "video/mp4",
    "zip": "application/zip",
}
_SAFE_STEM = re.compile(r"[^A-Za-z0-9._-]+")


class ApiError(Exception):
    """An error answered as ``{"error": code, "detail": message}`` with ``status``."""

    def __init__(self, status: int, code: str, detail: str) -> None:
        super().__init__(detail)
        self.status, self.code, self.detail = status, code, detail


_RENDER_POOL: ThreadPoolExecutor | None = None


def _render_pool() -> ThreadPoolExecutor:
    """The one thread that renders video in this process.

    The renderer shares one OpenGL context per process, and a context is current on the
    thread that created it only; so every mp4 is rendered on this same thread, whichever
    worker runs the request.
    """
    global _RENDER_POOL
    if _RENDER_POOL is None:
        _RENDER_POOL = ThreadPoolExecutor(1, thread_name_prefix="unitalker-render")
    return _RENDER_POOL


def _error(status: int, code: str, detail: Any, **extra: Any) -> JSONResponse:
    return JSONResponse({"error": code, "detail": detail, **extra}, status_code=status)


ADMISSION_KEY = "unitalker.admission"  # where the middleware leaves a request's gate place


class UploadGateMiddleware:
    """Admission, size and time limits for request bodies, before any endpoint runs.

    For a request with a body: a declared ``Content-Length`` over ``limit`` is refused at
    once (``413``); otherwise a place is taken in ``gate`` *before* the body is read
    (``503`` when full) and left in ``scope[ADMISSION_KEY]`` for the endpoint. The body
    then streams through to the app (FastAPI spools the upload to a temporary file; it is
    never held whole in memory here) while its bytes are counted (``413`` as soon as they
    pass ``limit``, whatever the headers said) and the whole body must arrive within
    ``timeout`` seconds (``408``), so a client trickling bytes cannot hold a place.

    A refused body (413 or 503) is drained (discarded) up to a bound, so a client still
    sending reads the error instead of a reset connection.
    """

    def __init__(self, app: Any, gate: JobGate, limit: int, timeout: float) -> None:
        self.app, self.gate, self.limit, self.timeout = app, gate, limit, timeout
        self.drain_cap = limit + (8 << 20)

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["method"] not in ("POST", "PUT", "PATCH"):
            await self.app(scope, receive, send)
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            if int(declared) <= self.drain_cap:
                await self._drain(receive, 0, deadline)
            await self._refuse(scope, send, *self._too_big())
            return
        try:
            admission = self.gate.admit()
        except Overloaded as e:
            # Discard the (bounded) body first, as for 413: a client still sending would
            # otherwise see a reset connection instead of the 503. Nothing is kept.
            await self._drain(receive, 0, deadline)
            await self._refuse(scope, send, 503, "overloaded", str(e), jobs=self.gate.stats())
            return
        scope[ADMISSION_KEY] = admission
        failure: tuple[int, str, str] | None = None
        size, body_done = 0, False

        async def limited_receive() -> dict:
            nonlocal failure, size, body_done
            if failure is not None:
                return {"type": "http.disconnect"}
            if body_done:  # the app listening for a disconnect: no deadline on that
                return await receive()
            try:
                msg = await asyncio.wait_for(receive(), max(0.0, deadline - loop.time()))
            except asyncio.TimeoutError:
                failure = self._too_slow()
                return {"type": "http.disconnect"}
            if msg["type"] == "http.request":
                size += len(msg.get("body", b""))
                body_done = not msg.get("more_body", False)
                if size > self.limit:
                    failure = self._too_big()
                    if not body_done and not await self._drain(receive, size, deadline):
                        failure = self._too_slow()
                    return {"type": "http.disconnect"}
            return msg

        started = False

        async def guarded_send(msg: dict) -> None:
            nonlocal started
            if failure is not None and not started:
                return  # the app's answer to the cut-off body; ours is sent below
            started = True
            await send(msg)

        try:
            await self.app(scope, limited_receive, guarded_send)
        except Exception:
            if failure is None:
                raise
        finally:
            admission.release()
        if failure is not None and not started:
            await self._refuse(scope, send, *failure)

    def _too_big(self) -> tuple[int, str, str]:
        return 413, "too_large", f"request body over the {self.limit / (1 << 20):g} MiB limit"

    def _too_slow(self) -> tuple[int, str, str]:
        return 408, "timeout", f"request body not received within {self.timeout:g} s"

    async def _drain(self, receive: Any, size: int, deadline: float) -> bool:
        """Read and discard the rest of a refused body (bounded); False on the deadline."""
        loop = asyncio.get_running_loop()
        while size <= self.drain_cap:
            try:
                msg = await asyncio.wait_for(receive(), max(0.0, deadline - loop.time()))
            except asyncio.TimeoutError:
                return False
            if msg["type"] != "http.request":
                break
            size += len(msg.get("body", b""))
            if not msg.get("more_body", False):
                break
        return True

    async def _refuse(
        self, scope: dict, send: Any, status: int, code: str, detail: str, **extra: Any
    ) -> None:
        async def no_body() -> dict:
            return {"type": "http.disconnect"}

        resp = _error(status, code, detail, **extra)
        # The rest of the body is not read: the connection cannot be reused.
        resp.headers["Connection"] = "close"
        if status == 503:
            resp.headers["Retry-After"] = "1"
        await resp(scope, no_body, send)


def _round(a: np.ndarray) -> list:
    # 6 decimals: micrometres for vertices in metres, 1e-6 for weights; halves the JSON.
    return np.round(np.asarray(a, dtype=np.float64), 6).tolist()


def _head_info(model: TalkerModel, h: str) -> dict[str, Any]:
    c = conventions.get(h)
    return {
        "name": h,
        "kind": c.kind,
        "dim": c.dim,
        "fps": c.fps,
        "channels": list(c.channel_names) if c.channel_names else None,
        "has_mesh": _mesh_available(model, c),
        "description": c.description,
    }


def _mesh_available(model: TalkerModel, c: conventions.Convention) -> bool:
    if c.kind == "vertices":
        return c.has_resource("neutral") or c.name in model.heads
    return c.kind == "blendshapes" and c.has_mesh


def mesh_payload(
    model: TalkerModel, name: str, display: bool = True
) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Arrays the viewer needs to draw a convention: see ``GET /v1/mesh/{convention}``.

    With ``display`` and a convention on a synth head, also the render-only dressing
    (:mod:`unitalker.synth.dressing`): ``display_rest [D, 3]``, ``display_faces``,
    ``display_colors [D, 3]``, ``display_blink [D, 3]`` and the sparse map
    ``display_indptr / display_indices / display_data`` (CSR ``[D, V]``) and the smoothing
    ``display_smooth_*`` (CSR ``[V, V]``), to draw
    ``display_rest + A @ S @ (vertices - neutral) + blink * display_blink``.
    """
    try:
        c = conventions.get(name)
    except KeyError as e:
        raise ApiError(404, "unknown_convention", e.args[0]) from None
    faces = c.resource("faces") if c.has_resource("faces") else None
    arrays: dict[str, np.ndarray] = {}
    if c.kind == "vertices":
        if c.has_resource("neutral"):
            neutral = c.resource("neutral")
        elif name in model.heads:
            neutral = model.template(name).detach().float().cpu().numpy()
        else:
            raise ApiError(404, "no_mesh", f"convention {name!r} has no neutral mesh")
        arrays["neutral"] = np.asarray(neutral, np.float32).reshape(-1, 3)
    elif c.kind == "blendshapes" and c.has_mesh:
        mean = np.asarray(c.resource("rig_meanshape"), np.float32).reshape(-1, 3)
        basis = np.asarray(c.resource("rig_basis"), np.float32)
        arrays["neutral"] = mean
        arrays["basis"] = basis.reshape(basis.shape[0], -1, 3)
    else:
        raise ApiError(404, "no_mesh", f"convention {name!r} ({c.kind}) has no mesh to draw")
    if faces is not None:
        arrays["faces"] = np.asarray(faces, np.int64).reshape(-1, 3)
    meta = {"convention": name, "kind": c.kind, "n_vertices": int(arrays["neutral"].shape[0])}
    meta["has_faces"] = faces is not None
    if display:
        from unitalker.synth.dressing import dressing_for

        d = dressing_for(name)
        if d is not None and d.neutral.shape == arrays["neutral"].shape:
            a = d.matrix
            arrays |= {
                "display_rest": d.rest,
                "display_faces": d.faces.astype(np.int64),
                "display_colors": d.colors,
                "display_blink": d.blink,
                "display_indptr": a.indptr.astype(np.int64),
                "display_indices": a.indices.astype(np.int64),
                "display_data": a.data.astype(np.float32),
            }
            if d.smooth is not None:
                sm = d.smooth
                arrays |= {
                    "display_smooth_indptr": sm.indptr.astype(np.int64),
                    "display_smooth_indices": sm.indices.astype(np.int64),
                    "display_smooth_data": sm.data.astype(np.float32),
                }
            meta["display"] = (
                "render-only dressing: display_rest + A @ S @ (vertices - neutral) "
                "+ blink * display_blink, A the CSR display_indptr/indices/data [D, V], "
                "S the CSR display_smooth_indptr/indices/data [V, V] (identity if absent)"
            )
    meta["evaluate"] = "neutral + weights @ basis" if "basis" in arrays else "frames are vertices"
    return arrays, meta


def create_app(model: TalkerModel, settings: ServeSettings | None = None) -> FastAPI:
    """Build the app around a loaded model.

    Args:
        model: a :class:`~unitalker.models.unitalker.UniTalker` (anything with ``heads``,
            ``identity_index``, ``animate``, ``forward`` and ``config.identities``).
        settings: limits (default :class:`ServeSettings`).
    """
    settings = settings or ServeSettings()
    gate = JobGate(settings.max_concurrency, settings.queue_limit)
    state = {"streams": 0, "streams_not_reading": 0, "started": time.time()}

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        yield
        gate.shutdown()

    app = FastAPI(
        lifespan=lifespan,
        title="unitalker",
        version=__version__,
        description="Audio-driven 3D facial animation (UniTalker): one model, every convention.",
    )
    app.state.model, app.state.settings, app.state.gate = model, settings, gate
    app.add_middleware(
        UploadGateMiddleware,
        gate=gate,
        limit=settings.max_upload_bytes,
        timeout=settings.upload_timeout_seconds,
    )

    # ---- errors: always JSON, never a crash -------------------------------------------
    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
        return _error(exc.status, exc.code, exc.detail)

    @app.exception_handler(Overloaded)
    async def _overloaded(request: Request, exc: Overloaded) -> JSONResponse:
        r = _error(503, "overloaded", str(exc), jobs=gate.stats())
        r.headers["Retry-After"] = "1"
        return r

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        errs = [{"loc": list(e.get("loc", ())), "msg": e.get("msg", "")} for e in exc.errors()]
        detail = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in errs)
        return _error(422, "invalid_request", detail, errors=errs)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        codes = {404: "not_found", 405: "method_not_allowed", 400: "bad_request"}
        return _error(exc.status_code, codes.get(exc.status_code, "http_error"), exc.detail)

    @app.exception_handler(Exception)
    async def _internal(request: Request, exc: Exception) -> JSONResponse:
        log.exception("internal error on %s", request.url.path)
        return _error(500, "internal", f"{type(exc).__name__}: {exc}")

    # ---- info ---------------------------------------------------------------------------
    @app.get("/health", summary="Liveness and load")
    async def health() -> dict[str, Any]:
        return {
            "status": "ok",
            "version": __version__,
            "model": settings.model_name,
            "heads": list(model.heads),
            "jobs": gate.stats(),
            "streams": {
                "open": state["streams"],
                "max": settings.max_streams,
                "closed_not_reading": state["streams_not_reading"],
            },
            "uptime_s": round(time.time() - state["started"], 1),
        }

    @app.get("/v1/models", summary="The loaded model: heads, identities, limits")
    async def models() -> dict[str, Any]:
        from unitalker.models.checkpoint import available_models

        info = {
            "name": settings.model_name,
            "heads": [_head_info(model, h) for h in model.heads],
            "identities": list(model.config.identities),
            "default_identity": "pivot" if "pivot" in model.config.identities else None,
        }
        if hasattr(model, "describe"):
            d = model.describe()
            info |= {k: d[k] for k in ("encoder", "decoder", "parameters") if k in d}
        return {
            "models": [info],
            "bundled": available_models(),
            "formats": list(FORMATS),
            "limits": {
                "max_upload_mb": settings.max_upload_mb,
                "max_seconds": settings.max_seconds,
                "max_concurrency": settings.max_concurrency,
                "queue_limit": settings.queue_limit,
                "max_streams": settings.max_streams,
                "upload_timeout_seconds": settings.upload_timeout_seconds,
                "decode_timeout_seconds": settings.decode_timeout_seconds,
                "stream_send_timeout_seconds": settings.stream_send_timeout_seconds,
            },
            "sample_rate": SAMPLE_RATE,
        }

    @app.get("/v1/conventions", summary="Every registered annotation convention")
    async def list_conventions() -> dict[str, Any]:
        out = []
        for c in conventions.all_conventions():
            d = c.to_dict()
            d["resources"] = sorted(d["resources"])  # keys only: no server paths
            d["in_model"] = c.name in model.heads
            d["has_mesh"] = _mesh_available(model, c)
            out.append(d)
        return {"conventions": out}

    @app.get(
        "/v1/mesh/{convention}",
        summary="Neutral mesh (+ rig basis for blendshapes) to draw a convention",
        responses={404: {"description": "unknown convention or no mesh"}},
    )
    async def mesh(
        convention: str,
        format: str = Query("json", pattern="^(json|bin)$", description="json or bin"),
        display: bool = Query(
            True, description="include the render-only dressing of synth heads (display_*)"
        ),
    ) -> Response:
        arrays, meta = await asyncio.to_thread(mesh_payload, model, convention, display)
        if format == "bin":
            return Response(
                protocol.pack_arrays(arrays, meta), media_type=protocol.ARRAYS_MEDIA_TYPE
            )
        body = dict(meta)
        body["neutral"] = _round(arrays["neutral"])
        body["faces"] = arrays["faces"].tolist() if "faces" in arrays else None
        if "basis" in arrays:
            body["basis"] = _round(arrays["basis"])
        for k, v in arrays.items():
            if k.startswith("display_"):
                body[k] = v.tolist() if np.issubdtype(v.dtype, np.integer) else _round(v)
        return JSONResponse(body)

    # ---- offline inference ----------------------------------------------------------------
    def _check_request(heads: str | None, identity: str | None) -> tuple[list[str], str | None]:
        names = [h.strip() for h in (heads or "").split(",") if h.strip()] or list(model.heads)
        bad = [h for h in names if h not in model.heads]
        if bad:
            raise ApiError(
                422,
                "unknown_head",
                f"unknown heads {bad}; this model has: {', '.join(model.heads)}",
            )
        ident = identity.strip() if identity and identity.strip() else None
        try:
            model.identity_index(ident)
        except (ValueError, KeyError) as e:
            raise ApiError(422, "unknown_identity", str(e.args[0] if e.args else e)) from None
        return list(dict.fromkeys(names)), ident

    def _job(upload: Any, filename: str, heads: list[str], identity: str | None, fmt: str):
        # The upload reaches the decoder as a file object (FastAPI's spooled temporary
        # file), never as a path: FFmpeg cannot be made to open anything else.
        name = filename or "upload"
        upload.seek(0)
        try:
            wav = load_audio(
                upload,
                name=name,
                max_seconds=settings.max_seconds,
                timeout=settings.decode_timeout_seconds,
            )
        except AudioTooLong as e:
            raise ApiError(413, "too_long", str(e)) from None
        except AudioError as e:
            raise ApiError(400, "bad_audio", str(e)) from None
        with tempfile.TemporaryDirectory(prefix="unitalker-serve-") as tmp:
            t0 = time.perf_counter()
            results = model.animate(wav, sr=SAMPLE_RATE, heads=heads, identity=identity)
            infer_s = time.perf_counter() - t0
            if fmt in ("json", "bin"):
                return wav, results, infer_s, None
            from unitalker.export import ExportError, write_outputs

            stem = _SAFE_STEM.sub("_", Path(filename or "audio").stem).strip("._") or "audio"
            out = Path(tmp) / "out"
            try:
                args = (results, out, stem, [fmt])
                kwargs = {"audio": wav, "overwrite": True}
                if fmt == "mp4":
                    paths = _render_pool().submit(write_outputs, *args, **kwargs).result()
                else:
                    paths = write_outputs(*args, **kwargs)
            except ExportError as e:
                raise ApiError(422, "unsupported_format", str(e)) from None
            except Exception as e:
                from unitalker.render.renderer import RendererUnavailable

                if isinstance(e, RendererUnavailable):  # no EGL on this machine
                    raise ApiError(501, "renderer_unavailable", str(e)) from None
                raise
            files = [p for p in paths if p.is_file()]
            if len(files) == 1:
                return wav, results, infer_s, (files[0].name, files[0].read_bytes(), fmt)
            buf = io.BytesIO()
            with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
                for p in paths:
                    for f in [p] if p.is_file() else sorted(p.rglob("*")):
                        if f.is_file():
                            z.write(f, f.relative_to(out))
            return wav, results, infer_s, (f"{stem}_{fmt}.zip", buf.getvalue(), "zip")

    @app.post(
        "/v1/animate",
        summary="Animate an uploaded clip",
        responses={
            200: {
                "description": "JSON frames, the binary container (format=bin) or an export file",
                "content": {
                    "application/json": {},
                    protocol.ARRAYS_MEDIA_TYPE: {},
                    **{t: {} for k, t in MEDIA_TYPES.items() if k != "json"},
                },
            },
            400: {"description": "undecodable or empty audio"},
            413: {"description": "upload over the size or duration limit"},
            422: {"description": "unknown head / identity / format"},
            501: {"description": "mp4 asked where offscreen rendering (EGL) is unavailable"},
            503: {"description": "server busy: queue full"},
        },
    )
    async def animate(
        request: Request,
        audio: UploadFile = File(
            ..., description="an audio file: wav, flac, mp3, ogg, m4a, webm..."
        ),
        heads: str | None = Form(None, description="comma-separated head names (default: all)"),
        identity: str | None = Form(None, description="identity name or index (default: pivot)"),
        format: str = Form("json", description=f"one of {', '.join(FORMATS)}"),
    ) -> Response:
        fmt = (format or "json").lower()
        if fmt not in FORMATS:
            raise ApiError(
                422, "unknown_format", f"format must be one of {FORMATS}, got {format!r}"
            )
        names, ident = _check_request(heads, identity)
        if not audio.size:
            raise ApiError(400, "bad_audio", f"{audio.filename or 'upload'}: empty file")
        wav, results, infer_s, file = await gate.run(
            _job,
            audio.file,
            audio.filename or "",
            names,
            ident,
            fmt,
            admission=request.scope.get(ADMISSION_KEY),
        )
        if file is not None:
            name, blob, kind = file
            return Response(
                blob,
                media_type=MEDIA_TYPES[kind],
                headers={"Content-Disposition": f'attachment; filename="{name}"'},
            )
        seconds = len(wav) / SAMPLE_RATE
        meta = {
            "model": settings.model_name,
            "seconds": seconds,
            "samples": len(wav),
            "identity": ident or "pivot",
            "inference_s": round(infer_s, 4),
        }
        if fmt == "bin":
            meta["heads"] = {
                h: {"fps": a.fps, "convention": a.convention, "kind": a.conv.kind,
                    "channels": list(a.channel_names) if a.channel_names else None}
                for h, a in results.items()
            }  # fmt: skip
            blob = protocol.pack_arrays({h: a.data for h, a in results.items()}, meta)
            return Response(blob, media_type=protocol.ARRAYS_MEDIA_TYPE)
        out = await asyncio.to_thread(
            lambda: {
                h: {
                    "convention": a.convention,
                    "kind": a.conv.kind,
                    "fps": a.fps,
                    "n_frames": a.n_frames,
                    "channels": list(a.channel_names) if a.channel_names else None,
                    "frames": _round(a.data),
                }
                for h, a in results.items()
            }
        )
        return JSONResponse(meta | {"heads": out})

    # ---- streaming -----------------------------------------------------------------------
    @app.websocket("/v1/stream")
    async def stream(ws: WebSocket) -> None:
        await ws.accept()
        if state["streams"] >= settings.max_streams:
            await _ws_fail(
                ws, protocol.CLOSE_TRY_LATER, f"server busy: {state['streams']} streams open"
            )
            return
        state["streams"] += 1
        try:
            await _run_stream(ws)
        except WebSocketDisconnect:
            log.info("stream client went away")
        except ApiError as e:
            await _ws_end(ws, e)
        except Exception as e:  # noqa: BLE001 - a stream never takes the server down
            log.exception("stream failed")
            await _ws_fail(ws, protocol.CLOSE_INTERNAL, f"internal error: {type(e).__name__}: {e}")
        finally:
            state["streams"] -= 1

    async def _ws_fail(ws: WebSocket, code: int, message: str) -> None:
        # Bounded: a client that reads nothing must not hold the handler (and its place).
        async def say() -> None:
            await ws.send_text(json.dumps({"type": "error", "message": message}))
            await ws.close(code)

        with contextlib.suppress(Exception):  # the client may be gone or stuck already
            await asyncio.wait_for(say(), settings.stream_send_timeout_seconds)

    async def _ws_end(ws: WebSocket, e: ApiError) -> None:
        if e.code == "not_reading":
            # Its buffer is full: an error message would wait like the frames did.
            log.info("stream closed: %s", e.detail)
            state["streams_not_reading"] += 1
            return
        await _ws_fail(ws, e.status, e.detail)

    async def _run_stream(ws: WebSocket) -> None:
        idle = settings.stream_idle_seconds
        try:
            first = await asyncio.wait_for(ws.receive(), idle)
        except asyncio.TimeoutError:
            await _ws_fail(ws, protocol.CLOSE_POLICY, f"no header within {idle:g} s")
            return
        if first["type"] == "websocket.disconnect":
            return
        try:
            hdr = protocol.StreamHeader.parse(first.get("text"))
            names, ident = _check_request(",".join(hdr.heads or ()), None)
            if hdr.identity is not None:
                names, ident = _check_request(",".join(names), str(hdr.identity))
            # The rule of every input (files, uploads, streams) lives in audio.py.
            check_sample_rate(hdr.sample_rate, "stream header")
        except (protocol.ProtocolError, ApiError, AudioError) as e:
            await _ws_fail(ws, protocol.CLOSE_POLICY, getattr(e, "detail", str(e)))
            return
        send_timeout = settings.stream_send_timeout_seconds

        async def send(text: str | None = None, data: bytes | None = None) -> None:
            # A client that stops reading fills its socket buffer and every send waits;
            # past the timeout the stream is closed and its place given back.
            try:
                if data is not None:
                    await asyncio.wait_for(ws.send_bytes(data), send_timeout)
                else:
                    await asyncio.wait_for(ws.send_text(text or ""), send_timeout)
            except asyncio.TimeoutError:
                raise ApiError(
                    protocol.CLOSE_POLICY,
                    "not_reading",
                    f"client read nothing for {send_timeout:g} s",
                ) from None

        streamer = make_streamer(model, heads=names, identity=ident, lookahead=hdr.lookahead)
        index = {h: i for i, h in enumerate(names)}
        sender = _livelink_sender(names)
        ready = {
            "type": "ready",
            "sample_rate": hdr.sample_rate,
            "lookahead": hdr.lookahead,
            "heads": [_head_info(model, h) | {"index": index[h]} for h in names],
        }
        if sender is not None:
            ready["livelink"] = {"head": sender.head, "subject": sender.subject}
        try:
            await send(json.dumps(ready))
        except BaseException:
            if sender is not None:
                sender.close()
            raise
        resample = LinearResampler(hdr.sample_rate) if hdr.sample_rate != SAMPLE_RATE else None
        max_raw = int(settings.max_seconds * hdr.sample_rate)
        pending: list[np.ndarray] = []
        wake = asyncio.Event()
        flags = {"ended": False, "raw": 0, "samples": 0}
        counts = dict.fromkeys(names, 0)
        odd = b""

        async def send_frames(new: dict[str, np.ndarray]) -> None:
            for h, f in new.items():
                if len(f) == 0:
                    continue
                if sender is not None and h == sender.head:
                    sender.send(f, counts[h])  # UDP: never blocks the loop for long
                if hdr.format == "binary":
                    await send(data=protocol.pack_frames(index[h], counts[h], f))
                else:
                    msg = {"type": "frames", "head": h, "start": counts[h], "frames": _round(f)}
                    await send(json.dumps(msg))
                counts[h] += len(f)

        async def reader() -> None:
            nonlocal odd
            while True:
                try:
                    msg = await asyncio.wait_for(ws.receive(), idle)
                except asyncio.TimeoutError:
                    raise ApiError(1008, "idle", f"no data for {idle:g} s") from None
                if msg["type"] == "websocket.disconnect":
                    raise WebSocketDisconnect(msg.get("code", 1000))
                if msg.get("bytes") is not None:
                    b = odd + msg["bytes"]
                    b, odd = (b[:-1], b[-1:]) if len(b) % 2 else (b, b"")
                    flags["raw"] += len(b) // 2
                    if flags["raw"] > max_raw:
                        raise ApiError(
                            protocol.CLOSE_TOO_BIG,
                            "too_long",
                            f"stream over the {settings.max_seconds:g} s limit",
                        )
                    x = np.frombuffer(b, "<i2").astype(np.float32) / 32768.0
                    x = resample(x) if resample else x
                    flags["samples"] += len(x)
                    pending.append(x)
                    wake.set()
                else:
                    try:
                        m = json.loads(msg.get("text") or "")
                    except ValueError:
                        raise ApiError(1008, "bad_message", "text messages must be JSON") from None
                    if isinstance(m, dict) and m.get("type") == "end":
                        flags["ended"] = True
                        wake.set()
                        return
                    raise ApiError(1008, "bad_message", f"unexpected message {str(m)[:80]!r}")

        async def processor() -> None:
            while True:
                await wake.wait()
                wake.clear()
                if pending:
                    chunk = np.concatenate(pending)
                    pending.clear()
                    await send_frames(await gate.run_unqueued(streamer.push, chunk))
                if flags["ended"] and not pending:
                    await send_frames(await gate.run_unqueued(streamer.flush))
                    n = flags["samples"]
                    done = {"type": "done", "frames": counts, "samples": n}
                    done["seconds"] = n / SAMPLE_RATE
                    await send(json.dumps(done))
                    await asyncio.wait_for(ws.close(protocol.CLOSE_NORMAL), send_timeout)
                    return

        tasks = [asyncio.create_task(reader()), asyncio.create_task(processor())]
        try:
            while tasks:
                done_set, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
                for t in done_set:
                    tasks.remove(t)
                    t.result()  # re-raise a failure
        except ApiError as e:
            await _ws_end(ws, e)
        finally:
            for t in tasks:
                t.cancel()
            if sender is not None:
                sender.close()

    def _livelink_sender(names: list[str]) -> Any:
        if settings.livelink is None:
            return None
        from unitalker.export.livelink_udp import LiveLinkSender, arkit_heads, parse_address

        heads = arkit_heads(names)
        if not heads:
            log.info("Live Link: this stream has no ARKit head; nothing is sent")
            return None
        host, port = parse_address(settings.livelink)
        return LiveLinkSender(host, port, heads[0], subject=settings.livelink_subject)

    # ---- the viewer -------------------------------------------------------------------------
    @app.get("/", include_in_schema=False)
    async def index() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html", media_type="text/html")

    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    return app


def serve(model: TalkerModel, settings: ServeSettings, host: str = "127.0.0.1", port: int = 8000) -> None:
    """Run the app on uvicorn until interrupted (blocking)."""
    import uvicorn

    uvicorn.run(create_app(model, settings), host=host, port=port, log_level="info")

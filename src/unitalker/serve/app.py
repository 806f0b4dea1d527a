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
behind :class:`~unitalker.serve.gate.JobGate` (``503`` when full); bodies over the size
limit get ``413`` before the endpoint runs; every error is a JSON object
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
from typing import Any

import numpy as np
from fastapi import FastAPI, File, Form, Query, Request, UploadFile, WebSocket
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.websockets import WebSocketDisconnect

from unitalker import __version__, conventions
from unitalker.audio import SAMPLE_RATE, AudioError, load_audio
from unitalker.serve import protocol
from unitalker.serve.gate import JobGate, Overloaded
from unitalker.serve.settings import FORMATS, ServeSettings
from unitalker.serve.streaming import LinearResampler, make_streamer

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
_SAFE_SUFFIX = re.compile(r"^\.[A-Za-z0-9]{1,8}$")


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


class BodyLimitMiddleware:
    """Reject request bodies over ``limit`` bytes with ``413`` before any endpoint runs.

    The body is read here (so a lying or absent Content-Length cannot get around the
    limit) and replayed to the app. An oversized body is still drained, up to a bound, so
    the client gets to read the 413 instead of a reset connection.
    """

    def __init__(self, app: Any, limit: int) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["method"] not in ("POST", "PUT", "PATCH"):
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length")
        too_big = declared is not None and declared.isdigit() and int(declared) > self.limit
        chunks: list[bytes] = []
        size, more = 0, True
        drain_cap = self.limit * 4 + (64 << 20)
        while more:
            msg = await receive()
            if msg["type"] == "http.disconnect":
                return
            body = msg.get("body", b"")
            size += len(body)
            more = msg.get("more_body", False)
            if size > self.limit:
                too_big = True
            if too_big:
                chunks = []
                if size > drain_cap:
                    break
            else:
                chunks.append(body)
        if too_big:
            mb = self.limit / (1 << 20)
            resp = _error(413, "too_large", f"request body over the {mb:g} MiB limit")
            await resp(scope, receive, send)
            return
        data = b"".join(chunks)
        sent = False

        async def replay() -> dict:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": data, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


def _round(a: np.ndarray) -> list:
    # 6 decimals: micrometres for vertices in metres, 1e-6 for weights; halves the JSON.
    return np.round(np.asarray(a, dtype=np.float64), 6).tolist()


def _head_info(model: Any, h: str) -> dict[str, Any]:
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


def _mesh_available(model: Any, c: conventions.Convention) -> bool:
    if c.kind == "vertices":
        return c.has_resource("neutral") or c.name in model.heads
    return c.kind == "blendshapes" and c.has_mesh


def mesh_payload(
    model: Any, name: str, display: bool = True
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


def create_app(model: Any, settings: ServeSettings | None = None) -> FastAPI:
    """Build the app around a loaded model.

    Args:
        model: a :class:`~unitalker.models.unitalker.UniTalker` (anything with ``heads``,
            ``identity_index``, ``animate``, ``forward`` and ``config.identities``).
        settings: limits (default :class:`ServeSettings`).
    """
    settings = settings or ServeSettings()
    gate = JobGate(settings.max_concurrency, settings.queue_limit)
    state = {"streams": 0, "started": time.time()}

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
    app.add_middleware(BodyLimitMiddleware, limit=settings.max_upload_bytes)

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
            "streams": {"open": state["streams"], "max": settings.max_streams},
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

    def _job(data: bytes, filename: str, heads: list[str], identity: str | None, fmt: str):
        suffix = Path(filename or "").suffix.lower()
        suffix = suffix if _SAFE_SUFFIX.match(suffix) else ".bin"
        with tempfile.TemporaryDirectory(prefix="unitalker-serve-") as tmp:
            src = Path(tmp) / f"upload{suffix}"
            src.write_bytes(data)
            try:
                wav = load_audio(src)
            except AudioError as e:
                # The message names our temp file; name the upload instead.
                msg = str(e).replace(str(src), filename or "upload")
                raise ApiError(400, "bad_audio", msg) from None
            seconds = len(wav) / SAMPLE_RATE
            if seconds > settings.max_seconds:
                raise ApiError(
                    413,
                    "too_long",
                    f"audio is {seconds:.1f} s; the limit is {settings.max_seconds:g} s",
                )
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
        data = await audio.read()
        if not data:
            raise ApiError(400, "bad_audio", f"{audio.filename or 'upload'}: empty file")
        wav, results, infer_s, file = await gate.run(
            _job, data, audio.filename or "", names, ident, fmt
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
        except Exception as e:  # noqa: BLE001 - a stream never takes the server down
            log.exception("stream failed")
            await _ws_fail(ws, protocol.CLOSE_INTERNAL, f"internal error: {type(e).__name__}: {e}")
        finally:
            state["streams"] -= 1

    async def _ws_fail(ws: WebSocket, code: int, message: str) -> None:
        try:
            await ws.send_text(json.dumps({"type": "error", "message": message}))
            await ws.close(code)
        except Exception:  # noqa: BLE001 - the client may be gone already
            pass

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
        except (protocol.ProtocolError, ApiError) as e:
            await _ws_fail(ws, protocol.CLOSE_POLICY, getattr(e, "detail", str(e)))
            return
        streamer = make_streamer(model, heads=names, identity=ident, lookahead=hdr.lookahead)
        index = {h: i for i, h in enumerate(names)}
        await ws.send_text(
            json.dumps(
                {
                    "type": "ready",
                    "sample_rate": hdr.sample_rate,
                    "lookahead": hdr.lookahead,
                    "heads": [_head_info(model, h) | {"index": index[h]} for h in names],
                }
            )
        )
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
                if hdr.format == "binary":
                    await ws.send_bytes(protocol.pack_frames(index[h], counts[h], f))
                else:
                    msg = {"type": "frames", "head": h, "start": counts[h], "frames": _round(f)}
                    await ws.send_text(json.dumps(msg))
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
                    await ws.send_text(json.dumps(done))
                    await ws.close(protocol.CLOSE_NORMAL)
                    return

        tasks = [asyncio.create_task(reader()), asyncio.create_task(processor())]
        try:
            while tasks:
                done_set, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
                for t in done_set:
                    tasks.remove(t)
                    t.result()  # re-raise a failure
        except ApiError as e:
            await _ws_fail(ws, e.status, e.detail)
        finally:
            for t in tasks:
                t.cancel()

    # ---- the viewer -------------------------------------------------------------------------
    @app.get("/", include_in_schema=False)
    async def index() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html", media_type="text/html")

    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    return app


def serve(model: Any, settings: ServeSettings, host: str = "127.0.0.1", port: int = 8000) -> None:
    """Run the app on uvicorn until interrupted (blocking)."""
    import uvicorn

    uvicorn.run(create_app(model, settings), host=host, port=port, log_level="info")

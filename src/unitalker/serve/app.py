"""The FastAPI app: REST inference, the WebSocket stream, mesh data and the viewer page.

Endpoints (the OpenAPI schema is at ``/openapi.json``, a browsable one at ``/docs``):

* ``POST /v1/animate`` multipart ``audio`` + form ``heads`` (comma separated), ``identity``,
  ``format`` (``json`` | ``bin`` | ``npz`` | ``csv`` | ``glb`` | ``mp4``), ``text`` (the
  words said: the lips close on their bilabials, :mod:`unitalker.inference.transcript`):
  JSON frames, the binary array container (see :mod:`unitalker.serve.protocol`) or an
  export file (a zip when a per-head format yields several files).
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

The rooms: the endpoints are routers in :mod:`unitalker.serve.routers` (``health``,
``models``, ``animate``, ``stream``), they share one
:class:`~unitalker.serve.state.ServeState` on ``app.state.serve``; the admission and body
limits are :class:`~unitalker.serve.gate.UploadGateMiddleware`; errors are
:mod:`unitalker.serve.errors`. This module only assembles them.
"""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path
from typing import TYPE_CHECKING

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from unitalker import __version__
from unitalker.serve.errors import ApiError, error_response
from unitalker.serve.gate import JobGate, Overloaded, UploadGateMiddleware
from unitalker.serve.routers import animate, health, models, stream
from unitalker.serve.routers.models import mesh_payload
from unitalker.serve.settings import ServeSettings
from unitalker.serve.state import ServeState

if TYPE_CHECKING:
    from unitalker.models.protocol import TalkerModel

__all__ = ["create_app", "mesh_payload", "serve"]

log = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).resolve().parent / "static"


def create_app(model: TalkerModel, settings: ServeSettings | None = None) -> FastAPI:
    """Build the app around a loaded model.

    Args:
        model: a :class:`~unitalker.models.unitalker.UniTalker` (anything with ``heads``,
            ``identity_index``, ``animate``, ``forward`` and ``config.identities``).
        settings: limits (default :class:`ServeSettings`).
    """
    settings = settings or ServeSettings()
    gate = JobGate(settings.max_concurrency, settings.queue_limit)

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
    app.state.serve = ServeState(model=model, settings=settings, gate=gate)
    app.add_middleware(
        UploadGateMiddleware,
        gate=gate,
        limit=settings.max_upload_bytes,
        timeout=settings.upload_timeout_seconds,
    )
    _add_error_handlers(app, gate)
    for room in (health, models, animate, stream):
        app.include_router(room.router)

    @app.get("/", include_in_schema=False)
    async def index() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html", media_type="text/html")

    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    return app


def _add_error_handlers(app: FastAPI, gate: JobGate) -> None:
    """Every error answered as JSON, never a crash: ours, the gate's, FastAPI's, the rest."""

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
        return error_response(exc.status, exc.code, exc.detail)

    @app.exception_handler(Overloaded)
    async def _overloaded(request: Request, exc: Overloaded) -> JSONResponse:
        r = error_response(503, "overloaded", str(exc), jobs=gate.stats())
        r.headers["Retry-After"] = "1"
        return r

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        errs = [{"loc": list(e.get("loc", ())), "msg": e.get("msg", "")} for e in exc.errors()]
        detail = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in errs)
        return error_response(422, "invalid_request", detail, errors=errs)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        codes = {404: "not_found", 405: "method_not_allowed", 400: "bad_request"}
        code = codes.get(exc.status_code, "http_error")
        return error_response(exc.status_code, code, exc.detail)

    @app.exception_handler(Exception)
    async def _internal(request: Request, exc: Exception) -> JSONResponse:
        log.exception("internal error on %s", request.url.path)
        return error_response(500, "internal", f"{type(exc).__name__}: {exc}")


def serve(
    model: TalkerModel, settings: ServeSettings, host: str = "127.0.0.1", port: int = 8000
) -> None:
    """Run the app on uvicorn until interrupted (blocking)."""
    import uvicorn

    uvicorn.run(create_app(model, settings), host=host, port=port, log_level="info")

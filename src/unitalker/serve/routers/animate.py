"""``POST /v1/animate``: a whole clip in; JSON frames, the binary container or an export file out.

The upload is admitted by :class:`~unitalker.serve.gate.UploadGateMiddleware` before its
body is read; decoding, inference and export run in a worker thread behind the gate.
"""

from __future__ import annotations

import asyncio
import io
import re
import tempfile
import time
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
from fastapi import APIRouter, File, Form, Request, UploadFile
from fastapi.responses import JSONResponse, Response

from unitalker.audio import SAMPLE_RATE, AudioError, AudioTooLong, load_audio
from unitalker.serve import protocol
from unitalker.serve.errors import ApiError
from unitalker.serve.gate import ADMISSION_KEY
from unitalker.serve.protocol import json_floats
from unitalker.serve.settings import FORMATS
from unitalker.serve.state import ServeState, state_of

router = APIRouter()

MEDIA_TYPES = {
    "npz": "application/octet-stream",
    "csv": "text/csv",
    "json": "application/json",
    "glb": "model/gltf-binary",
    "mp4": "video/mp4",
    "zip": "application/zip",
}
_SAFE_STEM = re.compile(r"[^A-Za-z0-9._-]+")

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


#: the longest ``text`` (the words of the clip) a request may carry, in characters
MAX_TEXT_CHARS = 20_000


def _check_text(st: ServeState, text: str | None, heads: list[str]) -> str | None:
    """The request's words (None: none), refused with ``422 bad_text`` before any work when
    they are too long or a requested head cannot take them."""
    if text is None or not text.strip():
        return None
    if len(text) > MAX_TEXT_CHARS:
        raise ApiError(422, "bad_text", f"text: at most {MAX_TEXT_CHARS} characters")
    from unitalker.inference.transcript import TranscriptError, check_heads

    try:
        check_heads(st.model, heads)
    except TranscriptError as e:
        raise ApiError(422, "bad_text", f"{e}; choose the heads with 'heads'") from None
    return text


def _job(
    st: ServeState,
    upload: Any,
    filename: str,
    heads: list[str],
    identity: str | None,
    fmt: str,
    text: str | None = None,
) -> tuple[np.ndarray, dict[str, Any], float, tuple[str, bytes, str] | None]:
    """Decode, animate (with ``text``: the lips closed on its bilabials) and, for a file
    format, export one upload, in a worker thread."""
    settings = st.settings
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
        results = st.model.animate(wav, sr=SAMPLE_RATE, heads=heads, identity=identity)
        if text is not None:
            from unitalker.inference.transcript import TranscriptError, with_words

            try:
                results = with_words(st.model, results, wav, text, sr=SAMPLE_RATE)
            except TranscriptError as e:
                raise ApiError(422, "bad_text", str(e)) from None
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


@router.post(
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
        422: {"description": "unknown head / identity / format, or words that cannot be used"},
        501: {"description": "mp4 asked where offscreen rendering (EGL) is unavailable"},
        503: {"description": "server busy: queue full"},
    },
)
async def animate(
    request: Request,
    audio: UploadFile = File(..., description="an audio file: wav, flac, mp3, ogg, m4a, webm..."),
    heads: str | None = Form(None, description="comma-separated head names (default: all)"),
    identity: str | None = Form(None, description="identity name or index (default: pivot)"),
    format: str = Form("json", description=f"one of {', '.join(FORMATS)}"),
    text: str | None = Form(
        None,
        description="the words said (English): the clip is force-aligned to them and the "
        "lips close on every /p/ /b/ /m/ (A2F-Synth heads only)",
    ),
) -> Response:
    st = state_of(request)
    fmt = (format or "json").lower()
    if fmt not in FORMATS:
        raise ApiError(422, "unknown_format", f"format must be one of {FORMATS}, got {format!r}")
    names, ident = st.check_request(heads, identity)
    words = _check_text(st, text, names)
    if not audio.size:
        raise ApiError(400, "bad_audio", f"{audio.filename or 'upload'}: empty file")
    wav, results, infer_s, file = await st.gate.run(
        _job,
        st,
        audio.file,
        audio.filename or "",
        names,
        ident,
        fmt,
        words,
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
        "model": st.settings.model_name,
        "seconds": seconds,
        "samples": len(wav),
        "identity": ident or "pivot",
        "inference_s": round(infer_s, 4),
    }
    if fmt == "bin":
        meta["heads"] = {
            h: {
                "fps": a.fps,
                "convention": a.convention,
                "kind": a.conv.kind,
                "channels": list(a.channel_names) if a.channel_names else None,
            }
            for h, a in results.items()
        }
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
                "frames": json_floats(a.data),
            }
            for h, a in results.items()
        }
    )
    return JSONResponse(meta | {"heads": out})

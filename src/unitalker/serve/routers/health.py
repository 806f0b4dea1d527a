"""``GET /health``: liveness and load (jobs, streams, uptime)."""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter, Request

from unitalker import __version__
from unitalker.serve.state import state_of

router = APIRouter()


@router.get("/health", summary="Liveness and load")
async def health(request: Request) -> dict[str, Any]:
    st = state_of(request)
    return {
        "status": "ok",
        "version": __version__,
        "model": st.settings.model_name,
        "heads": list(st.model.heads),
        "jobs": st.gate.stats(),
        "streams": {
            "open": st.streams,
            "max": st.settings.max_streams,
            "closed_not_reading": st.streams_not_reading,
        },
        "uptime_s": round(time.time() - st.started, 1),
    }

"""The service's errors: every one is answered as JSON ``{"error": CODE, "detail": MESSAGE}``.

The handlers that turn exceptions into these answers are installed by
:func:`unitalker.serve.app.create_app`.
"""

from __future__ import annotations

from typing import Any

from fastapi.responses import JSONResponse


class ApiError(Exception):
    """An error answered as ``{"error": code, "detail": message}`` with ``status``."""

    def __init__(self, status: int, code: str, detail: str) -> None:
        super().__init__(detail)
        self.status, self.code, self.detail = status, code, detail


def error_response(status: int, code: str, detail: Any, **extra: Any) -> JSONResponse:
    """The JSON error answer (``extra`` keys join ``error`` and ``detail``)."""
    return JSONResponse({"error": code, "detail": detail, **extra}, status_code=status)

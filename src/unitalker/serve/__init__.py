"""HTTP / WebSocket server and the browser viewer (``unitalker serve``).

* :mod:`unitalker.serve.app` builds the FastAPI app: ``create_app(model, settings)``.
* :mod:`unitalker.serve.routers` holds the endpoints, one router per room (``health``,
  ``models``, ``animate``, ``stream``; the WebSocket protocol is ``StreamSession``).
* :mod:`unitalker.serve.state` is what they share (:class:`ServeState` on ``app.state``).
* :mod:`unitalker.serve.settings` holds the limits (:class:`ServeSettings`).
* :mod:`unitalker.serve.gate` is the bounded job queue in front of the worker threads and
  the middleware that admits uploads and bounds their bodies.
* :mod:`unitalker.serve.errors` is the JSON error answer.
* :mod:`unitalker.serve.protocol` defines the WebSocket stream protocol and the compact
  binary array container shared by ``/v1/animate?format=bin``, ``/v1/mesh`` and the stream.
* :mod:`unitalker.serve.loadtest` is the load test (``unitalker loadtest``).
* ``static/`` is the viewer page (plain JS + WebGL, nothing fetched from the network).

FastAPI and uvicorn are imported only by these modules, never by ``import unitalker``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from unitalker.serve.settings import ServeSettings

if TYPE_CHECKING:
    from unitalker.models.protocol import TalkerModel

__all__ = ["ServeSettings", "create_app"]


def create_app(model: TalkerModel, settings: ServeSettings | None = None) -> Any:
    """Build the FastAPI app around a loaded model; see :func:`unitalker.serve.app.create_app`."""
    from unitalker.serve.app import create_app as _create

    return _create(model, settings)

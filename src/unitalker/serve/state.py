"""What the service's endpoints share: one :class:`ServeState` on ``app.state.serve``."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from starlette.requests import HTTPConnection

from unitalker.serve.errors import ApiError
from unitalker.serve.gate import JobGate
from unitalker.serve.settings import ServeSettings

if TYPE_CHECKING:
    from unitalker.models.protocol import TalkerModel


@dataclass
class ServeState:
    """The loaded model, the limits, the job gate and the stream counters of one app.

    Attributes:
        model: the loaded model, shared by every request.
        settings: the limits.
        gate: the bounded job queue every inference goes through.
        started: when the app was built (``time.time()``).
        streams: WebSocket streams open now.
        streams_not_reading: streams closed because their client read nothing.
    """

    model: TalkerModel
    settings: ServeSettings
    gate: JobGate
    started: float = field(default_factory=time.time)
    streams: int = 0
    streams_not_reading: int = 0

    def check_request(
        self, heads: str | None, identity: str | None
    ) -> tuple[list[str], str | None]:
        """``heads`` (comma separated; None: all) and ``identity`` checked against the model.

        Returns:
            the head names (in order, no repeats) and the identity (None: the default).

        Raises:
            ApiError: ``422`` for an unknown head or identity.
        """
        model = self.model
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


def state_of(conn: HTTPConnection) -> ServeState:
    """The state of the app serving ``conn`` (a request or a WebSocket)."""
    return conn.app.state.serve

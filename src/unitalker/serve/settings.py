"""Limits and options of the server, one frozen dataclass (no FastAPI import here)."""

from __future__ import annotations

from dataclasses import dataclass

FORMATS = ("json", "bin", "npz", "csv", "glb", "mp4")  # what POST /v1/animate can answer


@dataclass(frozen=True)
class ServeSettings:
    """What the server accepts and how much work it takes on at once.

    Attributes:
        max_concurrency: inference jobs running at the same time (worker threads).
        queue_limit: jobs allowed to wait for a worker; one more gets ``503``.
        max_upload_mb: largest accepted request body in MiB (``413`` beyond).
        max_seconds: longest accepted clip in seconds, uploads and streams (``413`` /
            an error message beyond).
        max_streams: WebSocket streams open at the same time (beyond: an error message
            and close code 1013, "try again later").
        stream_idle_seconds: a stream that sends nothing for this long is closed.
        stream_send_timeout_seconds: a stream client that reads nothing for this long
            (its socket buffer stays full) is closed and its place given back.
        upload_timeout_seconds: the whole request body must arrive within this time
            (``408`` beyond), so a client trickling bytes cannot hold a place for ever.
        decode_timeout_seconds: wall-time limit for decoding one upload (``400``).
        model_name: the name shown by ``GET /v1/models``.
        livelink: ``HOST:PORT`` to which every stream's ARKit head is also sent as Live
            Link Face UDP packets (Unreal's Live Link), or None.
        livelink_subject: the Live Link subject name of those packets.
    """

    max_concurrency: int = 2
    queue_limit: int = 8
    max_upload_mb: float = 25.0
    max_seconds: float = 120.0
    max_streams: int = 8
    stream_idle_seconds: float = 30.0
    stream_send_timeout_seconds: float = 10.0
    upload_timeout_seconds: float = 60.0
    decode_timeout_seconds: float = 30.0
    model_name: str = "model"
    livelink: str | None = None
    livelink_subject: str = "unitalker"

    def __post_init__(self) -> None:
        if self.max_concurrency < 1:
            raise ValueError(f"max_concurrency must be >= 1, got {self.max_concurrency}")
        if self.queue_limit < 0:
            raise ValueError(f"queue_limit must be >= 0, got {self.queue_limit}")
        if self.max_upload_mb <= 0:
            raise ValueError(f"max_upload_mb must be > 0, got {self.max_upload_mb}")
        if self.max_seconds <= 0:
            raise ValueError(f"max_seconds must be > 0, got {self.max_seconds}")
        if self.max_streams < 1:
            raise ValueError(f"max_streams must be >= 1, got {self.max_streams}")
        for name in (
            "stream_idle_seconds",
            "stream_send_timeout_seconds",
            "upload_timeout_seconds",
            "decode_timeout_seconds",
        ):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")
        if self.livelink is not None:
            from unitalker.export.livelink_udp import parse_address

            parse_address(self.livelink)  # a LiveLinkError (a ValueError) names the problem

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 1024 * 1024)

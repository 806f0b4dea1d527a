"""Live Link Face over UDP: ARKit frames to Unreal Engine's Live Link, live.

The packet is the one the Live Link Face iOS app sends and Unreal's ``AppleARKitFaceSupport``
plugin reads (packet version 6; see ``docs/livelink.md`` for the byte layout and the
sources). Everything is big-endian (Unreal's network byte order)::

    uint8    version = 6
    int32    length, then that many bytes   device id (UTF-8, no terminator)
    int32    length, then that many bytes   subject name
    int32    frame number   float32 sub-frame   int32 rate numerator   int32 rate denominator
    uint8    blendshape count = 61
    61 x float32   the 52 ARKit weights in Live Link order, then head yaw/pitch/roll and
                   left / right eye yaw/pitch/roll

Frame ``k`` of a head at ``fps`` is sent with frame number ``k`` at rate ``fps`` (as a
fraction: 30/1, 30000/1001 for 29.97), so its time is exactly the CSV export's
``Timecode`` of row ``k``; the values are the CSV's (mapped by ARKit name, clipped to
[0, 1], rotations 0) in float32.

Example::

    with LiveLinkSender("127.0.0.1", 11111, "synth_arkit52", subject="unitalker") as tx:
        for start, frames in chunks:          # [n, C] weights of the head, frames start..
            tx.send(frames, start)
"""

from __future__ import annotations

import logging
import socket
import struct
import time
import uuid
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from unitalker import conventions
from unitalker.animation import Animation
from unitalker.conventions import LIVE_LINK_ORDER, LIVE_LINK_ROTATIONS
from unitalker.export.livelink_csv import BLENDSHAPE_COUNT, live_link_indices, to_live_link

log = logging.getLogger(__name__)

PACKET_VERSION = 6
DEFAULT_PORT = 11111  # the Live Link Face app's and Unreal's default
CHANNELS: tuple[str, ...] = (*LIVE_LINK_ORDER, *LIVE_LINK_ROTATIONS)
assert len(CHANNELS) == BLENDSHAPE_COUNT == 61
_clock, _sleep = time.perf_counter, time.sleep  # module-level so tests can fake the clock
_MAX_NAME = 255  # Unreal's receive buffer holds names of up to 256 characters


class LiveLinkError(ValueError):
    """A Live Link address, head or packet that cannot be used; the message says why."""


@dataclass(frozen=True)
class LiveLinkPacket:
    """One decoded Live Link Face packet.

    Attributes:
        version: packet version (6).
        device_id: the sender's device id.
        subject: the Live Link subject name.
        frame: frame number; with ``sub_frame`` and ``rate`` the frame time.
        sub_frame: fraction of a frame, in [0, 1).
        rate: ``(numerator, denominator)`` frames per second.
        values: ``[61]`` float32 in :data:`CHANNELS` order.
    """

    version: int
    device_id: str
    subject: str
    frame: int
    sub_frame: float
    rate: tuple[int, int]
    values: np.ndarray

    @property
    def fps(self) -> float:
        return self.rate[0] / self.rate[1]

    @property
    def seconds(self) -> float:
        """Time of the frame in seconds since frame 0."""
        return (self.frame + self.sub_frame) * self.rate[1] / self.rate[0]


def frame_rate(fps: float) -> tuple[int, int]:
    """``fps`` as Unreal's ``FFrameRate`` fraction (29.97 -> 30000/1001, 30 -> 30/1)."""
    if not fps > 0:
        raise LiveLinkError(f"fps must be positive, got {fps}")
    # The NTSC rates (29.97 = 30000/1001...) as Unreal names them, rounded values included.
    ntsc = round(fps * 1.001)
    if ntsc % 6 == 0 and abs(fps - ntsc / 1.001) < 5e-3 and not float(fps).is_integer():
        return ntsc * 1000, 1001
    f = Fraction(fps).limit_denominator(1000)
    return f.numerator, f.denominator


def _pack_name(name: str, what: str) -> bytes:
    raw = name.encode("utf-8")
    if not raw or len(raw) > _MAX_NAME:
        raise LiveLinkError(f"{what} must be 1 to {_MAX_NAME} bytes, got {name!r}")
    return struct.pack(">i", len(raw)) + raw


def encode_packet(
    values: np.ndarray,
    *,
    frame: int,
    fps: float,
    subject: str,
    device_id: str,
    sub_frame: float = 0.0,
) -> bytes:
    """One Live Link Face packet.

    Args:
        values: ``[61]`` in :data:`CHANNELS` order.
        frame: frame number at ``fps``.
        fps: frame rate (sent as a fraction, :func:`frame_rate`).
        subject: Live Link subject name (what Unreal lists and the face's Live Link
            Pose node selects).
        device_id: the sender's id (Unreal tells devices apart by it).
        sub_frame: fraction of a frame.
    """
    values = np.asarray(values, dtype=">f4").reshape(-1)
    if values.shape != (BLENDSHAPE_COUNT,):
        raise LiveLinkError(f"a packet carries {BLENDSHAPE_COUNT} values, got {values.shape}")
    num, den = frame_rate(fps)
    return b"".join(
        [
            struct.pack(">B", PACKET_VERSION),
            _pack_name(device_id, "device id"),
            _pack_name(subject, "subject name"),
            struct.pack(">ifii", int(frame), float(sub_frame), num, den),
            struct.pack(">B", BLENDSHAPE_COUNT),
            values.tobytes(),
        ]
    )


def decode_packet(packet: bytes) -> LiveLinkPacket:
    """Parse a packet (ours or the Live Link Face app's); a malformed one is a LiveLinkError."""
    try:
        pos = 0
        (version,) = struct.unpack_from(">B", packet, pos)
        pos += 1
        if version != PACKET_VERSION:
            raise LiveLinkError(f"packet version {version}, expected {PACKET_VERSION}")
        names = []
        for _ in range(2):
            (n,) = struct.unpack_from(">i", packet, pos)
            pos += 4
            if not 0 <= n <= _MAX_NAME + 1 or pos + n > len(packet):
                raise LiveLinkError(f"bad name length {n} at byte {pos - 4}")
            names.append(packet[pos : pos + n].decode("utf-8"))
            pos += n
        frame, sub_frame, num, den = struct.unpack_from(">ifii", packet, pos)
        pos += 16
        (count,) = struct.unpack_from(">B", packet, pos)
        pos += 1
        if count != BLENDSHAPE_COUNT or len(packet) != pos + 4 * count:
            raise LiveLinkError(
                f"{count} blendshapes in a {len(packet)}-byte packet, expected {BLENDSHAPE_COUNT}"
            )
        values = np.frombuffer(packet, dtype=">f4", count=count, offset=pos).astype(np.float32)
    except (struct.error, UnicodeDecodeError) as e:
        raise LiveLinkError(f"malformed Live Link packet ({len(packet)} bytes): {e}") from e
    return LiveLinkPacket(version, names[0], names[1], frame, sub_frame, (num, den), values)


def parse_address(text: str) -> tuple[str, int]:
    """``HOST:PORT`` (or ``HOST`` for port 11111; ``[::1]:PORT`` for IPv6) -> (host, port)."""
    host, sep, port = text.rpartition(":")
    if not sep or (host.count(":") and not host.startswith("[")):
        host, port = text, str(DEFAULT_PORT)
    host = host.strip("[]")
    try:
        p = int(port)
    except ValueError:
        raise LiveLinkError(f"bad Live Link address {text!r}: the port must be a number") from None
    if not host or not 0 < p < 65536:
        raise LiveLinkError(f"bad Live Link address {text!r}: expected HOST:PORT")
    return host, p


def arkit_heads(heads: list[str]) -> list[str]:
    """The heads whose channels map to ARKit names (those Live Link can carry)."""
    return [h for h in heads if live_link_indices(conventions.get(h)) is not None]


class LiveLinkSender:
    """Sends one head's frames as Live Link Face packets to ``host:port`` over UDP.

    Args:
        host: the Unreal machine (its Live Link Face source listens on UDP 11111).
        port: UDP port.
        head: a blendshape convention whose channels have ARKit names.
        subject: Live Link subject name.
        device_id: the sender's id (default: a new random one).
        fps: frame rate of the frames (default: the convention's).
        pace: send frame ``k`` no earlier than ``k / fps`` seconds after frame 0 was
            sent, so a source faster than real time (a file) plays at speed in Unreal;
            a live source is never delayed by it (its frames are already late).
    """

    def __init__(
        self,
        host: str,
        port: int,
        head: str,
        *,
        subject: str = "unitalker",
        device_id: str | None = None,
        fps: float | None = None,
        pace: bool = False,
    ) -> None:
        conv = conventions.get(head)
        if live_link_indices(conv) is None:
            raise LiveLinkError(f"Live Link carries ARKit weights; head {head!r} has none")
        self.head = head
        self.fps = float(fps or conv.fps)
        self.subject = subject
        self.device_id = device_id or f"unitalker-{uuid.uuid4()}"
        self.pace = pace
        self._t0: float | None = None
        self.sent = 0
        _pack_name(subject, "subject name")  # fail now, not on the first frame
        _pack_name(self.device_id, "device id")
        try:
            info = socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM)[0]
        except socket.gaierror as e:
            raise LiveLinkError(f"cannot resolve Live Link host {host!r}: {e}") from e
        self.address = info[4]
        self._sock = socket.socket(info[0], socket.SOCK_DGRAM)
        log.info("Live Link: %s as subject %r -> %s:%d", head, subject, host, port)

    def values(self, frames: np.ndarray) -> np.ndarray:
        """``[n, C]`` head weights -> ``[n, 61]`` packet values (as the CSV export writes)."""
        weights = to_live_link(Animation(self.head, self.fps, frames))  # [n, 52]
        rotations = np.zeros((len(weights), len(LIVE_LINK_ROTATIONS)), dtype=np.float32)
        return np.concatenate([weights, rotations], axis=1)

    def send(self, frames: np.ndarray, start: int) -> None:
        """Send frames ``start, start + 1, ...`` (``[n, C]`` in the head's channels)."""
        for j, row in enumerate(self.values(frames)):
            k = start + j
            if self.pace:
                now = _clock()
                if self._t0 is None:
                    self._t0 = now - k / self.fps
                _sleep(max(0.0, self._t0 + k / self.fps - now))
            packet = encode_packet(
                row, frame=k, fps=self.fps, subject=self.subject, device_id=self.device_id
            )
            try:
                self._sock.sendto(packet, self.address)
            except OSError as e:  # nobody listening (ICMP refused) must not stop a stream
                log.debug("Live Link send failed: %s", e)
            self.sent += 1

    def close(self) -> None:
        self._sock.close()

    def __enter__(self) -> LiveLinkSender:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

"""Wire formats: the binary array container and the WebSocket stream protocol.

Binary array container (``application/x-unitalker-arrays``), used by
``POST /v1/animate`` with ``format=bin`` and ``GET /v1/mesh/{convention}?format=bin``::

    bytes 0..3   b"UTKA"
    bytes 4..7   uint32 LE: length H of the JSON header (padded with spaces to 4 bytes)
    bytes 8..8+H JSON header {"meta": {...}, "arrays": [{"name", "dtype", "shape", "offset"}]}
    then         the arrays, little-endian, C order, each at 8 + H + offset (4-byte aligned)

``dtype`` is ``float32`` or ``uint32``; a browser reads an array with
``new Float32Array(buffer, 8 + H + offset, product(shape))``.

WebSocket ``/v1/stream``:

1. client -> server, text: ``{"sample_rate": 16000, "heads": [...], "identity": null,
   "lookahead": 0.2, "format": "json" | "binary"}`` (every key optional).
2. server -> client, text: ``{"type": "ready", "sample_rate": 16000, "lookahead": 0.2,
   "heads": [{"name", "index", "fps", "kind", "dim", "channels"}]}``.
3. client -> server, binary: PCM16 little-endian mono chunks at ``sample_rate``, any size
   and pace (an odd trailing byte is kept for the next chunk); text ``{"type": "end"}``
   when the audio is over.
4. server -> client, as soon as the look-ahead allows, per head with new frames:
   text ``{"type": "frames", "head": name, "start": i, "frames": [[...], ...]}``, or with
   ``"format": "binary"`` a binary message::

       bytes 0..3  b"UTKF"
       uint32 LE   head index (from the ready message)
       uint32 LE   start frame
       uint32 LE   n frames
       uint32 LE   channels C
       float32 LE  [n, C] frames

5. server -> client, text, last: ``{"type": "done", "frames": {head: n}, "samples": S,
   "seconds": s}``; then the server closes (code 1000).

Errors are text ``{"type": "error", "message": ...}`` followed by a close: 1008 for a bad
header or audio, 1009 for a stream over the duration limit, 1013 when the server is full,
1011 for an internal error.
"""

from __future__ import annotations

import json
import math
import struct
from dataclasses import dataclass
from typing import Any

import numpy as np

ARRAYS_MAGIC = b"UTKA"
FRAMES_MAGIC = b"UTKF"
ARRAYS_MEDIA_TYPE = "application/x-unitalker-arrays"
_DTYPES = {"float32": np.dtype("<f4"), "uint32": np.dtype("<u4")}

CLOSE_NORMAL = 1000
CLOSE_POLICY = 1008
CLOSE_TOO_BIG = 1009
CLOSE_INTERNAL = 1011
CLOSE_TRY_LATER = 1013

# A header is a small object ({"heads": [...], ...}): anything bigger or deeper is refused
# before json decoding, which would otherwise recurse (RecursionError) on deep nesting.
MAX_HEADER_BYTES = 64 * 1024
MAX_HEADER_DEPTH = 8


class ProtocolError(ValueError):
    """A stream header or message that cannot be accepted (also: a malformed container)."""


def json_depth(text: str) -> int:
    """Deepest ``[``/``{`` nesting of a JSON text (brackets inside strings do not count)."""
    depth = deepest = 0
    in_str = escaped = False
    for ch in text:
        if in_str:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_str = False
        elif ch == '"':
            in_str = True
        elif ch in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif ch in "]}":
            depth -= 1
    return deepest


def pack_arrays(arrays: dict[str, np.ndarray], meta: dict[str, Any] | None = None) -> bytes:
    """Pack named arrays (float -> float32, integer -> uint32) and a JSON ``meta`` dict."""
    entries, blobs, offset = [], [], 0
    for name, arr in arrays.items():
        a = np.asarray(arr)
        dt = "uint32" if np.issubdtype(a.dtype, np.integer) else "float32"
        b = np.ascontiguousarray(a, dtype=_DTYPES[dt]).tobytes()
        entries.append({"name": name, "dtype": dt, "shape": list(a.shape), "offset": offset})
        blobs.append(b)
        offset += len(b)  # every element is 4 bytes, so offsets stay 4-byte aligned
    header = json.dumps({"meta": meta or {}, "arrays": entries}).encode()
    header += b" " * (-len(header) % 4)
    return ARRAYS_MAGIC + struct.pack("<I", len(header)) + header + b"".join(blobs)


def unpack_arrays(data: bytes) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Inverse of :func:`pack_arrays`: ``(arrays, meta)``.

    Raises:
        ProtocolError: anything that is not a well-formed container.
    """
    if data[:4] != ARRAYS_MAGIC or len(data) < 8:
        raise ProtocolError("not a unitalker array container (bad magic)")
    (h,) = struct.unpack_from("<I", data, 4)
    if 8 + h > len(data):
        raise ProtocolError(f"array container header of {h} bytes runs past the data")
    raw = data[8 : 8 + h]
    try:
        text = raw.decode("utf-8")
        if json_depth(text) > MAX_HEADER_DEPTH:
            raise ProtocolError("array container header nested too deeply")
        header = json.loads(text)
        base = 8 + h
        out = {}
        for e in header["arrays"]:
            dt = _DTYPES[e["dtype"]]
            shape = [int(s) for s in e["shape"]]
            if any(s < 0 for s in shape):
                raise ProtocolError(f"array {e['name']!r}: negative shape {shape}")
            n = math.prod(shape)
            offset = int(e["offset"])
            if offset < 0 or base + offset + n * dt.itemsize > len(data):
                raise ProtocolError(f"array {e['name']!r} runs past the data")
            out[str(e["name"])] = np.frombuffer(data, dt, n, base + offset).reshape(shape)
        meta = header["meta"]
        if not isinstance(meta, dict):
            raise ProtocolError("array container meta is not an object")
    except ProtocolError:
        raise
    except (ValueError, KeyError, TypeError, IndexError, OverflowError) as e:
        raise ProtocolError(f"malformed array container header: {type(e).__name__}: {e}") from e
    return out, meta


def json_floats(a: np.ndarray) -> list:
    """An array as the nested lists of the JSON answers, rounded to 6 decimals
    (micrometres for vertices in metres, 1e-6 for weights; halves the JSON)."""
    return np.round(np.asarray(a, dtype=np.float64), 6).tolist()


def pack_frames(head_index: int, start: int, frames: np.ndarray) -> bytes:
    """One binary stream message: ``[n, C]`` frames of one head from frame ``start``."""
    f = np.ascontiguousarray(frames, dtype="<f4")
    n, c = f.shape
    return FRAMES_MAGIC + struct.pack("<IIII", head_index, start, n, c) + f.tobytes()


def unpack_frames(data: bytes) -> tuple[int, int, np.ndarray]:
    """Inverse of :func:`pack_frames`: ``(head_index, start, frames [n, C])``."""
    if data[:4] != FRAMES_MAGIC or len(data) < 20:
        raise ProtocolError("not a unitalker frames message (bad magic or too short)")
    head, start, n, c = struct.unpack_from("<IIII", data, 4)
    if 20 + 4 * n * c != len(data):
        raise ProtocolError(f"frames message of {len(data)} bytes does not hold {n} x {c} floats")
    return head, start, np.frombuffer(data, "<f4", n * c, 20).reshape(n, c)


@dataclass(frozen=True)
class StreamHeader:
    sample_rate: int = 16000
    heads: tuple[str, ...] | None = None
    identity: str | int | None = None
    lookahead: float = 0.2
    format: str = "json"

    @classmethod
    def parse(cls, text: str | bytes | None) -> StreamHeader:
        """Validate the client's first message (unknown keys are an error, not ignored)."""
        if text is None:
            raise ProtocolError("the first message must be a JSON text header, got binary data")
        if len(text) > MAX_HEADER_BYTES:
            raise ProtocolError(f"header is larger than {MAX_HEADER_BYTES} bytes")
        if isinstance(text, bytes):
            try:
                text = text.decode("utf-8")
            except UnicodeDecodeError as e:
                raise ProtocolError(f"header is not UTF-8 text: {e}") from None
        if json_depth(text) > MAX_HEADER_DEPTH:
            raise ProtocolError(f"header is nested deeper than {MAX_HEADER_DEPTH} levels")
        try:
            d = json.loads(text)
        except ValueError as e:
            raise ProtocolError(f"header is not valid JSON: {e}") from e
        if not isinstance(d, dict):
            raise ProtocolError("header must be a JSON object")
        d.pop("type", None)
        known = {"sample_rate", "heads", "identity", "lookahead", "format"}
        unknown = set(d) - known
        if unknown:
            raise ProtocolError(f"unknown header keys {sorted(unknown)}; known: {sorted(known)}")
        sr = d.get("sample_rate", 16000)
        if not isinstance(sr, int) or isinstance(sr, bool) or not 4000 <= sr <= 192000:
            raise ProtocolError(f"sample_rate must be an integer in [4000, 192000], got {sr!r}")
        heads = d.get("heads")
        if heads is not None:
            if isinstance(heads, str):
                heads = [h for h in heads.split(",") if h]
            if not isinstance(heads, list) or not all(isinstance(h, str) for h in heads):
                raise ProtocolError("heads must be a list of head names")
            heads = tuple(heads) or None
        look = d.get("lookahead", 0.2)
        if not isinstance(look, (int, float)) or isinstance(look, bool) or not 0 <= look <= 5:
            raise ProtocolError(f"lookahead must be a number of seconds in [0, 5], got {look!r}")
        fmt = d.get("format", "json")
        if fmt not in ("json", "binary"):
            raise ProtocolError(f"format must be 'json' or 'binary', got {fmt!r}")
        ident = d.get("identity")
        if ident is not None and (not isinstance(ident, (str, int)) or isinstance(ident, bool)):
            raise ProtocolError("identity must be a name, an index or null")
        return cls(sr, heads, ident, float(look), fmt)

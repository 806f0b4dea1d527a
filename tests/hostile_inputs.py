"""Hostile audio inputs, shared by the audio-loader and the server tests.

Each builder returns bytes (or writes a file) that a careless decoder would trust: a
playlist of server paths, a concat list, WAV headers claiming absurd rates, a FLAC whose
header understates its length.
"""

from __future__ import annotations

import io
import struct
from pathlib import Path

import numpy as np


def wav_bytes(rate: int, n: int = 1600, channels: int = 1) -> bytes:
    """16-bit PCM WAV of ``n`` silent frames whose header says ``rate`` Hz."""
    data = np.zeros(n * channels, "<i2").tobytes()
    block = channels * 2
    size = len(data)
    fmt = struct.pack("<IHHIIHH", 16, 1, channels, rate, (rate * block) & 0xFFFFFFFF, block, 16)
    riff = b"WAVE" + b"fmt " + fmt + b"data" + struct.pack("<I", size & 0xFFFFFFFF)
    return b"RIFF" + struct.pack("<I", (len(riff) + len(data)) & 0xFFFFFFFF) + riff + data


def tone(seconds: float, sr: int = 16000, freq: float = 440.0) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    return (0.5 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def flac_bytes(wav: np.ndarray, sr: int = 16000, claim_samples: int | None = None) -> bytes:
    """FLAC of ``wav``; ``claim_samples`` overwrites STREAMINFO's total-samples field (a lie)."""
    import soundfile as sf

    buf = io.BytesIO()
    sf.write(buf, wav, sr, format="FLAC", subtype="PCM_16")
    b = bytearray(buf.getvalue())
    if claim_samples is not None:
        # "fLaC", a 4-byte block header, then STREAMINFO; its bytes 10..17 hold 20 bits of
        # rate, 3 of channels, 5 of bits per sample and 36 of total samples.
        (word,) = struct.unpack_from(">Q", b, 18)
        word = (word & ~((1 << 36) - 1)) | (claim_samples & ((1 << 36) - 1))
        struct.pack_into(">Q", b, 18, word)
    return bytes(b)


def hls_playlist(target: Path, *, endlist: bool = True) -> bytes:
    """An HLS playlist whose one segment is ``target``, an absolute path on the server."""
    text = f"#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXTINF:2.0,\n{target}\n"
    return (text + ("#EXT-X-ENDLIST\n" if endlist else "")).encode()


def concat_list(target: Path) -> bytes:
    """An ffconcat list naming ``target``."""
    return f"ffconcat version 1.0\nfile {target}\n".encode()

"""Audio input: decoding any common format, mixing down, resampling to 16 kHz.

Every model in unitalker consumes mono float32 audio at :data:`SAMPLE_RATE`.
Files are decoded with PyAV (FFmpeg's libraries, shipped in the wheel), so wav, flac,
mp3, ogg/opus and m4a/aac all work without a system ffmpeg. In-memory arrays at any
rate are resampled with a polyphase filter.
"""

from __future__ import annotations

import math
from fractions import Fraction
from pathlib import Path

import numpy as np

SAMPLE_RATE = 16000  # Hz, what every encoder (HF and built-in) expects
ENCODER_HZ = 50  # frames per second of the encoders' output (hop of 320 samples)
HOP_LENGTH = SAMPLE_RATE // ENCODER_HZ
assert HOP_LENGTH * ENCODER_HZ == SAMPLE_RATE

AUDIO_EXTENSIONS = (
    ".wav",
    ".flac",
    ".mp3",
    ".ogg",
    ".opus",
    ".m4a",
    ".aac",
    ".mp4",
    ".webm",
    ".wma",
    ".aiff",
    ".aif",
)


class AudioError(ValueError):
    """Raised for audio that cannot be used; the message names the source."""


def load_audio(path: str | Path, sr: int = SAMPLE_RATE) -> np.ndarray:
    """Decode an audio file (or a ``.npy`` of samples at ``sr``) to mono float32 at ``sr``.

    Args:
        path: the file. ``.npy`` files hold samples already at 16 kHz (the original
            release's convention).
        sr: target sample rate.

    Returns:
        float32 array ``[S]`` in [-1, 1].

    Raises:
        AudioError: missing, empty, undecodable, silent-length or non-finite audio.
    """
    p = Path(path)
    if not p.exists():
        raise AudioError(f"{p}: no such file")
    if p.is_dir():
        raise AudioError(f"{p}: is a folder, not an audio file")
    if p.stat().st_size == 0:
        raise AudioError(f"{p}: empty file")
    if p.suffix.lower() == ".npy":
        try:
            wav = np.load(p, allow_pickle=False)
        except Exception as e:  # noqa: BLE001
            raise AudioError(f"{p}: cannot read npy audio: {e}") from e
        wav = np.asarray(wav, dtype=np.float32)
        if wav.ndim == 2:
            wav = wav.mean(axis=0 if wav.shape[0] < wav.shape[1] else 1)
        native = SAMPLE_RATE
    else:
        wav, native = _decode_with_av(p)
    return prepare_waveform(wav, native, sr, source=str(p))


def _decode_with_av(p: Path) -> tuple[np.ndarray, int]:
    import av

    chunks: list[np.ndarray] = []
    try:
        with av.open(str(p), metadata_errors="ignore") as container:
            streams = [s for s in container.streams if s.type == "audio"]
            if not streams:
                raise AudioError(f"{p}: no audio stream found")
            stream = streams[0]
            native = stream.codec_context.sample_rate or stream.rate
            # Let libswresample do the format conversion and mixdown to mono float.
            resampler = av.AudioResampler(format="fltp", layout="mono", rate=native)
            for frame in container.decode(stream):
                for out in resampler.resample(frame):
                    chunks.append(out.to_ndarray()[0].copy())
            for out in resampler.resample(None):
                chunks.append(out.to_ndarray()[0].copy())
    except AudioError:
        raise
    except Exception as e:  # noqa: BLE001 - any decoder failure becomes one clear error
        raise AudioError(f"{p}: cannot decode audio ({type(e).__name__}: {e})") from e
    if not chunks or not native:
        raise AudioError(f"{p}: contains no audio samples")
    return np.concatenate(chunks).astype(np.float32), int(native)


def prepare_waveform(
    wav: np.ndarray, sr: int, target_sr: int = SAMPLE_RATE, *, source: str = "audio"
) -> np.ndarray:
    """Mix down, check and resample an in-memory waveform.

    Args:
        wav: ``[S]``, ``[S, C]`` or ``[C, S]`` samples (channels are averaged; the shorter
            axis is taken as channels). Integer PCM is scaled to [-1, 1].
        sr: its sample rate.
        target_sr: the rate to return.
        source: a name for error messages.

    Returns:
        float32 ``[S']`` at ``target_sr``.
    """
    wav = np.asarray(wav)
    if np.issubdtype(wav.dtype, np.integer):
        wav = wav.astype(np.float32) / float(np.iinfo(wav.dtype).max + 1)
    wav = wav.astype(np.float32, copy=False)
    if wav.ndim == 2:
        wav = wav.mean(axis=0 if wav.shape[0] < wav.shape[1] else 1)
    elif wav.ndim != 1:
        raise AudioError(f"{source}: expected 1-D or 2-D samples, got shape {wav.shape}")
    if wav.size == 0:
        raise AudioError(f"{source}: zero-length audio")
    if not np.isfinite(wav).all():
        raise AudioError(f"{source}: audio contains NaN or infinite samples")
    if sr <= 0:
        raise AudioError(f"{source}: invalid sample rate {sr}")
    if sr != target_sr:
        wav = resample(wav, sr, target_sr)
    if wav.size < 1:
        raise AudioError(f"{source}: audio too short after resampling")
    return np.ascontiguousarray(wav, dtype=np.float32)


def resample(wav: np.ndarray, sr: int, target_sr: int) -> np.ndarray:
    """Band-limited polyphase resampling ``[S] -> [S * target_sr / sr]``."""
    if sr == target_sr:
        return wav
    from scipy.signal import resample_poly

    rates = []
    for r in (sr, target_sr):
        # a rate from a (possibly mutated) header: a positive whole number or an AudioError
        if isinstance(r, bool) or not isinstance(r, (int, np.integer, float)) or not r > 0:
            raise AudioError(f"cannot resample from {sr!r} Hz to {target_sr!r} Hz: invalid rate")
        if isinstance(r, float) and not (math.isfinite(r) and r.is_integer()):
            raise AudioError(f"cannot resample from {sr!r} Hz to {target_sr!r} Hz: invalid rate")
        rates.append(int(r))
    frac = Fraction(rates[1], rates[0]).limit_denominator(1000)
    if frac.numerator < 1:  # e.g. 2**31-1 Hz to 16 kHz: no ratio with a denominator <= 1000
        raise AudioError(
            f"cannot resample from {sr} Hz to {target_sr} Hz: the ratio is too extreme"
        )
    out = resample_poly(wav.astype(np.float64), frac.numerator, frac.denominator)
    return out.astype(np.float32)


def frame_count(n_samples: int, fps: float, sr: int = SAMPLE_RATE) -> int:
    """Output frames for a clip, as the original: ``round(seconds * fps)`` (Python rounding)."""
    return max(1, round(n_samples / sr * fps))


def encoder_frames(n_samples: int) -> int:
    """Approximate 50 Hz encoder frames for ``n_samples`` (the HF conv stack's exact count)."""
    # wav2vec2 / WavLM conv stack: kernels (10,3,3,3,3,2,2), strides (5,2,2,2,2,2,2).
    length = n_samples
    for k, s in zip((10, 3, 3, 3, 3, 2, 2), (5, 2, 2, 2, 2, 2, 2), strict=True):
        length = math.floor((length - k) / s) + 1
    return max(length, 0)


def write_wav(path: str | Path, wav: np.ndarray, sr: int = SAMPLE_RATE) -> None:
    """Write float samples as 16-bit PCM wav."""
    import soundfile as sf

    sf.write(str(path), np.clip(np.asarray(wav, dtype=np.float32), -1, 1), sr, subtype="PCM_16")

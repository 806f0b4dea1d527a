"""Audio input: decoding common formats safely, mixing down, resampling to 16 kHz.

Every model in unitalker consumes mono float32 audio at :data:`SAMPLE_RATE`.
Files are decoded with PyAV (FFmpeg's libraries, shipped in the wheel), so wav, flac,
mp3, ogg/opus, m4a/aac, webm and aiff all work without a system ffmpeg; libswresample
mixes files down and resamples them while decoding. In-memory arrays at any rate are
resampled with a polyphase filter (:func:`resample`), and audio that arrives in chunks
(the WebSocket stream) with the same filter, chunk by chunk (:class:`StreamResampler`).

Decoding is bounded, because the server decodes what strangers upload:

* only plain audio/video containers are opened (:data:`AUDIO_DEMUXERS`): no playlists
  (HLS ``.m3u8``), no ``concat`` lists, no network protocols. The bytes reach FFmpeg as a
  Python file object and every nested open FFmpeg attempts is refused, so a file can never
  make FFmpeg read another path (``allow_any_container=True`` restores FFmpeg's own
  choice for a user's own local files);
* the sample rate (:data:`MIN_SAMPLE_RATE`..:data:`MAX_SAMPLE_RATE`, the one rule of the
  CLI, the HTTP API and the WebSocket), the channel count and, when a limit is given, the
  duration are checked from the container's metadata before anything is decoded; then
  decoding counts samples and stops as soon as the decoded audio passes the limit
  (metadata can lie) or the wall-time limit is spent.
"""

from __future__ import annotations

import math
import time
from fractions import Fraction
from pathlib import Path
from typing import IO, Any

import numpy as np

SAMPLE_RATE = 16000  # Hz, what every encoder (HF and built-in) expects
ENCODER_HZ = 50  # frames per second of the encoders' output (hop of 320 samples)
HOP_LENGTH = SAMPLE_RATE // ENCODER_HZ
assert HOP_LENGTH * ENCODER_HZ == SAMPLE_RATE

# The accepted range of input sample rates, everywhere (files, uploads, streams): below
# 4 kHz there is no speech band left to animate from, and above 192 kHz is no real
# recording, only a header that lies (a "1 Hz" header turns 200 samples into 200 s).
MIN_SAMPLE_RATE = 4_000
MAX_SAMPLE_RATE = 192_000
MAX_CHANNELS = 64  # more than any real recording; each is decoded before the mixdown
DECODE_TIMEOUT_S = 120.0  # default wall-time limit for decoding one file

# FFmpeg demuxers allowed to open a file: plain containers that carry their samples
# inside themselves. Deliberately absent: hls/dash (playlists of other URLs), concat,
# image2, and every demuxer that opens another path or protocol.
AUDIO_DEMUXERS = (
    "wav",
    "w64",
    "flac",
    "mp3",
    "ogg",
    "mov",  # also mp4, m4a, 3gp
    "matroska",  # also webm
    "aac",
    "aiff",
    "asf",  # wma
    "caf",
)

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


class AudioTooLong(AudioError):
    """The audio is longer than the caller's limit (found from metadata or while decoding).

    Attributes:
        seconds: the duration known when refusing (at least this long).
        limit: the limit in seconds.
    """

    def __init__(self, message: str, seconds: float, limit: float) -> None:
        super().__init__(message)
        self.seconds, self.limit = seconds, limit


def check_sample_rate(sr: Any, source: str = "audio") -> int:
    """The one sample-rate rule: an integer in [:data:`MIN_SAMPLE_RATE`, :data:`MAX_SAMPLE_RATE`].

    Raises:
        AudioError: naming ``source`` and the accepted range.
    """
    ok = isinstance(sr, (int, np.integer)) and not isinstance(sr, bool)
    if not ok or not MIN_SAMPLE_RATE <= int(sr) <= MAX_SAMPLE_RATE:
        raise AudioError(
            f"{source}: sample rate {sr!r} Hz is outside the accepted "
            f"{MIN_SAMPLE_RATE}-{MAX_SAMPLE_RATE} Hz"
        )
    return int(sr)


def load_audio(
    path: str | Path | IO[bytes],
    sr: int = SAMPLE_RATE,
    *,
    name: str | None = None,
    max_seconds: float | None = None,
    timeout: float = DECODE_TIMEOUT_S,
    allow_any_container: bool = False,
) -> np.ndarray:
    """Decode an audio file (or a ``.npy`` of samples at 16 kHz) to mono float32 at ``sr``.

    Args:
        path: the file, or a readable binary file object (an upload; never a path FFmpeg
            opens itself). ``.npy`` files hold samples already at 16 kHz (the original
            release's convention).
        sr: target sample rate.
        name: the name used in error messages (and whose suffix marks ``.npy``) for a
            file object; default: the path.
        max_seconds: refuse audio longer than this (:class:`AudioTooLong`), from the
            metadata before decoding and from the decoded samples while decoding.
        timeout: wall-time limit for decoding, seconds.
        allow_any_container: let FFmpeg pick any demuxer and protocol (playlists, concat
            lists...) for a local path, as a plain ``ffmpeg -i`` would. Only for a user's
            own files: such a file can make FFmpeg read other files.

    Returns:
        float32 array ``[S]`` in [-1, 1].

    Raises:
        AudioError: missing, empty, undecodable, unsupported-container, out-of-range rate,
            silent-length or non-finite audio; :class:`AudioTooLong` past ``max_seconds``.
    """
    # Every branch yields samples at ``rate``; the one post-decode step (mixdown, integer
    # scaling, resampling, the checks) is prepare_waveform at the end.
    rate = sr  # the decoders resample while decoding; a .npy holds 16 kHz samples
    if isinstance(path, (str, Path)):
        p = Path(path)
        source = name or str(p)
        if not p.exists():
            raise AudioError(f"{source}: no such file")
        if p.is_dir():
            raise AudioError(f"{source}: is a folder, not an audio file")
        if p.stat().st_size == 0:
            raise AudioError(f"{source}: empty file")
        if p.suffix.lower() == ".npy":
            with open(p, "rb") as f:
                wav, rate = _load_npy(f, source, max_seconds), SAMPLE_RATE
        elif allow_any_container:
            wav = _decode_with_av(str(p), sr, source, max_seconds, timeout, restrict=False)
        elif (
            p.suffix.lower() == ".wav"
            and (fast := _read_pcm16_mono_wav(p, sr, source, max_seconds)) is not None
        ):
            wav = fast
        else:
            with open(p, "rb") as f:
                wav = _decode_with_av(f, sr, source, max_seconds, timeout, restrict=True)
    else:
        source = name or "upload"
        if Path(source).suffix.lower() == ".npy":
            wav, rate = _load_npy(path, source, max_seconds), SAMPLE_RATE
        else:
            wav = _decode_with_av(path, sr, source, max_seconds, timeout, restrict=True)
    return prepare_waveform(wav, rate, sr, source=source)


def _read_pcm16_mono_wav(
    p: Path, sr: int, source: str, max_seconds: float | None
) -> np.ndarray | None:
    """A mono 16-bit PCM wav already at ``sr``, read with the standard library.

    The common case (the examples, TTS output) without importing PyAV (~0.15 s of a short
    clip's run); the samples equal PyAV's ``s16 -> fltp`` conversion (x / 32768). Anything
    else (another rate, layout or codec, a damaged header) returns None and goes through
    the PyAV path, which names the problem. The limits are checked from the header before
    the samples are read.
    """
    import wave

    try:
        with wave.open(str(p), "rb") as w:
            if w.getnchannels() != 1 or w.getsampwidth() != 2 or w.getcomptype() != "NONE":
                return None
            if w.getframerate() != sr:
                return None  # resampled by libswresample while decoding, as other files
            n = w.getnframes()
            # The checks PyAV's path makes from its header; of their errors only the
            # length limit is raised here, any other (an odd rate) goes to PyAV below.
            _check_header(source, sr, 1, n / sr, max_seconds)
            raw = w.readframes(n)
    except AudioTooLong:
        raise
    except Exception:  # noqa: BLE001 - the stdlib parser raises many kinds on a damaged header
        return None
    if len(raw) < 2 or len(raw) % 2:
        return None  # truncated or odd: PyAV's decoder names the problem
    return pcm16_to_float(raw)


def pcm16_to_float(raw: bytes) -> np.ndarray:
    """Little-endian 16-bit PCM bytes -> float32 ``[S]`` in [-1, 1) (``x / 32768``, as
    FFmpeg's ``s16 -> flt``). ``raw`` must hold a whole number of samples."""
    return np.frombuffer(raw, dtype="<i2").astype(np.float32) / np.float32(32768.0)


def _check_header(
    source: str, rate: Any, channels: int, seconds: float | None, max_seconds: float | None
) -> int:
    """The checks every decoder makes from a header, before any sample is read.

    Returns:
        the rate, checked by :func:`check_sample_rate`.

    Raises:
        AudioError: a rate outside the accepted range or over :data:`MAX_CHANNELS`;
            :class:`AudioTooLong` when ``seconds`` (None: unknown) passes ``max_seconds``.
    """
    native = check_sample_rate(rate, source)
    if channels > MAX_CHANNELS:
        raise AudioError(f"{source}: {channels} channels; at most {MAX_CHANNELS}")
    if max_seconds is not None and seconds is not None and seconds > max_seconds:
        raise _too_long(source, seconds, max_seconds, "")
    return native


def _first_audio_stream(container: Any, source: str) -> Any:
    streams = [s for s in container.streams if s.type == "audio"]
    if not streams:
        raise AudioError(f"{source}: no audio stream found")
    return streams[0]


def metadata_seconds(path: str | Path) -> float | None:
    """A file's duration from its container's metadata, without decoding (None: unknown).

    Opened like :func:`load_audio` opens it: plain containers only, nothing else read.

    Raises:
        AudioError: not a plain audio/video file, no audio stream, or a rate outside
            :func:`check_sample_rate`'s range.
    """
    import av

    p = Path(path)
    try:
        with open(p, "rb") as f, av.open(f, "r", **_open_options(DECODE_TIMEOUT_S)) as container:
            stream = _first_audio_stream(container, str(p))
            check_sample_rate(stream.codec_context.sample_rate or stream.rate, str(p))
            return _metadata_seconds(container, stream)
    except AudioError:
        raise
    except Exception as e:  # noqa: BLE001
        raise AudioError(f"{p}: cannot read audio header ({type(e).__name__}: {e})") from e


def _too_long(source: str, seconds: float, limit: float, how: str) -> AudioTooLong:
    return AudioTooLong(
        f"{source}: audio is {how}{seconds:.1f} s; the limit is {limit:g} s", seconds, limit
    )


def _load_npy(f: IO[bytes], source: str, max_seconds: float | None) -> np.ndarray:
    """A ``.npy`` of 16 kHz samples as float32 (``[S]``, or ``[S, C]`` / ``[C, S]`` not yet
    mixed down); its shape is checked against the limit before reading."""
    try:
        fmt = np.lib.format
        major, _ = fmt.read_magic(f)
        read_header = fmt.read_array_header_1_0 if major == 1 else fmt.read_array_header_2_0
        shape, _, _ = read_header(f)
        n = max(shape) if len(shape) else 1
        if max_seconds is not None and n / SAMPLE_RATE > max_seconds:
            raise _too_long(source, n / SAMPLE_RATE, max_seconds, "")
        f.seek(0)
        wav = np.load(f, allow_pickle=False)
    except AudioError:
        raise
    except Exception as e:  # noqa: BLE001
        raise AudioError(f"{source}: cannot read npy audio: {e}") from e
    return np.asarray(wav, dtype=np.float32)  # mixed down by prepare_waveform


def _refuse_nested_open(url: str, flags: int, options: dict) -> Any:
    # FFmpeg asks for this when a file refers to another one (a playlist entry, a
    # reference track...): the decoded audio must come only from the bytes given.
    raise PermissionError("the file refers to another file or URL; refused")


def _open_options(timeout: float, *, restrict: bool = True) -> dict[str, Any]:
    """``av.open`` keywords: the demuxer allow-list and no nested opens, unless not ``restrict``."""
    kwargs: dict[str, Any] = {"metadata_errors": "ignore", "timeout": (timeout, timeout)}
    if restrict:
        kwargs["container_options"] = {"format_whitelist": ",".join(AUDIO_DEMUXERS)}
        kwargs["io_open"] = _refuse_nested_open
    return kwargs


def _metadata_seconds(container: Any, stream: Any) -> float | None:
    if stream.duration and stream.time_base:
        return float(stream.duration * stream.time_base)
    if container.duration:
        return container.duration / 1_000_000  # AV_TIME_BASE
    return None


def _decode_with_av(
    src: str | IO[bytes],
    sr: int,
    source: str,
    max_seconds: float | None,
    timeout: float,
    *,
    restrict: bool,
) -> np.ndarray:
    """Decode the first audio stream to mono float32 ``[S]`` at ``sr``, within the limits."""
    import av

    deadline = time.monotonic() + timeout
    kwargs = _open_options(timeout, restrict=restrict)
    chunks: list[np.ndarray] = []
    opened = False
    try:
        with av.open(src, "r", **kwargs) as container:
            opened = True
            if restrict and not set(container.format.name.split(",")) & set(AUDIO_DEMUXERS):
                raise AudioError(f"{source}: {container.format.name} files are not accepted")
            stream = _first_audio_stream(container, source)
            native = _check_header(
                source,
                stream.codec_context.sample_rate or stream.rate,
                stream.codec_context.layout.nb_channels,
                _metadata_seconds(container, stream),
                max_seconds,
            )
            # libswresample converts, mixes down to mono and resamples frame by frame, so
            # memory follows the output at ``sr``, never the input's rate.
            resampler = av.AudioResampler(format="fltp", layout="mono", rate=sr)
            budget = math.inf if max_seconds is None else max_seconds * sr
            n = 0
            for packet in container.demux(stream):
                if time.monotonic() > deadline:
                    raise AudioError(f"{source}: decoding took over {timeout:g} s; refused")
                for frame in packet.decode():
                    if frame.sample_rate != native:  # a stream that changes its rate
                        check_sample_rate(frame.sample_rate, source)
                    for out in resampler.resample(frame):
                        chunks.append(out.to_ndarray()[0].copy())
                        n += chunks[-1].size
                if n > budget:  # the metadata said less (or nothing): stop here
                    raise _too_long(source, n / sr, max_seconds, "over ")
            for out in resampler.resample(None):
                chunks.append(out.to_ndarray()[0].copy())
    except AudioError:
        raise
    except Exception as e:  # noqa: BLE001 - any decoder failure becomes one clear error
        accepted = f"accepted containers: {', '.join(AUDIO_DEMUXERS)}"
        if restrict and (
            isinstance(e, PermissionError) or (not opened and isinstance(e, av.error.ArgumentError))
        ):
            # It named another file (the refused nested open) or only a demuxer outside
            # the allow-list took it: say so, not FFmpeg's "invalid argument".
            raise AudioError(
                f"{source}: cannot decode audio: not a plain audio/video file ({accepted}); "
                "playlists and lists of other files are refused"
            ) from e
        if not opened and isinstance(e, av.error.InvalidDataError):
            what = f"not a plain audio/video file ({accepted})" if restrict else "unknown format"
            raise AudioError(f"{source}: cannot decode audio: {what}") from e
        raise AudioError(f"{source}: cannot decode audio ({type(e).__name__}: {e})") from e
    if not chunks:
        raise AudioError(f"{source}: contains no audio samples")
    return np.concatenate(chunks).astype(np.float32, copy=False)


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

    Raises:
        AudioError: a rate outside :func:`check_sample_rate`'s range, no samples, a bad
            shape or non-finite samples.
    """
    check_sample_rate(sr, source)
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
    if sr != target_sr:
        wav = resample(wav, sr, target_sr)
    if wav.size < 1:
        raise AudioError(f"{source}: audio too short after resampling")
    return np.ascontiguousarray(wav, dtype=np.float32)


def resample(wav: np.ndarray, sr: int, target_sr: int) -> np.ndarray:
    """Band-limited polyphase resampling ``[S] -> [ceil(S * target_sr / sr)]``.

    The filter is :func:`_lowpass` (scipy's own design for ``resample_poly``); audio that
    arrives in chunks goes through :class:`StreamResampler`, the same filter.
    """
    if sr == target_sr:
        return wav
    from scipy.signal import resample_poly

    up, down = _ratio(sr, target_sr)
    if up == down == 1:  # rates within 0.1 %: resample_poly would copy the samples too
        return wav.astype(np.float32)
    out = resample_poly(wav.astype(np.float64), up, down, window=_lowpass(up, down))
    return out.astype(np.float32)


def _ratio(sr: Any, target_sr: Any) -> tuple[int, int]:
    """``(up, down)``, coprime, with ``target_sr / sr ~= up / down`` and ``down <= 1000``."""
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
    return frac.numerator, frac.denominator


def _lowpass(up: int, down: int) -> np.ndarray:
    """The anti-aliasing FIR of ``resample_poly(x, up, down)``: ``[20 * max(up, down) + 1]``.

    scipy's default design, written out so that :class:`StreamResampler` uses the very
    same taps: a Kaiser-windowed sinc (beta 5) cut at the lower of the two Nyquists.
    """
    from scipy.signal import firwin

    max_rate = max(up, down)
    return firwin(2 * 10 * max_rate + 1, 1.0 / max_rate, window=("kaiser", 5.0))


class StreamResampler:
    """:func:`resample` for audio that arrives in chunks (a WebSocket stream).

    The same anti-aliasing polyphase filter, applied as samples come: the outputs of every
    call and then :meth:`flush`, concatenated, equal ``resample(whole, sr, target_sr)`` (to
    float rounding) whatever the chunk sizes. An output sample leaves as soon as every
    input sample its filter spans has arrived, so the stream lags by half the filter,
    ``10 * max(up, down) / up`` input samples (30, 0.6 ms, from 48 kHz to 16 kHz) until
    :meth:`flush` ends it.

    (soxr's ``ResampleStream`` would do the job with another filter and a compiled
    dependency; this keeps one filter for files, arrays and streams.)

    Args:
        sr: rate of the incoming samples.
        target_sr: rate to return.

    Raises:
        AudioError: rates :func:`resample` cannot convert between.
    """

    _BLOCK = 4096  # output samples computed at once: bounds the [n, taps] gather

    def __init__(self, sr: int, target_sr: int = SAMPLE_RATE) -> None:
        self.up, self.down = _ratio(sr, target_sr) if sr != target_sr else (1, 1)
        self._received = 0  # input samples so far
        self._next = 0  # index of the next output sample
        self._done = False
        if self.up == self.down == 1:  # as resample_poly: the samples unchanged
            return
        h = _lowpass(self.up, self.down) * self.up
        self._half = (h.size - 1) // 2
        # Polyphase bank: output k is sum_i bank[r, i] * x[j - i] with t = k*down + half,
        # r = t % up and j = t // up (what resample_poly computes, one output at a time).
        self._taps = -(-h.size // self.up)
        padded = np.zeros(self._taps * self.up)
        padded[: h.size] = h
        self._bank = padded.reshape(self._taps, self.up).T.copy()  # [up, taps]
        self._buf = np.zeros(self._taps - 1)  # input from index _start on (zeros before 0)
        self._start = 1 - self._taps

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """Feed ``[S]`` more samples; returns the output samples now final (float32)."""
        if self._done:
            raise RuntimeError("StreamResampler: fed after flush()")
        x = np.asarray(x, dtype=np.float64).reshape(-1)
        if self.up == self.down == 1:
            return x.astype(np.float32)
        self._buf = np.concatenate([self._buf, x])
        self._received += x.size
        # output k needs inputs up to (k*down + half) // up: all < received
        end = -(-(self._received * self.up - self._half) // self.down)
        return self._emit(end)

    def flush(self) -> np.ndarray:
        """The last output samples (the input is taken to end here, zeros after)."""
        if self._done or self.up == self.down == 1:
            self._done = True
            return np.zeros(0, np.float32)
        self._done = True
        end = -(-(self._received * self.up) // self.down)  # resample_poly's length
        last_needed = ((end - 1) * self.down + self._half) // self.up if end > 0 else 0
        pad = last_needed + 1 - (self._start + self._buf.size)
        if pad > 0:
            self._buf = np.concatenate([self._buf, np.zeros(pad)])
        return self._emit(end)

    def _emit(self, end: int) -> np.ndarray:
        out = []
        lag = np.arange(self._taps)
        for k0 in range(self._next, end, self._BLOCK):
            t = np.arange(k0, min(end, k0 + self._BLOCK)) * self.down + self._half
            j = t // self.up - self._start  # [n] newest input of each output, in _buf
            window = self._buf[j[:, None] - lag]  # [n, taps]
            out.append(np.einsum("nt,nt->n", self._bank[t % self.up], window))
        self._next = max(self._next, end)
        # keep only the input the next output still needs
        keep_from = (self._next * self.down + self._half) // self.up - (self._taps - 1)
        drop = min(keep_from - self._start, self._buf.size)
        if drop > 0:
            self._buf = self._buf[drop:]
            self._start += drop
        return np.concatenate(out).astype(np.float32) if out else np.zeros(0, np.float32)


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

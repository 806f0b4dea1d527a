"""Acoustic augmentation on the fly, keeping the labels aligned with the audio.

:class:`AugmentedDataset` wraps a :class:`~unitalker.data.ClipDataset` (training set)
and transforms each item's 16 kHz audio; every operation either leaves time alone or
changes the label sequence the same way:

==============  ===================================================  ==================
operation       what                                                 labels
==============  ===================================================  ==================
``silence``     lead / tail silence (0.1-1 s) with neutral frames    padded with the
                                                                     template, ramped
``tempo``       speaking rate x0.85-1.15, pitch kept                 resampled in time
                (audiomentations ``TimeStretch``, signalsmith)       by the same factor
``pitch``       +-4 semitones, duration kept (``PitchShift``)        unchanged
``vtln``        vocal-tract length / formant warp x0.88-1.12:        unchanged
                resample, then stretch back to the same length
``reverb``      synthetic room: exponentially decaying noise         unchanged (direct
                impulse response, RT60 0.15-0.8 s, direct path at 0  path at lag 0)
``noise``       coloured noise at 0-30 dB SNR (``AddColorNoise``)    unchanged
``band``        telephone: 300-3400 Hz band-pass (zero phase) and    unchanged
                8 kHz resampling
``codec``       mp3 or opus round trip through PyAV, re-aligned by   unchanged
                cross-correlation (encoder delay removed)
``gain``        -12..+6 dB (``Gain``)                                unchanged
``clip``        hard clipping of the loudest 0-20 % of samples       unchanged
``formant``     the first two formants moved: F1 and F2 scaled       unchanged
                independently by x0.75-1.5 (LPC resonances of each
                25 ms frame, residual re-filtered: pitch and timing
                kept), as SAM-style ``mouth`` / ``throat`` settings
                do; off unless ``p_formant`` > 0
``lofi``        a cheap channel: resampling to 6-11 kHz without an   unchanged
                anti-alias filter (``Aliasing``) and 4-8 bit
                quantisation (``BitCrush``), as in toy and retro
                speech chips, low-end ADCs and 8-bit audio files;
                off unless ``p_lofi`` > 0
``spec``        SpecAugment masks on the built-in encoder's log-mel  unchanged (time
                features: ``spec_freq_masks`` bands of up to         masks of a few
                ``spec_freq_width`` mels, ``spec_time_masks`` spans  20 ms frames)
                of up to ``spec_time_width`` frames; in the model
                (:class:`SpecAugment`), training only
``stream``      streaming crop (``p_stream_crop``, drawn apart from  cut the same way;
                ``prob``): a ``stream_crop_s`` long window of the    the last
                item, ending anywhere, start on the frame grid, so   ``stream_lookahead_s``
                the model learns frames that see only a short        leave the loss
                look-ahead, as :class:`~unitalker.inference.         (``loss_frames``)
                streaming.Streamer` runs it
``window``      windowed encoder passes (``p_stream_window``, per    unchanged
                batch, in the model): the built-in encoder attends
                only within its ``stream_window``, as a windowed
                stream runs it; needs ``model.encoder.stream_window``
==============  ===================================================  ==================

Seeded: item ``i``'s ``k``-th draw in epoch ``e`` uses ``(seed, e, i, k)``; the library
transforms run under a temporarily seeded global RNG (restored afterwards), so the
same seed gives the same augmented batches. Logged: counts per operation at INFO every
``log_every`` items, and one JSON line per item (name, seed, operations and their
parameters) in ``log_path`` when given.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import random
from collections import Counter
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from unitalker.audio import SAMPLE_RATE

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AugmentConfig:
    """Probabilities (``p_*``) and ranges of each operation (see the module table).

    ``prob`` is the chance that an item is augmented at all (else it passes untouched).
    """

    enabled: bool = False
    prob: float = 0.8
    p_silence: float = 0.3
    silence_s: tuple[float, float] = (0.1, 1.0)
    p_tempo: float = 0.3
    tempo: tuple[float, float] = (0.85, 1.15)
    p_pitch: float = 0.3
    pitch_semitones: tuple[float, float] = (-4.0, 4.0)
    p_vtln: float = 0.25
    vtln: tuple[float, float] = (0.88, 1.12)
    p_reverb: float = 0.25
    rt60_s: tuple[float, float] = (0.15, 0.8)
    p_noise: float = 0.4
    snr_db: tuple[float, float] = (0.0, 30.0)
    p_band: float = 0.15
    p_codec: float = 0.15
    p_gain: float = 0.5
    gain_db: tuple[float, float] = (-12.0, 6.0)
    p_clip: float = 0.1
    clip_percentile: tuple[float, float] = (0.0, 20.0)
    # Off by default, and drawn only when on, so that configs without them draw as before
    p_formant: float = 0.0
    formant_scale: tuple[float, float] = (0.75, 1.5)
    p_lofi: float = 0.0
    lofi_rate: tuple[float, float] = (6000.0, 11025.0)
    lofi_bits: tuple[int, int] = (4, 8)
    # SpecAugment-style masks on the built-in encoder's log-mel features (in the model, at
    # training time; the waveform operations above run in the data loader)
    spec_freq_masks: int = 0
    spec_freq_width: int = 10
    spec_time_masks: int = 0
    spec_time_width: int = 2
    # Streaming crop (after the chain above, whether or not ``prob`` let it run)
    p_stream_crop: float = 0.0
    stream_crop_s: tuple[float, float] = (0.6, 2.5)
    stream_lookahead_s: float = 0.1
    # Windowed encoder passes (per batch, in the model; EncoderConfig.stream_window)
    p_stream_window: float = 0.0


@contextlib.contextmanager
def _seeded_globals(seed: int) -> Iterator[None]:
    """Seed ``random`` and ``np.random`` (which audiomentations draws from), then restore."""
    st_r, st_np = random.getstate(), np.random.get_state()
    random.seed(seed)
    np.random.seed(seed % 2**32)
    try:
        yield
    finally:
        random.setstate(st_r)
        np.random.set_state(st_np)


def stretch_labels(motion: np.ndarray, factor: float, n_out: int | None = None) -> np.ndarray:
    """Resample ``[T, D]`` labels in time for audio that became ``factor`` x longer."""
    n = len(motion)
    n_out = max(1, round(n * factor)) if n_out is None else n_out
    t = np.minimum(np.arange(n_out, dtype=np.float64) / factor, n - 1)
    lo = np.floor(t).astype(np.int64)
    hi = np.minimum(lo + 1, n - 1)
    w = (t - lo).astype(np.float32)[:, None]
    return (motion[lo] + (motion[hi] - motion[lo]) * w).astype(np.float32)


def synthetic_rir(rt60: float, sr: int, rng: np.random.Generator) -> np.ndarray:
    """A room impulse response: unit direct path at lag 0, then exponentially decaying
    noise (-60 dB at ``rt60``) starting after 2-10 ms, normalised to unit energy."""
    n = int(rt60 * sr)
    t = np.arange(n) / sr
    tail = rng.standard_normal(n) * np.exp(-6.9078 * t / rt60)
    tail[: int(rng.uniform(0.002, 0.01) * sr)] = 0.0
    tail *= rng.uniform(0.3, 1.0) / (np.sqrt((tail**2).sum()) + 1e-9)
    tail[0] = 1.0
    return (tail / np.sqrt((tail**2).sum())).astype(np.float32)


def _align_to(y: np.ndarray, ref: np.ndarray, max_lag: int) -> np.ndarray:
    """Shift ``y`` so it best matches ``ref`` (lags up to ``max_lag``), same length as ref."""
    from scipy.signal import fftconvolve

    n = len(ref)
    y = np.concatenate([y, np.zeros(max(0, n + max_lag - len(y)), np.float32)])
    seg = y[: n + max_lag]
    corr = fftconvolve(seg, ref[::-1], mode="valid")  # corr[k] = sum seg[k + j] ref[j]
    lag = int(np.argmax(corr[: max_lag + 1]))
    return y[lag : lag + n].astype(np.float32)


def codec_roundtrip(audio: np.ndarray, sr: int, codec: str, bitrate: int) -> np.ndarray:
    """Encode to ``codec`` (``mp3`` / ``opus``) at ``bitrate`` bit/s with PyAV, decode,
    and re-align to the input (the encoders' priming delay is removed)."""
    import io

    import av

    from unitalker.audio import resample

    fmt, name, rate = {"mp3": ("mp3", "libmp3lame", sr), "opus": ("ogg", "libopus", 48000)}[codec]
    x = resample(audio, sr, rate) if rate != sr else audio
    buf = io.BytesIO()
    with av.open(buf, "w", format=fmt) as out:
        st = out.add_stream(name, rate=rate, layout="mono")
        st.bit_rate = bitrate
        frame_len = 960 if codec == "opus" else 1152
        pcm = np.clip(x, -1, 1).astype(np.float32)
        for i in range(0, len(pcm), frame_len):
            chunk = pcm[i : i + frame_len]
            if len(chunk) < frame_len:
                chunk = np.pad(chunk, (0, frame_len - len(chunk)))
            fr = av.AudioFrame.from_ndarray(chunk[None, :], format="flt", layout="mono")
            fr.sample_rate = rate
            fr.pts = i
            for pkt in st.encode(fr):
                out.mux(pkt)
        for pkt in st.encode(None):
            out.mux(pkt)
    buf.seek(0)
    parts = []
    with av.open(buf, "r") as inp:
        for fr in inp.decode(audio=0):
            a = fr.to_ndarray().astype(np.float32)
            parts.append(a.mean(0) if a.ndim == 2 and a.shape[0] > 1 else a.reshape(-1))
    y = np.concatenate(parts) if parts else np.zeros_like(x)
    y = resample(y, rate, sr) if rate != sr else y
    return _align_to(y, audio.astype(np.float32), max_lag=int(0.1 * sr))


class Augmenter:
    """Draws and applies one augmentation chain; see the module table."""

    def __init__(self, cfg: AugmentConfig, sr: int = SAMPLE_RATE) -> None:
        self.cfg = cfg
        self.sr = sr

    def __call__(
        self, audio: np.ndarray, motion: np.ndarray, fps: float, neutral: np.ndarray, seed: int
    ) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
        """Augment one item.

        Args:
            audio: float32 ``[S]`` at ``sr``.
            motion: float32 ``[T, D]`` labels at ``fps`` (frame ``k`` = time ``k / fps``).
            neutral: ``[D]`` rest pose (the item's template) for padded silence.
            seed: this draw's seed.

        Returns:
            ``(audio, motion, ops)``: the new audio and labels (same time base) and the
            operations applied with their parameters.
        """
        import audiomentations as A

        cfg, sr = self.cfg, self.sr
        rng = np.random.default_rng(seed)
        ops: dict[str, Any] = {}
        if rng.random() >= cfg.prob:
            return audio, motion, ops
        # copies: some transforms work in place, and the dataset's audio is a cached array
        x = np.array(audio, np.float32, copy=True)
        m = np.array(motion, np.float32, copy=True)
        with _seeded_globals(int(rng.integers(2**31))):
            if rng.random() < cfg.p_silence:
                lead, tail = (float(rng.uniform(*cfg.silence_s)) for _ in range(2))
                x, m = pad_silence(x, m, fps, sr, neutral, lead, tail)
                ops["silence"] = [round(lead, 3), round(tail, 3)]
            if rng.random() < cfg.p_tempo:
                rate = float(rng.uniform(*cfg.tempo))  # >1 = faster = shorter
                n0 = len(x)
                x = A.TimeStretch(
                    min_rate=rate, max_rate=rate, leave_length_unchanged=False, p=1.0
                )(x, sr)
                factor = len(x) / n0
                m = stretch_labels(m, factor, max(1, round(len(x) / sr * fps)))
                ops["tempo"] = round(rate, 4)
            if rng.random() < cfg.p_pitch:
                st = float(rng.uniform(*cfg.pitch_semitones))
                x = A.PitchShift(min_semitones=st, max_semitones=st, p=1.0)(x, sr)
                ops["pitch"] = round(st, 3)
            if rng.random() < cfg.p_vtln:
                alpha = float(rng.uniform(*cfg.vtln))
                x = vtln_warp(x, sr, alpha)
                ops["vtln"] = round(alpha, 4)
            if cfg.p_formant > 0 and rng.random() < cfg.p_formant:
                f1, f2 = (float(rng.uniform(*cfg.formant_scale)) for _ in range(2))
                x = formant_shift(x, sr, f1, f2)
                ops["formant"] = [round(f1, 3), round(f2, 3)]
            if rng.random() < cfg.p_reverb:
                from scipy.signal import fftconvolve

                rt60 = float(rng.uniform(*cfg.rt60_s))
                x = fftconvolve(x, synthetic_rir(rt60, sr, rng))[: len(x)].astype(np.float32)
                ops["reverb"] = round(rt60, 3)
            if rng.random() < cfg.p_noise:
                snr = float(rng.uniform(*cfg.snr_db))
                x = A.AddColorNoise(min_snr_db=snr, max_snr_db=snr, p=1.0)(x, sr)
                ops["noise"] = round(snr, 2)
            if rng.random() < cfg.p_band:
                x = telephone(x, sr)
                ops["band"] = "300-3400Hz@8k"
            if rng.random() < cfg.p_codec:
                codec = "mp3" if rng.random() < 0.5 else "opus"
                bitrate = int(rng.choice([16000, 24000, 32000, 48000]))
                x = codec_roundtrip(x, sr, codec, bitrate)
                ops["codec"] = f"{codec}@{bitrate // 1000}k"
            if rng.random() < cfg.p_gain:
                g = float(rng.uniform(*cfg.gain_db))
                x = A.Gain(min_gain_db=g, max_gain_db=g, p=1.0)(x, sr)
                ops["gain"] = round(g, 2)
            if rng.random() < cfg.p_clip:
                q = float(rng.uniform(*cfg.clip_percentile))
                x = A.ClippingDistortion(
                    min_percentile_threshold=int(q), max_percentile_threshold=int(q), p=1.0
                )(x, sr)
                ops["clip"] = int(q)
            if cfg.p_lofi > 0 and rng.random() < cfg.p_lofi:
                rate = int(rng.uniform(*cfg.lofi_rate))
                bits = int(rng.integers(cfg.lofi_bits[0], cfg.lofi_bits[1] + 1))
                x = A.Aliasing(min_sample_rate=rate, max_sample_rate=rate, p=1.0)(x, sr)
                x = A.BitCrush(min_bit_depth=bits, max_bit_depth=bits, p=1.0)(x, sr)
                ops["lofi"] = [rate, bits]
        x = np.clip(np.nan_to_num(x), -1.0, 1.0).astype(np.float32)
        return x, m, ops


def stream_crop(
    audio: np.ndarray,
    motion: np.ndarray,
    fps: float,
    rng: np.random.Generator,
    seconds: tuple[float, float],
    lookahead: float,
    sr: int = SAMPLE_RATE,
) -> tuple[np.ndarray, np.ndarray, int, tuple[int, int]]:
    """Cut a window ending anywhere in the item, as a live stream sees it.

    The window is ``uniform(*seconds)`` long (the whole item if shorter), ends at a uniform
    sample and starts on the sample grid where frames fall on whole samples, so label
    frame ``k`` of the crop is time ``k / fps`` of the cropped audio. Frames in the last
    ``lookahead`` seconds had less right context than a streamed frame gets: they are left
    out of the loss.

    Args:
        audio: ``[S]`` samples; motion: ``[T, D]`` labels at ``fps``.

    Returns:
        ``(audio, motion, loss_frames, (start, end))``: the cut audio and labels, how many
        leading label frames the loss counts (>= 1), and the window in samples.
    """
    from unitalker.inference.animate import frame_grid

    n = len(audio)
    grid = frame_grid([fps], sr)
    length = min(n, int(rng.uniform(*seconds) * sr))
    end = int(rng.integers(length, n + 1))
    start = (end - length) // grid * grid
    n_frames = max(1, min(len(motion), round((end - start) / sr * fps)))
    f0 = min(round(start * fps / sr), len(motion) - n_frames)
    keep = max(1, math.floor(((end - start) / sr - lookahead) * fps) + 1)
    return audio[start:end], motion[f0 : f0 + n_frames], min(keep, n_frames), (start, end)


def pad_silence(
    audio: np.ndarray,
    motion: np.ndarray,
    fps: float,
    sr: int,
    neutral: np.ndarray,
    lead: float,
    tail: float,
    ramp_s: float = 0.12,
) -> tuple[np.ndarray, np.ndarray]:
    """Add ``lead`` / ``tail`` seconds of silence; labels get the neutral pose there,
    approached over ``ramp_s`` (cosine) from the clip's first / last frame."""
    nl, nt = int(round(lead * fps)), int(round(tail * fps))
    x = np.concatenate(
        [
            np.zeros(int(round(nl / fps * sr)), np.float32),
            audio,
            np.zeros(int(round(nt / fps * sr)), np.float32),
        ]
    )
    neu = np.asarray(neutral, np.float32).reshape(1, -1)
    r = max(1, int(ramp_s * fps))

    def block(edge: np.ndarray, n: int, towards_edge: bool) -> np.ndarray:
        if n <= 0:
            return np.zeros((0, motion.shape[1]), np.float32)
        k = np.arange(n, dtype=np.float32)
        dist = (n - k) if towards_edge else (k + 1)  # frames away from the clip
        w = 0.5 * (1 + np.cos(np.pi * np.clip(dist / r, 0, 1)))  # 1 at the clip, 0 after r
        return (w[:, None] * edge[None] + (1 - w[:, None]) * neu).astype(np.float32)

    m = np.concatenate([block(motion[0], nl, True), motion, block(motion[-1], nt, False)])
    return x, m


def vtln_warp(audio: np.ndarray, sr: int, alpha: float) -> np.ndarray:
    """Scale formants (and pitch) by ``alpha`` keeping the duration: resample, then
    time-stretch back to the input length (signalsmith, through audiomentations)."""
    import audiomentations as A

    from unitalker.audio import resample

    n = len(audio)
    y = resample(audio, int(round(sr * alpha)), sr)  # played alpha x faster: shorter
    rate = len(y) / n
    y = A.TimeStretch(min_rate=rate, max_rate=rate, leave_length_unchanged=False, p=1.0)(y, sr)
    return np.pad(y, (0, max(0, n - len(y))))[:n].astype(np.float32)


def formant_shift(
    audio: np.ndarray,
    sr: int,
    f1_scale: float,
    f2_scale: float,
    win_s: float = 0.025,
    max_bandwidth_hz: float = 500.0,
) -> np.ndarray:
    """Scale the first and second formant frequencies independently, keeping pitch,
    timing and level: ``[S]`` -> ``[S]``.

    Per frame (``win_s``, Hann, half overlap, on the pre-emphasised signal) an LPC envelope
    of order ``2 + sr / 1000`` (``librosa.lpc``, all frames at once); its resonances are
    the pole pairs above 150 Hz narrower than ``max_bandwidth_hz``, the lowest taken as F1
    and the next as F2. Their angles are scaled (radius kept), the frame's LPC residual is
    filtered through the moved poles (10 ms of run-in so the filter has settled), matched
    to the frame's level and overlap-added. Silent frames pass through.
    """
    import librosa
    from scipy.signal import lfilter

    x = np.asarray(audio, np.float64)
    n = len(x)
    order = 2 + sr // 1000
    size = int(win_s * sr) // 2 * 2
    hop, pre = size // 2, sr // 100
    win = np.hanning(size + 1)[:size]  # periodic: the half-overlapped windows sum to 1
    xp = lfilter([1.0, -0.97], [1.0], x)
    padded = np.concatenate([np.zeros(pre + hop), xp, np.zeros(size + hop)])
    starts = np.arange(0, n + hop, hop)  # frame k covers padded[pre + s : pre + s + size]
    idx = pre + starts[:, None] + np.arange(size)[None, :]
    frames = padded[idx] * win
    live = (frames**2).sum(1) > 1e-10
    a_all = np.zeros((len(starts), order + 1))
    a_all[:, 0] = 1.0
    if live.any():  # a whisper of dither keeps Burg's recursion defined on sparse frames
        dither = 1e-9 * np.random.default_rng(0).standard_normal(frames[live].shape)
        a_all[live] = librosa.lpc(frames[live] + dither, order=order, axis=-1)
    companion = np.zeros((len(starts), order, order))
    companion[:, 0, :] = -a_all[:, 1:]
    companion[:, np.arange(1, order), np.arange(order - 1)] = 1.0
    roots_all = np.linalg.eigvals(companion[live])  # [live frames, order]
    row = np.cumsum(live) - 1  # frame -> its row of roots_all
    out = np.zeros(len(padded))
    for f, s in enumerate(starts):
        seg = padded[pre + s : pre + s + size]
        if not live[f]:
            out[pre + s : pre + s + size] += seg * win
            continue
        roots = roots_all[row[f]]
        upper = roots[roots.imag > 0]
        freq = np.angle(upper) * sr / (2 * np.pi)
        bw = -np.log(np.maximum(np.abs(upper), 1e-9)) * sr / np.pi
        picked = np.where((freq > 150) & (bw < max_bandwidth_hz))[0]
        picked = picked[np.argsort(freq[picked])][:2]
        moved = upper.copy()
        for k, scale in zip(picked, (f1_scale, f2_scale)[: len(picked)], strict=True):
            moved[k] = np.abs(upper[k]) * np.exp(
                2j * np.pi * min(freq[k] * scale, sr / 2 - 200) / sr
            )
        a_new = np.real(np.poly(np.concatenate([roots[roots.imag == 0], moved, moved.conj()])))
        ctx = padded[s : pre + s + size]  # 10 ms of run-in, then the frame
        y = lfilter([1.0], a_new, lfilter(a_all[f], [1.0], ctx))[pre:]
        rms_in, rms_out = np.sqrt(np.mean(seg**2)), np.sqrt(np.mean(y**2))
        out[pre + s : pre + s + size] += y * win * (rms_in / rms_out if rms_out > 1e-12 else 0.0)
    y = lfilter([1.0], [1.0, -0.97], out[pre + hop : pre + hop + n])
    return y.astype(np.float32)


def telephone(audio: np.ndarray, sr: int) -> np.ndarray:
    """Telephone channel: 300-3400 Hz band-pass (zero phase, no delay), 8 kHz sampling."""
    from scipy.signal import butter, sosfiltfilt

    from unitalker.audio import resample

    sos = butter(4, [300, 3400], btype="bandpass", fs=sr, output="sos")
    y = sosfiltfilt(sos, audio).astype(np.float32)
    y = resample(resample(y, sr, 8000), 8000, sr)
    return np.pad(y, (0, max(0, len(audio) - len(y))))[: len(audio)].astype(np.float32)


class AugmentedDataset:
    """A training set whose items are augmented on the fly (all other attributes are the
    wrapped dataset's, so samplers and trainers use it unchanged).

    Args:
        base: the dataset (items as :class:`~unitalker.data.ClipDataset`'s).
        cfg: what to apply.
        seed: master seed.
        max_seconds: cut augmented items to this length (tempo / silence lengthen them).
        log_path: a JSONL file getting one line per augmented item.
        log_every: INFO summary of operation counts every this many items.
    """

    def __init__(
        self,
        base: Any,
        cfg: AugmentConfig,
        seed: int = 0,
        *,
        max_seconds: float | None = None,
        log_path: str | Path | None = None,
        log_every: int = 500,
    ) -> None:
        self.base = base
        self.cfg = cfg
        self.seed = int(seed)
        self.max_seconds = max_seconds
        self.log_path = Path(log_path) if log_path else None
        self.log_every = log_every
        self.augmenter = Augmenter(cfg)
        self.epoch = 0
        self._draws: Counter = Counter()
        self.counts: Counter = Counter()
        self.items = 0
        log.info("augmentation on: %s", asdict(cfg))

    def __getattr__(self, name: str) -> Any:
        if name == "base":  # not yet set (unpickling)
            raise AttributeError(name)
        return getattr(self.base, name)

    def __len__(self) -> int:
        return len(self.base)

    def set_epoch(self, epoch: int) -> None:
        """New epoch: draws restart from ``(seed, epoch, index, 0)``."""
        self.epoch = int(epoch)
        self._draws.clear()

    def __getitem__(self, index: int) -> dict[str, Any]:
        item = dict(self.base[index])
        k = self._draws[index]
        self._draws[index] += 1
        seed = int(
            np.random.SeedSequence([self.seed, self.epoch, int(index), k]).generate_state(1)[0]
        )
        motion, neutral, d = item["motion"], item["template"], item["motion"].shape[1]
        if "visemes" in item:
            # the viseme labels ride along as one-hot channels, so every time warp, pad and
            # cut moves them with the motion (padded silence is `sil`)
            from unitalker.data.visemes import one_hot, viseme_classes

            names = viseme_classes()
            sil = one_hot(np.array([names.index("sil")]), len(names))[0]
            motion = np.concatenate([motion, one_hot(item["visemes"], len(names))], axis=1)
            neutral = np.concatenate([np.asarray(neutral, np.float32), sil])
        audio, motion, ops = self.augmenter(item["audio"], motion, item["fps"], neutral, seed)
        if self.max_seconds is not None:
            sec = min(len(audio) / SAMPLE_RATE, len(motion) / item["fps"], self.max_seconds)
            audio = audio[: round(sec * SAMPLE_RATE)]
            motion = motion[: round(sec * item["fps"])]
        if self.cfg.p_stream_crop > 0:
            rng = np.random.default_rng([seed, 1])
            if rng.random() < self.cfg.p_stream_crop:
                audio, motion, item["loss_frames"], window = stream_crop(
                    audio,
                    motion,
                    item["fps"],
                    rng,
                    self.cfg.stream_crop_s,
                    self.cfg.stream_lookahead_s,
                )
                ops = {**ops, "stream": list(window)}
        if "visemes" in item:
            from unitalker.data.visemes import from_soft

            motion, item["visemes"] = motion[:, :d], from_soft(motion[:, d:])
        item["audio"], item["motion"] = audio, np.ascontiguousarray(motion)
        self.items += 1
        self.counts.update(ops.keys())
        if self.log_path is not None:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            with self.log_path.open("a") as f:
                f.write(
                    json.dumps(
                        {
                            "epoch": self.epoch,
                            "index": int(index),
                            "name": item["name"],
                            "seed": seed,
                            "ops": ops,
                        }
                    )
                    + "\n"
                )
        if self.log_every and self.items % self.log_every == 0:
            log.info("augmented %d items: %s", self.items, dict(sorted(self.counts.items())))
        return item


class SpecAugment:
    """Band and time masks on log-mel features ``[B, M, T] -> [B, M, T]`` (Park et al.,
    2019), each item its own masks, filled with the item's mean. Draws from torch's
    global RNG, which the trainer seeds and checkpoints, so runs and resumes repeat.

    Set as :attr:`~unitalker.models.encoders.BuiltinAudioEncoder.feature_augment` by the
    training builder; it runs only while the encoder is in training mode and is not part
    of the model (nothing of it is saved).
    """

    def __init__(self, freq_masks: int, freq_width: int, time_masks: int, time_width: int):
        self.freq_masks, self.freq_width = freq_masks, freq_width
        self.time_masks, self.time_width = time_masks, time_width

    def _mask(self, b: int, size: int, n: int, width: int, device: Any) -> Any:
        """``[B, size]`` bool: ``n`` spans of width ``0..width`` per item."""
        import torch

        out = torch.zeros(b, size, dtype=torch.bool, device=device)
        if n <= 0 or width <= 0 or size <= 1:
            return out
        idx = torch.arange(size, device=device)
        for _ in range(n):
            w = torch.randint(0, width + 1, (b, 1), device=device)
            start = (torch.rand(b, 1, device=device) * (size - w + 1)).long()
            out |= (idx >= start) & (idx < start + w)
        return out

    def __call__(self, x: Any, n_valid: list[int] | None = None) -> Any:
        """``x [B, M, T]``; ``n_valid``: valid frames per item (the rest is padding, which
        neither gets masks nor counts in the fill)."""
        import torch

        b, m, t = x.shape
        f = self._mask(b, m, self.freq_masks, min(self.freq_width, m - 1), x.device)
        tm = self._mask(b, t, self.time_masks, min(self.time_width, t - 1), x.device)
        valid = torch.ones(b, t, dtype=torch.bool, device=x.device)
        if n_valid is not None:
            valid = (
                torch.arange(t, device=x.device)[None]
                < torch.tensor(n_valid, device=x.device)[:, None]
            )
        masked = (f[:, :, None] | tm[:, None, :]) & valid[:, None, :]
        w = valid[:, None, :].to(x.dtype)
        fill = (x * w).sum(dim=(1, 2), keepdim=True) / (w.sum(dim=(1, 2), keepdim=True) * m)
        return torch.where(masked, fill, x)

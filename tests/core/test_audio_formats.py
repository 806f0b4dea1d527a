"""Compressed formats and sample rates, checked against a reference sine.

Each file is encoded here with PyAV from a 697 Hz sine at 8, 44.1 or 48 kHz, decoded with
:func:`~unitalker.audio.load_audio` (mixdown and resampling to 16 kHz by libswresample)
and must keep the sine: its frequency (FFT peak within one 0.5 Hz bin), its level, nearly
all of its energy in that band (no aliasing, no garbage) and its duration.
"""

from __future__ import annotations

import numpy as np
import pytest

from unitalker.audio import SAMPLE_RATE, load_audio, prepare_waveform

FREQ = 697.0  # Hz: inside every rate's band, on no bin of a power-of-two grid
SECONDS = 2.0
AMPLITUDE = 0.5

# (extension, encoder, extra samples a decoder may return at the source rate): AAC's
# priming frame and the padding of its last frame stay in a file PyAV writes without an
# edit list; the other codecs here are trimmed to the exact length.
FORMATS = {
    "mp3": ("libmp3lame", 0),
    "m4a": ("aac", 2 * 1024),
    "ogg": ("libopus", 0),
    "flac": ("flac", 0),
}
RATES = (8000, 44100, 48000)
CASES = [
    (ext, sr)
    for ext in FORMATS
    for sr in RATES
    if not (ext == "ogg" and sr == 44100)  # Opus takes 8/12/16/24/48 kHz only
]


def reference(sr: int) -> np.ndarray:
    t = np.arange(int(SECONDS * sr)) / sr
    return AMPLITUDE * np.sin(2 * np.pi * FREQ * t)


def encode(path, wav: np.ndarray, sr: int, codec: str) -> None:
    """Write mono ``wav`` with PyAV's ``codec`` (the container from the suffix)."""
    import av

    pcm = (np.clip(wav, -1, 1) * 32767).astype(np.int16)
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=sr, layout="mono")
        for i in range(0, len(pcm), 4096):
            frame = av.AudioFrame.from_ndarray(pcm[None, i : i + 4096], format="s16", layout="mono")
            frame.sample_rate = sr
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))


def assert_is_the_sine(y: np.ndarray, sr: int = SAMPLE_RATE) -> None:
    power = np.abs(np.fft.rfft(y * np.hanning(len(y)))) ** 2
    freqs = np.fft.rfftfreq(len(y), 1 / sr)
    peak = freqs[power.argmax()]
    assert abs(peak - FREQ) <= 1.0, f"dominant frequency {peak:.2f} Hz, not {FREQ} Hz"
    in_band = power[np.abs(freqs - FREQ) <= 5].sum() / power.sum()
    assert in_band > 0.95, f"only {in_band:.3f} of the energy near {FREQ} Hz"
    level_db = 20 * np.log10(np.sqrt(np.mean(y**2)) / (AMPLITUDE / np.sqrt(2)))
    assert abs(level_db) < 1.0, f"level {level_db:+.2f} dB"


@pytest.mark.parametrize("ext, sr", CASES, ids=[f"{e}-{r}" for e, r in CASES])
def test_compressed_files_keep_the_sine(tmp_path, ext: str, sr: int) -> None:
    codec, extra = FORMATS[ext]
    p = tmp_path / f"sine_{sr}.{ext}"
    encode(p, reference(sr), sr, codec)
    y = load_audio(p)
    assert y.dtype == np.float32 and y.ndim == 1
    expected = int(SECONDS * SAMPLE_RATE)
    slack = int(np.ceil(extra * SAMPLE_RATE / sr))
    assert expected - 16 <= len(y) <= expected + slack + 16, (len(y), expected, slack)
    assert_is_the_sine(y)


@pytest.mark.parametrize("sr", RATES)
def test_in_memory_resampling_keeps_the_sine(sr: int) -> None:
    """Arrays (prepare_waveform: the polyphase filter) at each rate, mono and stereo."""
    x = reference(sr)
    y = prepare_waveform(x.astype(np.float32), sr)
    assert len(y) == int(SECONDS * SAMPLE_RATE)
    assert_is_the_sine(y)
    stereo = prepare_waveform(np.stack([x, x], axis=1).astype(np.float32), sr)
    np.testing.assert_allclose(stereo, y, atol=1e-6)


@pytest.mark.parametrize("sr", (44100, 48000))
def test_wav_at_another_rate_keeps_the_sine(tmp_path, sr: int) -> None:
    """A wav not at 16 kHz goes through PyAV (no stdlib fast path) and is resampled."""
    from unitalker.audio import write_wav

    p = tmp_path / "sine.wav"
    write_wav(p, reference(sr), sr)
    y = load_audio(p)
    assert len(y) == int(SECONDS * SAMPLE_RATE)
    assert_is_the_sine(y)

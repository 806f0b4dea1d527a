"""Resampling: one filter for whole arrays (``resample``) and chunked streams
(``StreamResampler``), band-limited (what lies above the target Nyquist is removed)."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

from unitalker.audio import AudioError, StreamResampler, resample


def stream_through(r: StreamResampler, x: np.ndarray, sizes) -> np.ndarray:
    parts, i = [], 0
    for n in sizes:
        parts.append(r(x[i : i + n]))
        i += n
    assert i >= len(x)
    parts.append(r.flush())
    return np.concatenate(parts)


def rms_db(y: np.ndarray, amplitude: float) -> float:
    return 20 * np.log10(np.sqrt(np.mean(y**2)) / (amplitude / np.sqrt(2)))


@pytest.mark.parametrize("sr", [8000, 11025, 22050, 44100, 48000, 96000, 4001, 191999])
def test_chunked_stream_equals_one_shot(sr: int) -> None:
    rng = np.random.default_rng(sr)
    x = (0.3 * rng.standard_normal(sr + 777)).astype(np.float32)
    whole = resample(x, sr, 16000)
    ratio = Fraction(16000, sr).limit_denominator(1000)  # what resample converts by
    assert len(whole) == -(-len(x) * ratio.numerator // ratio.denominator)
    for sizes in ([len(x)], [1] * 50 + [len(x)], rng.integers(1, 3000, size=len(x)).tolist()):
        y = stream_through(StreamResampler(sr), x, sizes)
        assert y.dtype == np.float32
        assert y.shape == whole.shape
        np.testing.assert_allclose(y, whole, atol=1e-6)


def test_stream_lags_by_half_the_filter_only() -> None:
    """Outputs leave as soon as their inputs have all arrived: 30 input samples of lag
    from 48 kHz (half of the 61-tap filter), so a 20 ms chunk yields its 320 outputs
    less 10."""
    r = StreamResampler(48000)
    assert len(r(np.zeros(960, np.float32))) == 320 - 10
    assert len(r(np.zeros(960, np.float32))) == 320
    assert len(r.flush()) == 10


def test_downsampling_removes_what_is_above_the_target_nyquist() -> None:
    """48 kHz -> 16 kHz: a 12 kHz tone (above 8 kHz) would alias to 4 kHz at full level
    without the filter; it is attenuated by at least 40 dB, a 1 kHz tone passes."""
    sr = 48000
    t = np.arange(sr) / sr
    for freq, lo, hi in ((12000, None, -40.0), (10000, None, -40.0), (1000, -0.1, 0.1)):
        x = (0.5 * np.sin(2 * np.pi * freq * t)).astype(np.float32)
        sizes = [4800] * 10
        streamed = stream_through(StreamResampler(sr), x, sizes)[100:-100]
        whole = resample(x, sr, 16000)[100:-100]
        for y in (streamed, whole):
            level = rms_db(y, 0.5)
            assert level <= hi and (lo is None or level >= lo), (freq, level)


def test_stream_is_seamless_and_on_time() -> None:
    """A slow sine at 48 kHz in uneven chunks is the same sine at 16 kHz: no seams at the
    chunk boundaries, no delay, the full length once flushed."""
    x = np.sin(np.arange(48000) / 30.0)
    r = StreamResampler(48000)
    y = np.concatenate([r(c) for c in np.array_split(x, 7)] + [r.flush()])
    assert len(y) == 16000
    np.testing.assert_allclose(y[40:-40], np.sin(np.arange(16000) * 3 / 30.0)[40:-40], atol=1e-3)


def test_upsampling_stream() -> None:
    r = StreamResampler(8000)
    x = np.sin(2 * np.pi * 440 * np.arange(8000) / 8000)
    y = np.concatenate([r(c) for c in np.array_split(x, 13)] + [r.flush()])
    assert len(y) == 16000
    ref = np.sin(2 * np.pi * 440 * np.arange(16000) / 16000)
    np.testing.assert_allclose(y[100:-100], ref[100:-100], atol=1e-2)


def test_same_rate_is_unchanged_and_misuse_is_an_error() -> None:
    x = np.linspace(-1, 1, 100, dtype=np.float32)
    r = StreamResampler(16000)
    np.testing.assert_array_equal(np.concatenate([r(x[:30]), r(x[30:]), r.flush()]), x)
    r = StreamResampler(48000)
    r.flush()
    with pytest.raises(RuntimeError, match="after flush"):
        r(x)
    with pytest.raises(AudioError, match="invalid rate"):
        StreamResampler(0)

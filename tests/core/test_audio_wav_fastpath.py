"""Mono 16-bit wav is read with the standard library, sample for sample as PyAV decodes it."""

from __future__ import annotations

import wave

import numpy as np
import pytest

from unitalker import audio


def _write(path, samples: np.ndarray, rate: int, channels: int = 1, width: int = 2) -> None:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(width)
        w.setframerate(rate)
        w.writeframes(samples.tobytes())


def test_pcm16_mono_equals_pyav(tmp_path) -> None:
    rng = np.random.default_rng(0)
    s = rng.integers(-32768, 32767, 8000, dtype=np.int16)
    s[:3] = [-32768, 32767, 0]
    p = tmp_path / "a.wav"
    _write(p, s, audio.SAMPLE_RATE)
    fast = audio._read_pcm16_mono_wav(p, audio.SAMPLE_RATE, "a.wav", None)
    assert fast is not None
    with open(p, "rb") as f:
        ref = audio._decode_with_av(f, audio.SAMPLE_RATE, "a.wav", None, 10.0, restrict=True)
    np.testing.assert_array_equal(fast, ref)
    np.testing.assert_array_equal(audio.load_audio(p), ref)


def test_fast_path_checks_the_limit_from_the_header(tmp_path) -> None:
    p = tmp_path / "long.wav"
    _write(p, np.zeros(3 * audio.SAMPLE_RATE, np.int16), audio.SAMPLE_RATE)
    with pytest.raises(audio.AudioTooLong, match="long.wav"):
        audio.load_audio(p, max_seconds=2.0)


def test_other_wavs_go_to_pyav(tmp_path) -> None:
    stereo = tmp_path / "st.wav"
    _write(stereo, np.zeros(2000, np.int16), 16000, channels=2)
    assert audio._read_pcm16_mono_wav(stereo, 16000, "st.wav", None) is None
    assert audio.load_audio(stereo).shape == (1000,)
    other_rate = tmp_path / "r.wav"
    _write(other_rate, np.zeros(2205, np.int16), 22050)
    assert audio._read_pcm16_mono_wav(other_rate, 16000, "r.wav", None) is None
    assert audio.load_audio(other_rate).shape == (1600,)
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"RIFF0000WAVEjunk")
    assert audio._read_pcm16_mono_wav(bad, 16000, "bad.wav", None) is None
    with pytest.raises(audio.AudioError, match="bad.wav"):
        audio.load_audio(bad)

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


@pytest.mark.parametrize("rate", [16000, 22050])
def test_pcm16_mono_equals_pyav(tmp_path, rate: int) -> None:
    rng = np.random.default_rng(0)
    s = rng.integers(-32768, 32767, rate // 2, dtype=np.int16)
    s[:3] = [-32768, 32767, 0]
    p = tmp_path / "a.wav"
    _write(p, s, rate)
    fast = audio._read_pcm16_mono_wav(p)
    assert fast is not None and fast[1] == rate
    ref = audio._decode_with_av(p)
    np.testing.assert_array_equal(fast[0], ref[0])
    np.testing.assert_array_equal(audio.load_audio(p), audio.prepare_waveform(*ref))


def test_other_wavs_go_to_pyav(tmp_path) -> None:
    stereo = tmp_path / "st.wav"
    _write(stereo, np.zeros(2000, np.int16), 16000, channels=2)
    assert audio._read_pcm16_mono_wav(stereo) is None
    assert audio.load_audio(stereo).shape == (1000,)
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"RIFF0000WAVEjunk")
    assert audio._read_pcm16_mono_wav(bad) is None
    with pytest.raises(audio.AudioError, match="bad.wav"):
        audio.load_audio(bad)

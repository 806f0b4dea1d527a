"""The audio loader: only plain containers, one sample-rate rule, bounded decoding."""

from __future__ import annotations

import io

import numpy as np
import pytest
from tests.hostile_inputs import concat_list, flac_bytes, hls_playlist, tone, wav_bytes

from unitalker.audio import (
    AUDIO_DEMUXERS,
    MAX_SAMPLE_RATE,
    MIN_SAMPLE_RATE,
    SAMPLE_RATE,
    AudioError,
    AudioTooLong,
    check_sample_rate,
    load_audio,
    metadata_seconds,
    prepare_waveform,
)


@pytest.fixture
def secret(tmp_path):
    """A local file that a hostile input points at: 2 s of a 440 Hz tone."""
    p = tmp_path / "secret.flac"
    p.write_bytes(flac_bytes(tone(2.0)))
    return p


@pytest.mark.parametrize("endlist", [True, False])
def test_playlists_are_refused(tmp_path, secret, endlist):
    pl = tmp_path / "x.m3u8"
    pl.write_bytes(hls_playlist(secret, endlist=endlist))
    with pytest.raises(AudioError, match="not a plain audio/video file") as e:
        load_audio(pl)
    assert str(pl) in str(e.value)
    # the same bytes as an upload (a file object), whatever name the client gives
    with pytest.raises(AudioError, match="not a plain audio/video file"):
        load_audio(io.BytesIO(pl.read_bytes()), name="x.m3u8")


def test_concat_lists_are_refused(tmp_path, secret):
    lst = tmp_path / "list.txt"
    lst.write_bytes(concat_list(secret))
    for src in (lst, io.BytesIO(lst.read_bytes())):
        with pytest.raises(AudioError, match="not a plain"):
            load_audio(src, name="list.txt")


def test_allow_any_container_is_the_opt_in(tmp_path, secret):
    """A user's own playlist decodes when asked for; one that never ends hits the time limit."""
    pl = tmp_path / "x.m3u8"
    pl.write_bytes(hls_playlist(secret))
    wav = load_audio(pl, allow_any_container=True)
    np.testing.assert_allclose(wav, load_audio(secret), atol=1e-4)
    live = tmp_path / "live.m3u8"
    live.write_bytes(hls_playlist(secret, endlist=False))
    with pytest.raises(AudioError, match="took over 1 s"):
        load_audio(live, allow_any_container=True, timeout=1.0)


def test_file_objects_decode_like_paths(tmp_path, secret):
    got = load_audio(io.BytesIO(secret.read_bytes()), name="clip.flac")
    np.testing.assert_array_equal(got, load_audio(secret))
    assert got.size == 2 * SAMPLE_RATE
    npy = tmp_path / "clip.npy"
    np.save(npy, tone(1.0))
    np.testing.assert_array_equal(load_audio(io.BytesIO(npy.read_bytes()), name="a.npy"), tone(1.0))


@pytest.mark.parametrize(
    "rate", [1, 100, MIN_SAMPLE_RATE - 1, MAX_SAMPLE_RATE + 1, 10**6, 2**31 - 1]
)
def test_absurd_header_rates_are_errors(tmp_path, rate):
    p = tmp_path / "claims.wav"
    p.write_bytes(wav_bytes(rate))
    with pytest.raises(AudioError, match=f"sample rate {rate} Hz is outside") as e:
        load_audio(p)
    assert str(p) in str(e.value)
    with pytest.raises(AudioError, match="outside the accepted"):
        prepare_waveform(np.zeros(200, np.float32), rate)


@pytest.mark.parametrize("rate", [MIN_SAMPLE_RATE, 44100, MAX_SAMPLE_RATE])
def test_edge_rates_are_accepted(tmp_path, rate):
    p = tmp_path / "ok.wav"
    p.write_bytes(wav_bytes(rate, n=rate // 10))
    assert abs(load_audio(p).size - SAMPLE_RATE // 10) <= 1


@pytest.mark.parametrize("bad", [0, -16000, 16000.5, "16000", True, None])
def test_check_sample_rate_types(bad):
    with pytest.raises(AudioError):
        check_sample_rate(bad, "x")
    assert check_sample_rate(np.int64(16000)) == 16000


def test_too_many_channels(tmp_path):
    p = tmp_path / "many.wav"
    p.write_bytes(wav_bytes(16000, n=16, channels=65))
    with pytest.raises(AudioError, match="65 channels"):
        load_audio(p)


def test_duration_from_metadata_before_decoding(tmp_path):
    """A FLAC whose header says 4 hours is refused from the header (nothing decoded)."""
    p = tmp_path / "long.flac"
    p.write_bytes(flac_bytes(tone(1.0), claim_samples=4 * 3600 * SAMPLE_RATE))
    with pytest.raises(AudioTooLong, match="audio is 14400.0 s; the limit is 10 s") as e:
        load_audio(p, max_seconds=10)
    assert e.value.seconds == pytest.approx(14400) and e.value.limit == 10


def test_lying_metadata_stops_at_the_budget():
    """STREAMINFO says 1 s, the frames hold 12 s: decoding stops once past the limit."""
    data = flac_bytes(tone(12.0), claim_samples=SAMPLE_RATE)
    with pytest.raises(AudioTooLong, match="over") as e:
        load_audio(io.BytesIO(data), name="lies.flac", max_seconds=5)
    assert 5 < e.value.seconds < 6  # stopped within a packet of the limit, not at 12 s
    assert load_audio(io.BytesIO(data), name="lies.flac").size == 12 * SAMPLE_RATE


def test_npy_length_checked_from_its_header(tmp_path):
    p = tmp_path / "long.npy"
    np.save(p, np.zeros(11 * SAMPLE_RATE, np.float32))
    with pytest.raises(AudioTooLong):
        load_audio(p, max_seconds=10)


def test_allowed_demuxers_are_plain_containers():
    assert not {"hls", "dash", "concat", "image2", "tee", "data"} & set(AUDIO_DEMUXERS)


def test_metadata_seconds_reads_headers_only(tmp_path, secret):
    assert metadata_seconds(secret) == pytest.approx(2.0)
    lying = tmp_path / "long.flac"
    lying.write_bytes(flac_bytes(tone(1.0), claim_samples=4 * 3600 * SAMPLE_RATE))
    assert metadata_seconds(lying) == pytest.approx(4 * 3600)  # nothing decoded
    pl = tmp_path / "x.m3u8"
    pl.write_bytes(hls_playlist(secret))
    with pytest.raises(AudioError, match="x.m3u8"):
        metadata_seconds(pl)

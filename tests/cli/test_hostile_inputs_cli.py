"""``unitalker animate`` on inputs that lie: playlists of other files, absurd header rates."""

from __future__ import annotations

import pytest
from tests.hostile_inputs import flac_bytes, hls_playlist, tone, wav_bytes
from tests.inference.infer_testdata import save_tiny_checkpoint

from unitalker.cli import main


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    return save_tiny_checkpoint(tmp_path_factory.mktemp("model") / "tiny")


def run(*args):
    return main(["animate", "-q", *map(str, args)])


def test_playlist_refused_unless_opted_in(tmp_path, ckpt, capsys):
    other = tmp_path / "other.flac"
    other.write_bytes(flac_bytes(tone(1.0)))
    pl = tmp_path / "list.m3u8"
    pl.write_bytes(hls_playlist(other))
    out = tmp_path / "out"
    assert run(pl, "-m", ckpt, "-o", out) == 1
    err = capsys.readouterr().err
    assert "list.m3u8" in err and "not a plain audio/video file" in err
    assert not out.exists() or not any(out.iterdir())
    assert run(pl, "-m", ckpt, "-o", out, "--allow-any-container") == 0
    assert (out / "list.npz").is_file()


@pytest.mark.parametrize("rate", [1, 1_000_000])
def test_absurd_header_rate_exits_nonzero_and_writes_nothing(tmp_path, ckpt, capsys, rate):
    f = tmp_path / "claims.wav"
    f.write_bytes(wav_bytes(rate, n=200))
    out = tmp_path / "out"
    assert run(f, "-m", ckpt, "-o", out) == 1
    assert (
        f"sample rate {rate} Hz is outside the accepted 4000-192000 Hz" in capsys.readouterr().err
    )
    assert not out.exists() or not any(out.iterdir())

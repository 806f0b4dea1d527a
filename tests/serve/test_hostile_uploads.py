"""Uploads built to make the server read its own files, or to exhaust it, are refused."""

from __future__ import annotations

import httpx
import pytest
from serve_testdata import BS, run_server
from tests.hostile_inputs import concat_list, flac_bytes, hls_playlist, tone, wav_bytes


@pytest.fixture(scope="module")
def client(server):
    with httpx.Client(base_url=server.url, timeout=60) as c:
        yield c


@pytest.fixture(scope="module")
def server_file(tmp_path_factory):
    """A file on the server's disk that an upload points at."""
    p = tmp_path_factory.mktemp("private") / "secret.flac"
    p.write_bytes(flac_bytes(tone(2.0)))
    return p


def post(client, content, name, **data):
    files = {"audio": (name, content, "application/octet-stream")}
    return client.post("/v1/animate", files=files, data={"heads": BS, **data})


@pytest.mark.parametrize("fmt", ["json", "npz"])
@pytest.mark.parametrize("endlist", [True, False])
def test_hls_playlist_upload_is_refused(client, server_file, endlist, fmt):
    r = post(client, hls_playlist(server_file, endlist=endlist), "x.m3u8", format=fmt)
    assert r.status_code == 400, r.text
    body = r.json()
    assert body["error"] == "bad_audio" and "not a plain audio/video file" in body["detail"]
    assert str(server_file) not in r.text  # nothing about the file leaks either


def test_concat_list_upload_is_refused(client, server_file):
    r = post(client, concat_list(server_file), "list.ffconcat")
    assert r.status_code == 400 and r.json()["error"] == "bad_audio"


def test_playlists_never_pin_a_worker(model, server_file):
    """One worker, no queue: three endless playlists in a row, then a real clip is served."""
    from unitalker.serve import ServeSettings, create_app

    app = create_app(model, ServeSettings(max_concurrency=1, queue_limit=0))
    with run_server(app) as srv, httpx.Client(base_url=srv.url, timeout=60) as c:
        for _ in range(3):
            assert post(c, hls_playlist(server_file, endlist=False), "live.m3u8").status_code == 400
        r = post(c, flac_bytes(tone(1.0)), "ok.flac")
        assert r.status_code == 200, r.text
        jobs = c.get("/health").json()["jobs"]
        assert jobs["running"] == jobs["waiting"] == jobs["receiving"] == 0


@pytest.mark.parametrize("rate", [1, 10**6, 2**31 - 1])
def test_absurd_rates_are_4xx(client, rate):
    r = post(client, wav_bytes(rate), "claims.wav")
    assert r.status_code == 400, r.text
    assert r.json()["error"] == "bad_audio" and "4000-192000 Hz" in r.json()["detail"]


def test_long_by_metadata_and_lying_metadata_are_413(client):
    """The test server's limit is 10 s: a header claiming 4 h, and one claiming 1 s of 12 s."""
    four_h = flac_bytes(tone(1.0), claim_samples=4 * 3600 * 16000)
    r = post(client, four_h, "4h.flac")
    assert r.status_code == 413 and "14400.0 s" in r.json()["detail"]
    lies = flac_bytes(tone(12.0), claim_samples=16000)
    r = post(client, lies, "lies.flac")
    assert r.status_code == 413 and r.json()["error"] == "too_long"


def test_stream_header_follows_the_audio_rate_rule(server):
    """The WebSocket accepts exactly the rates files and uploads do (audio.py's rule)."""
    import json

    from websockets.sync.client import connect

    from unitalker.audio import MAX_SAMPLE_RATE, MIN_SAMPLE_RATE

    for rate, ok in [
        (MIN_SAMPLE_RATE - 1, False),
        (MIN_SAMPLE_RATE, True),
        (MAX_SAMPLE_RATE, True),
        (MAX_SAMPLE_RATE + 1, False),
        (2**31 - 1, False),
    ]:
        with connect(server.ws_url + "/v1/stream", open_timeout=20) as ws:
            ws.send(json.dumps({"sample_rate": rate, "heads": [BS]}))
            m = json.loads(ws.recv(20))
            assert (m["type"] == "ready") is ok, (rate, m)
            if not ok:
                assert str(MAX_SAMPLE_RATE) in m["message"]

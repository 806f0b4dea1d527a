"""REST endpoints against a real uvicorn server on loopback."""

from __future__ import annotations

import io
import threading
import zipfile

import httpx
import numpy as np
import pytest
from serve_testdata import BS, HEADS, RIG, VERT, run_server, write_clip

from unitalker.audio import frame_count, load_audio
from unitalker.serve import protocol


@pytest.fixture(scope="module")
def client(server):
    with httpx.Client(base_url=server.url, timeout=60) as c:
        yield c


def post(client, path, *, data=None, name="speech.wav", content=None):
    files = {"audio": (name, content, "application/octet-stream")}
    return client.post("/v1/animate", files=files, data=data or {})


def test_health_models_conventions_openapi(client):
    h = client.get("/health").json()
    assert h["status"] == "ok" and h["heads"] == HEADS
    m = client.get("/v1/models").json()["models"][0]
    assert [x["name"] for x in m["heads"]] == HEADS
    assert {x["name"]: x["has_mesh"] for x in m["heads"]} == {VERT: True, RIG: True, BS: False}
    assert "pivot" in m["identities"]
    convs = {c["name"]: c for c in client.get("/v1/conventions").json()["conventions"]}
    assert convs[VERT]["in_model"] and convs[VERT]["resources"] == ["faces", "neutral"]
    assert not convs["FLAME_5023_vertices"]["in_model"]
    schema = client.get("/openapi.json").json()
    for path in (
        "/v1/animate",
        "/v1/models",
        "/v1/conventions",
        "/v1/mesh/{convention}",
        "/health",
    ):
        assert path in schema["paths"], path


def test_animate_json_matches_offline(client, clip, model):
    r = post(client, "/v1/animate", content=clip.read_bytes(), data={"heads": f"{VERT},{BS}"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert set(body["heads"]) == {VERT, BS}
    offline = model.animate(load_audio(clip), heads=[VERT, BS])
    for h, a in offline.items():
        got = body["heads"][h]
        assert got["fps"] == a.fps and got["n_frames"] == a.n_frames == frame_count(24000, a.fps)
        np.testing.assert_allclose(np.asarray(got["frames"]), a.data, atol=2e-6)
    assert body["heads"][BS]["channels"][24] == "jawOpen"


def test_animate_bin_and_identity(client, clip):
    r = post(client, "/v1/animate", content=clip.read_bytes(), data={"format": "bin"})
    assert r.status_code == 200 and r.headers["content-type"] == protocol.ARRAYS_MEDIA_TYPE
    arrays, meta = protocol.unpack_arrays(r.content)
    assert set(arrays) == set(HEADS) and arrays[RIG].shape == (frame_count(24000, 25), 4)
    r2 = post(
        client, "/v1/animate", content=clip.read_bytes(), data={"format": "bin", "identity": "T:0"}
    )
    a2, meta2 = protocol.unpack_arrays(r2.content)
    assert meta2["identity"] == "T:0" and not np.allclose(a2[BS], arrays[BS])


@pytest.mark.parametrize(
    "fmt, media, name",
    [
        ("npz", "application/octet-stream", "speech.npz"),
        ("csv", "text/csv", "speech_3DETF_blendshape_weight.csv"),
        ("glb", "application/zip", "speech_glb.zip"),
    ],
)
def test_animate_files(client, clip, fmt, media, name):
    heads = BS if fmt == "csv" else ",".join(HEADS)
    r = post(client, "/v1/animate", content=clip.read_bytes(), data={"format": fmt, "heads": heads})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith(media)
    assert f'filename="{name}"' in r.headers["content-disposition"]
    if fmt == "npz":
        with np.load(io.BytesIO(r.content)) as z:
            assert any(VERT in k for k in z.files)
    if fmt == "glb":
        names = zipfile.ZipFile(io.BytesIO(r.content)).namelist()
        assert len(names) >= 2 and all(n.endswith(".glb") for n in names)


@pytest.mark.parametrize(
    "content, name, data, status, code",
    [
        (b"", "empty.wav", {}, 400, "bad_audio"),
        (b"this is not audio at all" * 10, "notes.wav", {}, 400, "bad_audio"),
        (b"RIFF0000WAVE", "trunc.wav", {}, 400, "bad_audio"),
        (None, "speech.wav", {"heads": "nope"}, 422, "unknown_head"),
        (None, "speech.wav", {"identity": "nobody"}, 422, "unknown_identity"),
        (None, "speech.wav", {"format": "docx"}, 422, "unknown_format"),
        (None, "speech.wav", {"format": "csv", "heads": VERT}, 422, "unsupported_format"),
        (None, "speech.wav", {"text": "bob made a map"}, 422, "bad_text"),  # no synth head
        (None, "speech.wav", {"text": "ab " * 7000}, 422, "bad_text"),  # too long
    ],
)
def test_animate_errors_are_json(client, clip, content, name, data, status, code):
    content = clip.read_bytes() if content is None else content
    r = post(client, "/v1/animate", content=content, name=name, data=data)
    assert r.status_code == status, r.text
    body = r.json()
    assert body["error"] == code and isinstance(body["detail"], str) and body["detail"]
    assert "/tmp" not in body["detail"]  # the server's temp paths stay private


def test_missing_field_and_unknown_route(client):
    r = client.post("/v1/animate", data={"format": "json"})
    assert r.status_code == 422 and r.json()["error"] == "invalid_request"
    assert "audio" in r.json()["detail"]
    r = client.get("/v1/nothing")
    assert r.status_code == 404 and r.json()["error"] == "not_found"


def test_size_and_duration_limits(client, tmp_path):
    big = b"\0" * (1024 * 1024 + 10)  # over the 1 MiB test limit
    r = post(client, "/v1/animate", content=big)
    assert r.status_code == 413 and r.json()["error"] == "too_large"
    long = tmp_path / "long.wav"
    write_clip(long, 11.0, sr=8000)  # 176 kB, but 11 s > the 10 s limit
    r = post(client, "/v1/animate", content=long.read_bytes(), name="long.wav")
    assert r.status_code == 413 and r.json()["error"] == "too_long"
    assert client.get("/health").json()["status"] == "ok"  # still serving


def test_mesh_endpoint(client, model):
    m = client.get(f"/v1/mesh/{VERT}").json()
    assert m["kind"] == "vertices" and len(m["faces"]) > 0 and len(m["neutral"]) == m["n_vertices"]
    r = client.get(f"/v1/mesh/{RIG}", params={"format": "bin"})
    arrays, meta = protocol.unpack_arrays(r.content)
    assert arrays["basis"].shape == (4, meta["n_vertices"], 3) and arrays["faces"].shape[1] == 3
    assert client.get(f"/v1/mesh/{BS}").status_code == 404
    r = client.get("/v1/mesh/not_a_convention")
    assert r.status_code == 404 and r.json()["error"] == "unknown_convention"


class SlowModel:
    """Wraps the model; ``animate`` blocks until released (to fill the queue)."""

    def __init__(self, model):
        self._m = model
        self.release = threading.Event()
        self.entered = threading.Semaphore(0)

    def __getattr__(self, name):
        return getattr(self._m, name)

    def animate(self, *a, **k):
        self.entered.release()
        assert self.release.wait(30)
        return self._m.animate(*a, **k)


def test_concurrency_limit_503(model, clip):
    from concurrent.futures import ThreadPoolExecutor

    from unitalker.serve import ServeSettings, create_app

    slow = SlowModel(model)
    app = create_app(slow, ServeSettings(max_concurrency=1, queue_limit=1))
    data = clip.read_bytes()
    with run_server(app) as srv, httpx.Client(base_url=srv.url, timeout=60) as c:
        with ThreadPoolExecutor(2) as ex:
            first = ex.submit(post, c, "/v1/animate", content=data)
            assert slow.entered.acquire(timeout=20)  # running
            second = ex.submit(post, c, "/v1/animate", content=data)  # queued
            for _ in range(200):
                if c.get("/health").json()["jobs"]["waiting"] == 1:
                    break
                threading.Event().wait(0.02)
            r = post(c, "/v1/animate", content=data)  # over the limit
            assert r.status_code == 503, r.text
            assert r.json()["error"] == "overloaded" and r.headers["retry-after"] == "1"
            slow.release.set()
            assert first.result(60).status_code == 200
            assert second.result(60).status_code == 200
        assert c.get("/health").json()["jobs"]["rejected"] == 1


def test_serve_cli_subprocess(model_dir, clip):
    """``unitalker serve`` as users run it: a subprocess on a free loopback port."""
    import os
    import socket
    import subprocess
    import sys
    import time

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    cmd = [
        sys.executable,
        "-m",
        "unitalker",
        "serve",
        "-m",
        str(model_dir),
        "--device",
        "cpu",
        "--port",
        str(port),
        "--max-upload-mb",
        "2",
        "--max-concurrency",
        "1",
        "--upload-timeout",
        "30",
        "--stream-send-timeout",
        "5",
    ]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(url + "/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert proc.poll() is None, proc.stdout.read().decode()
            assert time.monotonic() < deadline, "server did not come up"
            time.sleep(0.2)
        files = {"audio": ("s.wav", clip.read_bytes(), "audio/wav")}
        r = httpx.post(url + "/v1/animate", files=files, data={"heads": BS}, timeout=60)
        assert r.status_code == 200 and r.json()["heads"][BS]["n_frames"] == 45
        limits = httpx.get(url + "/v1/models").json()["limits"]
        assert limits["max_upload_mb"] == 2 and limits["max_concurrency"] == 1
        assert limits["upload_timeout_seconds"] == 30 and limits["stream_send_timeout_seconds"] == 5
        assert httpx.get(url + "/").text.startswith("<!doctype html>")
        # mp4 in a fresh process: the renderer's GL context is bound to the thread that
        # made it, so this is checked where only the server's render thread renders.
        files = {"audio": ("s.wav", clip.read_bytes(), "audio/wav")}
        r = httpx.post(url + "/v1/animate", files=files, data={"format": "mp4"}, timeout=120)
        if r.status_code != 501:  # 501: no EGL here, said clearly
            assert r.status_code == 200, r.text
            assert r.headers["content-type"] == "video/mp4" and r.content[4:8] == b"ftyp"
            assert 'filename="s.mp4"' in r.headers["content-disposition"]
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def test_malformed_bodies_are_json_errors(client):
    r = client.post(
        "/v1/animate",
        content=b"--xx\r\ngarbage",
        headers={"content-type": "multipart/form-data; boundary=xx"},
    )
    assert r.status_code in (400, 422) and "error" in r.json()
    r = client.post("/v1/animate", json={"audio": "speech.wav"})
    assert r.status_code == 422 and r.json()["error"] == "invalid_request"
    r = client.get("/v1/animate")
    assert r.status_code == 405 and r.json()["error"] == "method_not_allowed"
    assert client.get("/health").json()["status"] == "ok"


def test_animate_with_words_on_the_default_model(tmp_path):
    """``text``: the lips close on the words' bilabials, as ``with_words`` offline does;
    words that do not align are a ``422 bad_text`` naming the words."""
    import soundfile as sf

    from unitalker.inference.transcript import with_words
    from unitalker.models.checkpoint import load_model
    from unitalker.serve import ServeSettings, create_app
    from unitalker.synth.tts import synthesize

    res = synthesize("Bob made a map.", "en-us")
    wav = tmp_path / "bob.wav"
    sf.write(wav, res.audio, res.sr)
    model = load_model("default", device="cpu")
    app = create_app(model, ServeSettings(max_seconds=10.0, model_name="default"))
    with run_server(app) as r, httpx.Client(base_url=r.url, timeout=60) as c:
        heads = "synth_arkit52,synth_head_vertices"
        got = post(c, "/v1/animate", content=wav.read_bytes(), data={"heads": heads})
        words = post(
            c, "/v1/animate", content=wav.read_bytes(), data={"heads": heads, "text": res.text}
        )
        bad = post(
            c, "/v1/animate", content=wav.read_bytes(), data={"heads": heads, "text": "zzyzx"}
        )
    assert got.status_code == words.status_code == 200, words.text
    audio = load_audio(wav)
    offline = with_words(model, model.animate(audio, heads=heads.split(",")), audio, res.text)
    for h, a in offline.items():
        served = np.asarray(words.json()["heads"][h]["frames"])
        np.testing.assert_allclose(served, a.data, atol=2e-6)
        assert not np.allclose(served, np.asarray(got.json()["heads"][h]["frames"]))
    assert bad.status_code == 422 and bad.json()["error"] == "bad_text"
    assert "zzyzx" in bad.json()["detail"]

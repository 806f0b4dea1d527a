"""``unitalker stream --livelink`` and ``unitalker serve --livelink``: a loopback receiver
decodes the packets; names, order, frame times and values are the CSV export's."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import soundfile as sf
from tests.inference.infer_testdata import save_tiny_checkpoint, speechy
from tests.livelink_receiver import Receiver

from unitalker.animation import Animation
from unitalker.cli import main
from unitalker.export import write_outputs
from unitalker.export.livelink_udp import CHANNELS

HEAD = "3DETF_blendshape_weight"  # ARKit names in the EmoTalk order


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    return save_tiny_checkpoint(tmp_path_factory.mktemp("model") / "tiny")


def _csv_rows(frames: np.ndarray, fps: float, folder) -> tuple[list[str], list[list[str]]]:
    (path,) = write_outputs({HEAD: Animation(HEAD, fps, frames)}, folder, "ref", "csv")
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    return rows[0], rows[1:]


def _check_against_csv(packets, frames: np.ndarray, fps: float, folder, subject: str) -> None:
    from unitalker.export.livelink_csv import timecode

    header, rows = _csv_rows(frames, fps, folder)
    assert header[2:] == list(CHANNELS)
    assert [p.frame for p in packets] == list(range(len(frames)))
    assert len({p.device_id for p in packets}) == 1
    for p, row in zip(packets, rows, strict=True):
        assert p.version == 6 and p.subject == subject and p.rate == (int(fps), 1)
        assert timecode(p.frame, fps) == row[0]
        np.testing.assert_allclose(p.values, [float(x) for x in row[2:]], atol=1e-6)


def test_stream_livelink(tmp_path, ckpt, capsys):
    f = tmp_path / "a.wav"
    sf.write(str(f), speechy(1.0), 16000)
    with Receiver() as rx:
        args = ["stream", str(f), "-m", str(ckpt), "--heads", HEAD, "--lookahead", "0.1"]
        args += ["--livelink", rx.address, "--livelink-subject", "Face1"]
        assert main(args) == 0
        rx.wait_for(30)
        packets = rx.stop()
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    frames = np.asarray([x["data"] for x in lines if x.get("head") == HEAD], np.float32)
    assert len(frames) == 30 and lines[-1]["livelink"] == {"head": HEAD, "packets": 30}
    # The JSON lines round to 6 decimals, as the CSV does: compare through the CSV writer.
    _check_against_csv(packets, frames, 30.0, tmp_path, "Face1")


def test_stream_livelink_format_none_and_errors(tmp_path, ckpt, capsys):
    f = tmp_path / "a.wav"
    sf.write(str(f), speechy(0.5), 16000)
    with Receiver() as rx:
        args = ["stream", str(f), "-m", str(ckpt), "--heads", HEAD, "--format", "none"]
        args += ["--livelink", rx.address]
        assert main(args) == 0
        rx.wait_for(15)
        assert len(rx.stop()) == 15
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 1 and json.loads(out[0])["event"] == "end"
    bad = ["stream", str(f), "-m", str(ckpt), "--heads", "BIWI_23370_vertices"]
    assert main([*bad, "--livelink", "127.0.0.1:9"]) == 2
    assert "ARKit" in capsys.readouterr().err
    assert main(["stream", str(f), "-m", str(ckpt), "--livelink", "127.0.0.1:x"]) == 2
    assert "bad Live Link address" in capsys.readouterr().err


def test_serve_livelink(tmp_path, ckpt):
    """Frames of a WebSocket stream also leave as Live Link packets, as they are produced."""
    import asyncio

    websockets = pytest.importorskip("websockets")
    from unitalker.models.checkpoint import load_model
    from unitalker.serve import ServeSettings, create_app
    from unitalker.serve.loadtest import background_server

    wav = speechy(1.0)
    pcm = (np.clip(wav, -1, 1) * 32767).astype("<i2").tobytes()

    async def client(url: str) -> tuple[dict, list[dict]]:
        msgs = []
        async with websockets.connect(url + "/v1/stream", max_size=None) as ws:
            await ws.send(json.dumps({"type": "start", "heads": [HEAD], "lookahead": 0.1}))
            ready = json.loads(await ws.recv())
            for i in range(0, len(pcm), 3200):
                await ws.send(pcm[i : i + 3200])
            await ws.send(json.dumps({"type": "end"}))
            async for m in ws:
                msgs.append(json.loads(m))
        return ready, msgs

    model = load_model(ckpt, device="cpu")
    with Receiver() as rx:
        settings = ServeSettings(livelink=rx.address, livelink_subject="Face2")
        with background_server(create_app(model, settings)) as url:
            ready, msgs = asyncio.run(client("ws" + url[len("http") :]))
        rx.wait_for(30)
        packets = rx.stop()
    assert ready["livelink"] == {"head": HEAD, "subject": "Face2"}
    frames = np.concatenate(
        [np.asarray(m["frames"], np.float32) for m in msgs if m["type"] == "frames"]
    )
    assert len(frames) == 30
    _check_against_csv(packets, frames, 30.0, tmp_path, "Face2")


def test_serve_settings_reject_bad_address():
    from unitalker.serve import ServeSettings

    with pytest.raises(ValueError, match="bad Live Link address"):
        ServeSettings(livelink="nowhere:")

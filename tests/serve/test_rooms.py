"""The app's rooms: every endpoint still where it was, one typed state, the stream's
resampler band-limited and complete (its last samples flushed at the client's end)."""

from __future__ import annotations

import asyncio

import numpy as np
from serve_testdata import BS, RIG
from test_stream import collect, stream, write_clip_array

from unitalker.audio import SAMPLE_RATE, frame_count, resample


def test_routes_and_state(model):
    from unitalker.serve import ServeSettings, create_app
    from unitalker.serve.gate import JobGate
    from unitalker.serve.state import ServeState

    settings = ServeSettings(max_streams=3, model_name="rooms")
    app = create_app(model, settings)
    st = app.state.serve
    assert isinstance(st, ServeState) and isinstance(st.gate, JobGate)
    assert st.model is model and st.settings is settings
    assert (st.streams, st.streams_not_reading) == (0, 0)
    paths = {p: sorted(ops) for p, ops in app.openapi()["paths"].items()}
    assert paths == {
        "/health": ["get"],
        "/v1/models": ["get"],
        "/v1/conventions": ["get"],
        "/v1/mesh/{convention}": ["get"],
        "/v1/animate": ["post"],
    }
    # (WS /v1/stream is not in the schema; the stream tests connect to it.)


def test_stream_at_48k_is_resampled_whole(server, model):
    """48 kHz in: the server's 16 kHz samples are exactly resample()'s count (the filter's
    tail is flushed at "end"), frame counts follow, and the frames match offline at the end."""
    wav16 = write_clip_array(1.0)
    wav48 = resample(wav16, SAMPLE_RATE, 48000)
    header = {"sample_rate": 48000, "heads": [RIG, BS], "format": "binary"}
    ready, before, after = asyncio.run(stream(server.ws_url, wav48, header, chunk=4800))
    assert ready["sample_rate"] == 48000
    frames, done = collect(ready, before + after)
    pcm48 = (np.clip(wav48, -1, 1) * 32767).astype("<i2").astype(np.float32) / 32768.0
    back = resample(pcm48, 48000, SAMPLE_RATE)
    assert done["samples"] == len(back) == len(wav16)
    offline = model.animate(back, heads=[RIG, BS])
    for h, a in offline.items():
        assert done["frames"][h] == len(frames[h]) == frame_count(len(back), a.fps)
    np.testing.assert_allclose(frames[BS][-3:], offline[BS].data[-3:], atol=5e-3)

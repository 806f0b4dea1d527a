"""The bench's default-model streaming rows on a tiny A2F-Synth release."""

from __future__ import annotations

import numpy as np
import pytest


def test_default_model_streaming_rows(tiny_release):
    from unitalker.evaluation.evaluate import evaluate
    from unitalker.inference.bench import _mean_lve, measure_default_streaming
    from unitalker.models.checkpoint import DEFAULT_MODEL, MODELS_DIR, load_model

    path = MODELS_DIR / DEFAULT_MODEL  # given as a folder, as --stream-model passes it
    rows = measure_default_streaming(
        ((0.1, 0.05), (0.1, 0.08)), synth_data=tiny_release, max_sequences=1, model_path=path
    )
    assert list(rows) == ["look-ahead 100 ms, chunk 50 ms", "look-ahead 100 ms, chunk 80 ms"]
    st, st80 = rows.values()
    assert st["latency_ms"] == pytest.approx(50 + 100 + st["compute_ms"])
    assert st80["latency_ms"] == pytest.approx(80 + 100 + st80["compute_ms"])
    assert st80["lve_offline"] == st["lve_offline"]
    rep, _ = evaluate(load_model(path).eval(), tiny_release, max_sequences=1)
    assert st["lve_offline"] == pytest.approx(_mean_lve(rep))
    # streamed with 100 ms of look-ahead: close to offline, but not the same numbers
    assert np.isfinite(st["lve_stream"]) and st["lve_stream"] != st["lve_offline"]
    assert st["lve_stream"] < 3 * st["lve_offline"]


def test_stream_settings_argument():
    import argparse

    from unitalker.commands.bench import _stream_settings

    assert _stream_settings("0.1:0.05, 0.15:0.08") == ((0.1, 0.05), (0.15, 0.08))
    for bad in ("0.15", "0.1:0", "-0.1:0.05", "a:b"):
        with pytest.raises(argparse.ArgumentTypeError, match="LOOKAHEAD:CHUNK"):
            _stream_settings(bad)


def test_stream_targets_name_the_setting():
    from unitalker.inference.bench import BenchReport

    rep = BenchReport("tiny", 10.0, 2, "cpu")
    base = {"windowed": 0.0, "compute_ms": 15.0, "lve_offline": 1.0}
    rep.stream_default = {
        "a": base
        | {"lookahead_ms": 150.0, "chunk_ms": 80.0, "latency_ms": 245.0, "lve_stream": 1.08},
        "b": base
        | {"lookahead_ms": 200.0, "chunk_ms": 50.0, "latency_ms": 265.0, "lve_stream": 1.2},
    }
    t = rep.targets()
    assert t["default model streaming latency <= 250 ms (look-ahead 150 ms, chunk 80 ms)"][0]
    assert t["default model streaming LVE within 10% of offline (look-ahead 150 ms, chunk 80 ms)"][
        0
    ]
    assert not t["default model streaming latency <= 250 ms (look-ahead 200 ms, chunk 50 ms)"][0]
    assert not t[
        "default model streaming LVE within 10% of offline (look-ahead 200 ms, chunk 50 ms)"
    ][0]
    assert "look-ahead" in rep.table()

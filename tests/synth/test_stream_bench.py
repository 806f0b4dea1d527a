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
        (0.1,), chunk=0.05, synth_data=tiny_release, max_sequences=1, model_path=path
    )
    st = rows["0.1"]
    assert st["latency_ms"] == pytest.approx(50 + 100 + st["compute_ms"])
    rep, _ = evaluate(load_model(path).eval(), tiny_release, max_sequences=1)
    assert st["lve_offline"] == pytest.approx(_mean_lve(rep))
    # streamed with 100 ms of look-ahead: close to offline, but not the same numbers
    assert np.isfinite(st["lve_stream"]) and st["lve_stream"] != st["lve_offline"]
    assert st["lve_stream"] < 3 * st["lve_offline"]

"""The load test itself, small: every answer verified, nothing lost."""

from __future__ import annotations

import pytest
from serve_testdata import HEADS


def test_loadtest_against_server(server):
    from unitalker.serve.loadtest import run_loadtest, synthetic_clip

    report = run_loadtest(
        server.url, synthetic_clip(1.0), clients=3, requests=4, duration=60, latency_runs=1
    )
    for kind in ("animate", "stream"):
        s = report.kinds[kind]
        assert s["sent"] == 6 and s["ok"] == 6 and s["errors"] == 0 and s["lost"] == 0, s
        assert s["p50_ms"] <= s["p95_ms"]
    assert 0 < report.first_frame["first_frame_ms"] < 5000
    assert "| animate | 3 | 6 | 6 |" in report.table()


def test_loadtest_cli_in_process(model_dir, capsys, tmp_path):
    """The CLI's numbers, not its words: 2 clients x 2 requests in mixed mode are 2
    uploads and 2 streams, all verified; the latencies are ordered; the printed table
    says what the JSON report says."""
    import json
    import math

    from unitalker.cli import main

    out = tmp_path / "r.json"
    rc = main(
        [
            "loadtest",
            "-m",
            str(model_dir),
            "--device",
            "cpu",
            "--clients",
            "2",
            "--requests",
            "2",
            "--seconds",
            "0.5",
            "--latency-runs",
            "1",
            "--heads",
            HEADS[2],
            "--json",
            str(out),
        ]
    )
    printed = capsys.readouterr().out
    assert rc == 0, printed
    report = json.loads(out.read_text())
    assert (report["clients"], report["requests_per_client"]) == (2, 2)
    assert report["clip_seconds"] == 0.5 and report["wall_s"] > 0
    assert sorted(report["kinds"]) == ["animate", "stream"]
    rows = {}
    for line in printed.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if cells[0] in report["kinds"]:
            rows[cells[0]] = cells
    assert sorted(rows) == ["animate", "stream"], printed
    for kind, s in report["kinds"].items():
        # alternating kinds from client c's request i: (i + c) % 2 -> 2 of each
        assert (s["sent"], s["ok"], s["rejected"], s["errors"], s["lost"]) == (2, 2, 0, 0, 0), s
        assert s["error_messages"] == []
        assert 0 < s["p50_ms"] <= s["p95_ms"] <= s["max_ms"] < 120_000, s
        assert s["throughput_rps"] == pytest.approx(s["ok"] / report["wall_s"])
        kind_, clients, sent, ok, rejected, errors, lost, rps, p50, p95 = rows[kind]
        assert (kind_, int(clients), int(sent), int(ok)) == (kind, 2, 2, 2)
        assert (int(rejected), int(errors), int(lost)) == (0, 0, 0)
        assert float(rps) == pytest.approx(s["throughput_rps"], abs=0.005)
        assert abs(float(p50) - s["p50_ms"]) <= 0.5 and abs(float(p95) - s["p95_ms"]) <= 0.5
    ff = report["first_frame"]
    assert ff["runs"] == 1 and len(ff["all_first_frame_ms"]) == 1 and ff["lookahead"] == 0.2
    assert 0 < ff["first_frame_ms"] < 60_000 and math.isfinite(ff["processing_ms"])
    assert 0 <= ff["processing_ms"] <= ff["first_frame_ms"]
    assert "streaming first frame" in printed


def test_refusals_only_past_the_configured_limits(model):
    """Under the limits: nothing refused. Past them: refusals (503 / close 1013), counted
    as such, never as errors, and still nothing lost or answered wrongly."""
    from serve_testdata import run_server

    from unitalker.serve import ServeSettings, create_app
    from unitalker.serve.loadtest import run_loadtest, synthetic_clip

    clip = synthetic_clip(0.5)
    within = ServeSettings(max_concurrency=2, queue_limit=8, max_streams=8, max_seconds=10.0)
    with run_server(create_app(model, within)) as r:
        report = run_loadtest(r.url, clip, clients=4, requests=2, duration=60, latency_runs=0)
    for kind, s in report.kinds.items():
        assert s["ok"] == s["sent"] == 4 and s["rejected"] == s["errors"] == s["lost"] == 0, (
            kind,
            s,
        )

    tight = ServeSettings(max_concurrency=1, queue_limit=0, max_streams=1, max_seconds=10.0)
    with run_server(create_app(model, tight)) as r:
        report = run_loadtest(r.url, clip, clients=6, requests=3, duration=60, latency_runs=0)
    for kind, s in report.kinds.items():
        assert s["errors"] == 0 and s["lost"] == 0, (kind, s["error_messages"])
        assert s["ok"] >= 1 and s["ok"] + s["rejected"] == s["sent"] == 9, (kind, s)
    assert sum(s["rejected"] for s in report.kinds.values()) > 0

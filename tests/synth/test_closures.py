"""Bilabial closures: phone parsing, the interval minima, and the report on the tiny preset."""

from __future__ import annotations

import json

import numpy as np
import pytest


def test_bilabial_intervals():
    from unitalker.evaluation.closures import bilabial_intervals

    tl = [["_", 0.0, 0.2], ["ˈb", 0.2, 0.3], ["a", 0.3, 0.5], ["m̩", 0.5, 0.6], ["f", 0.6, 0.7]]
    tl += [["p", 0.7, 0.7]]  # empty: left out
    assert bilabial_intervals(tl) == [(0.2, 0.3), (0.5, 0.6)]


def test_closure_minima_frames_inside_and_nearest():
    from unitalker.evaluation.closures import closure_minima

    op = np.array([0.5, 0.4, 0.0, 0.3, 0.6, 0.7], np.float32)  # frames at 0, 0.1, ... 0.5 s
    got = closure_minima(op, 10.0, [(0.1, 0.35), (0.41, 0.44), (0.46, 0.49), (2.0, 2.1)])
    assert got[0] == pytest.approx(0.0)  # frames 1-3: min 0.0
    assert got[1] == pytest.approx(0.6)  # no frame inside: the one nearest 0.425 s (frame 4)
    assert got[2] == pytest.approx(0.7)  # nearest 0.475 s: frame 5
    assert np.isnan(got[3])  # past the clip


def test_labels_close_and_a_held_open_mouth_does_not():
    """On the articulation model's labels every bilabial closes; held open on /a/, none."""
    from unitalker.evaluation.closures import CLOSURE_TOL, bilabial_intervals, closure_minima
    from unitalker.evaluation.voices import mouth_opening
    from unitalker.synth.articulation import timeline_to_articulation
    from unitalker.synth.conventions import render

    fps = 30.0
    tl = [
        ["_", 0.0, 0.3],
        ["a", 0.3, 0.6],
        ["m", 0.6, 0.72],
        ["a", 0.72, 1.0],
        ["b", 1.0, 1.06],
        ["a", 1.06, 1.4],
        ["p", 1.4, 1.5],
        ["a", 1.5, 1.8],
        ["_", 1.8, 2.2],
    ]
    curves = timeline_to_articulation([tuple(p) for p in tl], fps, seed=0, n_frames=66)
    for conv in ("synth_arkit52", "synth_head_vertices"):
        motion = render(conv, curves, None)
        ints = bilabial_intervals(tl)
        closed = closure_minima(mouth_opening(conv, motion), fps, ints)
        assert len(closed) == 3 and (closed <= CLOSURE_TOL).all()
        held = np.repeat(motion[int(0.45 * fps)][None], len(motion), 0)  # /a/ throughout
        assert (closure_minima(mouth_opening(conv, held), fps, ints) > CLOSURE_TOL).all()


def test_timeline_path_follows_release_links(tmp_path):
    from unitalker.data.visemes import timeline_path

    gen = tmp_path / "gen"
    (gen / "S0_synbiwi" / "wav").mkdir(parents=True)
    (gen / "_timelines" / "S0").mkdir(parents=True)
    (gen / "S0_synbiwi" / "wav" / "F2_e01.wav").write_bytes(b"")
    (gen / "_timelines" / "S0" / "F2_e01.json").write_text("{}")
    rel = tmp_path / "release" / "S0" / "wav"
    rel.mkdir(parents=True)
    (rel / "F2_e01.wav").symlink_to(gen / "S0_synbiwi" / "wav" / "F2_e01.wav")
    assert timeline_path(rel / "F2_e01.wav", "S0") == gen / "_timelines" / "S0" / "F2_e01.json"
    assert timeline_path(rel / "F2_e01.wav", "S1") is None


def test_closure_report_on_the_tiny_preset(tiny_release, tmp_path):
    """The report has one row per timed synth dataset; the labels close their bilabials;
    the CLI prints the table and adds it to the JSON."""
    from unitalker.cli import main
    from unitalker.evaluation.closures import closure_report
    from unitalker.models.checkpoint import load_model

    model = load_model("default", "cpu")
    calls = []
    rep = closure_report(
        model,
        tiny_release,
        datasets=("S0", "S2"),
        max_sequences=2,
        progress=lambda d, t: calls.append((d, t)),
    )
    done = [d for d, _ in calls]
    assert done == sorted(done) and done[-1] == calls[-1][1] == 4  # 2 per dataset, in order
    assert {r.dataset for r in rep.rows} == {"S0", "S2"}
    for r in rep.rows:
        assert r.split == "test" and r.sequences >= 1 and r.bilabials >= 1
        assert r.label_closed >= 0.9 and r.label_median <= 0.1
        assert 0.0 <= r.model_closed <= 1.0 and np.isfinite(r.model_median)
    assert "closed (model)" in rep.table()
    out = tmp_path / "e.json"
    rc = main(
        [
            "evaluate",
            "default",
            str(tiny_release),
            "--datasets",
            "S2",
            "--max-sequences",
            "1",
            "--closures",
            "--json",
            str(out),
        ]
    )
    assert rc == 0
    doc = json.loads(out.read_text())
    assert doc["closures"]["rows"][0]["dataset"] == "S2" and doc["datasets"]


def test_closure_report_without_timelines_is_a_clear_error(tiny_release, tmp_path):
    from unitalker.evaluation.closures import closure_report
    from unitalker.models.checkpoint import load_model

    with pytest.raises(ValueError, match="_timelines"):
        closure_report(load_model("default", "cpu"), tiny_release, splits=("nosuchsplit",))

"""Conversion of every A2F-Synth convention into ``synth_head_vertices`` (Table 4's
baseline), checked against the ``head`` rendering of the same articulation, and the
Table 4 experiment end to end at test size."""

from __future__ import annotations

import math

import numpy as np
import pytest

from unitalker.data import load_manifest
from unitalker.synth import unify
from unitalker.synth.conventions import ARKIT, FLAME, HEAD, HEAD2, identity_template, render


def _curves(seed: int = 0, n: int = 60) -> dict[str, np.ndarray]:
    from unitalker.synth.articulation import timeline_to_articulation

    timeline = [("aa", 0.1, 0.4), ("PP", 0.5, 0.7), ("ou", 0.8, 1.2), ("E", 1.3, 1.8)]
    return timeline_to_articulation(timeline, 30.0, seed=seed, n_frames=n)


@pytest.mark.parametrize("conv", [ARKIT, FLAME])
def test_rig_conversion_of_identity_free_conventions_is_exact(conv):
    curves = _curves()
    got, tpl = unify.to_common(conv, render(conv, curves), None, "rig")
    want = render(HEAD, curves, None)
    assert np.abs(got - want).max() < 1e-6  # metres
    assert np.allclose(tpl, identity_template(HEAD, None).reshape(-1))


def test_rig_conversion_of_head2_motion_is_exact_and_template_is_close():
    curves, ident = _curves(1), 12345
    data = render(HEAD2, curves, ident)
    tpl2 = identity_template(HEAD2, ident).reshape(-1)
    got, tpl = unify.to_common(HEAD2, data, tpl2, "rig")
    want = render(HEAD, curves, ident)
    tpl1 = identity_template(HEAD, ident).reshape(-1)
    # the motion (frames minus template) is exact; only the neutral crosses meshes
    assert np.abs((got - tpl) - (want - tpl1)).max() < 1e-6
    err = np.linalg.norm((tpl - tpl1).reshape(-1, 3), axis=1)
    assert err.mean() < 1e-4 and err.max() < 2e-3


def test_surface_method_is_close_but_not_exact():
    err = unify.conversion_error(n_clips=2)
    for conv in (ARKIT, FLAME):
        assert err[f"{conv} rig"]["max"] < 1e-6
    assert err[f"{ARKIT} surface"]["max"] < 1e-6  # ARKit goes through the rig either way
    assert 1e-5 < err[f"{FLAME} surface"]["mean"] < 1e-3  # skinned jaw vs jaw blendshape
    assert err[f"{HEAD2} surface"]["mean"] < 2e-4
    assert err[f"{HEAD2} rig"]["mean"] <= err[f"{HEAD2} surface"]["mean"]


def test_unknown_convention_or_method_is_refused():
    with pytest.raises(ValueError, match="cannot be converted"):
        unify.to_common("tt_verts", np.zeros((2, 3)), None)
    with pytest.raises(ValueError, match="unknown conversion method"):
        unify.to_common(ARKIT, np.zeros((2, 52)), None, "magic")


def test_write_unified_gives_one_convention(tiny_release, tmp_path):
    out = unify.write_unified(tiny_release, tmp_path / "uni", ["S0", "S1", "S4", "S3"])
    man = load_manifest(out)
    for split in man.split_names:
        assert {p.convention for p in man.split(split).parts} == {HEAD}
    src = load_manifest(tiny_release).split("train")
    dst = man.split("train")
    for key in ("S1", "S4", "S3"):
        a, b = src.part(key), dst.part(key)
        assert len(a.entries) == len(b.entries) and a.id_list == b.id_list
        e = b.entries[0]
        frames = np.load(e.annot_path)
        assert frames.shape == (len(np.load(a.entries[0].annot_path)), 3 * 2108)
        assert e.fps == a.entries[0].fps  # native rate kept; the loader resamples
        assert b.templates.shape[1] == 3 * 2108
    # idempotent: a second call keeps the converted folders
    mtime = (out / "S4" / ".done").stat().st_mtime
    unify.write_unified(tiny_release, tmp_path / "uni", ["S0", "S4"])
    assert (out / "S4" / ".done").stat().st_mtime == mtime


@pytest.mark.slow
def test_table4_quick(tiny_release, tmp_path):
    from unitalker import experiments as ex

    setup = ex.Setup(tiny_release, tmp_path / "docs", tmp_path / "runs", steps=2, quick=True)
    text = ex.table4(setup, ["S0", "S4", "S3"])  # tiny S4: ARKit with a train split
    assert (setup.out_dir / "table4.md").read_text() == text
    head = next(ln for ln in text.splitlines() if ln.startswith("| method"))
    assert head.endswith("| S0 | S0+S4 | S0+S4+S3 |")
    rows = {}
    for row in ("preprocessing (one head)", "UniTalker (multi-head)"):
        line = next(ln for ln in text.splitlines() if ln.startswith(f"| {row} |"))
        rows[row] = [float(c) for c in line.strip("|").split("|")[1:]]
        assert len(rows[row]) == 3 and all(math.isfinite(v) for v in rows[row])
    # one dataset: both columns are the same model
    assert rows["preprocessing (one head)"][0] == rows["UniTalker (multi-head)"][0]
    assert "Cost: 5 models" in text
    from unitalker.models.checkpoint import load_model

    one = load_model(setup.work_dir / "table4" / "rig_S0_S4_S3" / "seed0" / "model", "cpu")
    multi = load_model(setup.work_dir / "table4" / "multi_S0_S4_S3" / "seed0" / "model", "cpu")
    assert list(one.heads) == [HEAD]
    assert sorted(multi.heads) == sorted([HEAD, ARKIT, FLAME])
    with pytest.raises(ValueError, match="put such a dataset first"):
        ex.table4(setup, ["S4", "S0"])

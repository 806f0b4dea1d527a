"""The mesh endpoint's render-only dressing, and the viewer's JavaScript evaluation of it."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from unitalker.conventions import ARKIT52_EMOTALK
from unitalker.serve.app import mesh_payload
from unitalker.synth import conventions as SC
from unitalker.synth.dressing import dressing_for

VIEWER = Path(__file__).resolve().parents[2] / "src/unitalker/serve/static/viewer.js"


@pytest.mark.parametrize("name", [SC.HEAD2, SC.ARKIT])
def test_mesh_payload_has_the_dressing(name: str) -> None:
    arrays, meta = mesh_payload(None, name)
    d = dressing_for(name)
    assert "display" in meta and arrays["display_rest"].shape == d.rest.shape
    assert arrays["display_faces"].max() < len(d.rest)
    assert len(arrays["display_indptr"]) == len(d.rest) + 1
    np.testing.assert_array_equal(arrays["neutral"], d.neutral)  # the data's mesh, unchanged
    plain, meta2 = mesh_payload(None, name, display=False)
    assert "display" not in meta2 and not any(k.startswith("display_") for k in plain)


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")
def test_viewer_evaluates_the_dressing_like_python(tmp_path) -> None:
    arrays, _ = mesh_payload(None, SC.ARKIT)
    d = dressing_for(SC.ARKIT)
    w = np.zeros(52, np.float32)
    w[ARKIT52_EMOTALK.index("jawOpen")] = 0.7
    v = d.neutral + np.einsum("c,cvk->vk", w, SC.asset("head")["rig_basis"])
    v = v + np.random.default_rng(0).normal(0, 1e-4, v.shape).astype(np.float32)  # noise
    want = d.apply(v, blink=0.5)
    payload = {k: np.asarray(a).ravel().tolist() for k, a in arrays.items() if k != "faces"}
    payload["v"] = v.ravel().tolist()
    (tmp_path / "in.json").write_text(json.dumps(payload))
    script = f"""
global.window = {{}};
require({json.dumps(str(VIEWER))});
const p = JSON.parse(require("fs").readFileSync({json.dumps(str(tmp_path / "in.json"))}));
const d = {{rest: p.display_rest, blink: p.display_blink, indptr: p.display_indptr,
  indices: p.display_indices, data: p.display_data, neutral: p.neutral,
  smooth: {{indptr: p.display_smooth_indptr, indices: p.display_smooth_indices,
    data: p.display_smooth_data}}}};
const out = window.evalDisplay(d, p.v, 0.5, new Float64Array(p.display_rest.length));
const b = [0, 0.5, 0.9, 0.97, 1.01, 1.2].map(window.blinkAt);
process.stdout.write(JSON.stringify({{out: Array.from(out), b}}));
"""
    res = subprocess.run(["node", "-e", script], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    got = json.loads(res.stdout)
    np.testing.assert_allclose(np.reshape(got["out"], (-1, 3)), want, atol=2e-6)
    assert got["b"][0] == 0 and got["b"][3] == 1 and got["b"][5] == 0

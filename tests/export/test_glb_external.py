"""The .glb files pass the Khronos glTF validator and play in three.js (in Node).

Needs ``node`` and the packages of ``.ci/node`` (``npm ci --prefix .ci/node``; CI does this).
Elsewhere the tests skip, unless ``UNITALKER_REQUIRE_NODE_TESTS=1`` (set by CI) makes a
missing tool a failure.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from unitalker.export import write_outputs

ROOT = Path(__file__).resolve().parents[2]
MODULES = Path(os.environ.get("UNITALKER_NODE_MODULES", ROOT / ".ci" / "node" / "node_modules"))
SCRIPT = Path(__file__).parent / "js" / "check_glb.mjs"


def _check(path: Path, times: list[float]) -> dict:
    node = shutil.which("node")
    missing = (
        node is None
        or not (MODULES / "three").is_dir()
        or not (MODULES / "gltf-validator").is_dir()
    )
    if missing:
        msg = f"node or {MODULES}/{{three,gltf-validator}} missing: npm ci --prefix .ci/node"
        if os.environ.get("UNITALKER_REQUIRE_NODE_TESTS") == "1":
            pytest.fail(msg)
        pytest.skip(msg)
    # the script resolves 'three' and 'gltf-validator' from a node_modules beside it
    work = path.parent / "node_check"
    work.mkdir(exist_ok=True)
    shutil.copy(SCRIPT, work / SCRIPT.name)
    link = work / "node_modules"
    if not link.exists():
        link.symlink_to(MODULES, target_is_directory=True)
    out = subprocess.run(
        [node, str(work / SCRIPT.name), str(path), *map(str, times)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    v = report["validator"]
    assert v["errors"] == 0 and v["warnings"] == 0, v["messages"]
    return report["three"]


def test_glb_rig_validates_and_plays_in_three(rig_anim, rig_conv, tmp_path) -> None:
    (path,) = write_outputs({rig_conv.name: rig_anim}, tmp_path, "clip", "glb")
    fps, n = rig_anim.fps, len(rig_anim.data)
    frames = [0, 3, n - 1]
    three = _check(path, [f / fps for f in frames] + [2.5 / fps])
    assert three["vertices"] == rig_conv.n_vertices
    assert three["targets"] == rig_conv.dim
    assert three["duration"] == pytest.approx((n - 1) / fps, abs=1e-5)
    got = np.array(three["samples"])
    # at frame times three.js's mixer gives the exported weights; between, the linear mix
    np.testing.assert_allclose(got[:3], rig_anim.data[frames], atol=1e-5)
    np.testing.assert_allclose(got[3], 0.5 * (rig_anim.data[2] + rig_anim.data[3]), atol=1e-5)


def test_glb_vertices_validates_and_plays_in_three(sphere_anim, sphere_conv, tmp_path) -> None:
    (path,) = write_outputs({sphere_conv.name: sphere_anim}, tmp_path, "clip", "glb")
    fps, n = sphere_anim.fps, len(sphere_anim.data)
    three = _check(path, [0.0, 5 / fps])
    assert three["vertices"] == sphere_conv.dim // 3
    s = np.array(three["samples"])
    assert s.shape[1] == three["targets"] >= 1
    assert not np.allclose(s[0], s[1])  # the face moves between the two moments
    assert three["duration"] == pytest.approx((n - 1) / fps, abs=1e-5)


def test_default_model_glb_validates(tmp_path) -> None:
    """The glb files of the README's main job (every head of the bundled model)."""
    import unitalker

    rng = np.random.default_rng(0)
    audio = (0.1 * rng.standard_normal(16000)).astype(np.float32)
    result = unitalker.load_model("default", device="cpu").animate(audio, 16000)
    paths = write_outputs(result, tmp_path, "noise", "glb")
    assert len(paths) == len(result) >= 3
    for p in paths:
        three = _check(p, [0.0, 0.5])
        assert three["targets"] >= 1

"""The bundled default model and the README's main job, end to end."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import unitalker
from unitalker.cli import main

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "hello.wav"


def test_default_model_is_bundled_small_and_loads():
    assert "default" in unitalker.available_models()
    weights = (
        Path(unitalker.__file__).parent / "assets" / "models" / "default" / "model.safetensors"
    )
    assert weights.stat().st_size <= 25 * 2**20
    model = unitalker.load_model(device="cpu")
    assert {
        "synth_arkit52",
        "synth_head_vertices",
        "synth_head2_vertices",
        "synth_flame_params",
    } <= set(model.heads)


def test_default_model_animates_the_example():
    from unitalker.audio import load_audio

    model = unitalker.load_model(device="cpu")
    result = model.animate(EXAMPLE)
    seconds = len(load_audio(EXAMPLE)) / 16000
    for name, anim in result.items():
        assert anim.n_frames == round(seconds * anim.fps), name
        assert np.isfinite(anim.data).all()
        assert anim.data.std(axis=0).max() > 0, f"{name} does not move"
    # a trained model opens the jaw while speaking and closes it in the trailing silence
    arkit = result["synth_arkit52"]
    jaw = arkit.data[:, arkit.channel_names.index("jawOpen")]
    assert jaw.max() > 0.2 and jaw[-5:].mean() < jaw.max() / 3


README = Path(__file__).resolve().parent.parent / "README.md"


def readme_animate_args() -> list[str]:
    """The arguments of the README's command 1 (``... && unitalker animate ...``)."""
    import shlex

    for line in README.read_text().splitlines():
        if "unitalker animate examples/hello.wav" in line:
            cmd = line.split("&&")[-1].split("#")[0]
            return shlex.split(cmd)[2:]  # drop "unitalker animate"
    raise AssertionError("README has no 'unitalker animate examples/hello.wav' command")


def test_readme_main_job(tmp_path, monkeypatch):
    """The README's command 1, run twice as written (from the repository root, with the
    paths it names): every format of every head, the mp4 preview included."""
    import av

    from unitalker.render.renderer import egl_available

    if not egl_available():
        pytest.skip("no EGL here: the mp4 preview needs Mesa's EGL (CI installs it)")
    args = readme_animate_args()
    assert args[0] == "examples/hello.wav" and "--overwrite" in args
    args[0] = str(EXAMPLE)
    out = tmp_path / "out"
    args[args.index("-o") + 1] = str(out)
    mine = out / "my_notes.txt"
    out.mkdir()
    mine.write_text("a user's own file")
    assert main(["animate", *args]) == 0
    first = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    assert main(["animate", *args]) == 0  # the README's command is idempotent
    assert {p.name for p in out.iterdir()} == set(first)
    assert mine.read_text() == "a user's own file"
    # without --overwrite, existing outputs are protected
    plain = [a for a in args if a != "--overwrite"]
    assert main(["animate", *plain]) == 1
    names = {p.name for p in out.iterdir()}
    assert {"hello.npz", "hello.mp4", "hello_synth_arkit52.csv"} <= names
    heads = unitalker.load_model(device="cpu").heads
    for h in heads:  # every head has a glb (all four have a mesh, the FLAME-like one too)
        assert f"hello_{h}.glb" in names, h
    assert any(n.endswith(".obj") or (out / n).is_dir() for n in names)
    with av.open(str(out / "hello.mp4")) as f:
        kinds = {s.type for s in f.streams}
        assert kinds == {"video", "audio"}
        assert f.streams.video[0].frames > 0


def test_bundled_checkpoint_is_portable():
    """No machine-specific path in the shipped checkpoint: shipped assets are named
    'unitalker:...' (relative to the installed package)."""
    import json

    from unitalker.models.checkpoint import config_file

    d = Path(unitalker.__file__).parent / "assets" / "models" / "default"
    text = config_file(d).read_text()  # either layout (unitalker.json, or the old config.json)
    for conv in json.loads(text)["conventions"]:
        for spec in conv["resources"].values():
            assert spec.startswith("unitalker:"), spec


def test_checkpoint_from_another_machine_loads_in_a_fresh_process(tmp_path):
    """A checkpoint whose embedded conventions name resource files at paths of the machine
    that trained it (absent here) loads as the first thing a process does; the registered
    definitions win. A real disagreement (another dim) is a clear error."""
    import json
    import shutil
    import subprocess
    import sys

    src = Path(unitalker.__file__).parent / "assets" / "models" / "default"
    moved = tmp_path / "moved"
    from unitalker.models.checkpoint import config_file

    shutil.copytree(src, moved)
    cfg = config_file(moved)  # either layout
    meta = json.loads(cfg.read_text())
    for conv in meta["conventions"]:
        conv["resources"] = {
            k: v.replace("unitalker:", "/home/someone/unitalker/src/unitalker/")
            for k, v in conv["resources"].items()
        }
    cfg.write_text(json.dumps(meta))
    code = (
        "import sys, unitalker; m = unitalker.load_model(sys.argv[1], device='cpu'); "
        "r = m.animate(sys.argv[2]); "
        "print(sorted(r), r['synth_flame_params'].vertices().shape[1])"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(moved), str(EXAMPLE)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert "synth_arkit52" in out.stdout

    meta["conventions"][0]["dim"] += 3  # not the registered convention any more
    cfg.write_text(json.dumps(meta))
    out = subprocess.run(
        [sys.executable, "-c", code, str(moved), str(EXAMPLE)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode != 0
    assert "differs from the registered one" in out.stderr
    assert str(moved) in out.stderr  # the error names the checkpoint

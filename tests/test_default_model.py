"""The bundled default model and the README's main job, end to end."""

from __future__ import annotations

from pathlib import Path

import numpy as np

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


def test_readme_main_job(tmp_path):
    out = tmp_path / "out"
    assert main(["animate", str(EXAMPLE), "-o", str(out), "--format", "npz,csv,json,glb"]) == 0
    names = {p.name for p in out.iterdir()}
    assert "hello.npz" in names
    assert any(n.endswith(".csv") for n in names) and any(n.endswith(".glb") for n in names)

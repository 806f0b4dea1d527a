"""``unitalker stream``, ``bench --quick``, ``models``, ``convert-checkpoint``."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest
import soundfile as sf
from tests.inference.infer_testdata import save_tiny_checkpoint, speechy

from unitalker.cli import main


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    return save_tiny_checkpoint(tmp_path_factory.mktemp("model") / "tiny")


def test_stream_file_to_jsonl(tmp_path, ckpt, capsys):
    f = tmp_path / "a.wav"
    sf.write(str(f), speechy(1.5), 16000)
    assert (
        main(
            [
                "stream",
                str(f),
                "-m",
                str(ckpt),
                "--heads",
                "3DETF_blendshape_weight",
                "--lookahead",
                "0.1",
            ]
        )
        == 0
    )
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    frames = [x for x in lines if "head" in x]
    assert [x["frame"] for x in frames] == list(range(45))
    assert len(frames[0]["data"]) == 52
    assert lines[-1]["event"] == "end" and lines[-1]["frames"] == {"3DETF_blendshape_weight": 45}


def test_stream_pcm16_from_stdin(tmp_path, ckpt, capsys, monkeypatch):
    import io

    pcm = (speechy(1.0) * 32767).astype("<i2").tobytes() + b"\x01"  # odd trailing byte
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(pcm)))
    assert main(["stream", "-", "-m", str(ckpt), "--heads", "BIWI_23370_vertices"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert json.loads(lines[-1])["frames"] == {"BIWI_23370_vertices": 25}


def test_bench_quick_tiny(capsys):
    pytest.importorskip("onnxruntime")
    assert (
        main(
            [
                "bench",
                "--quick",
                "--size",
                "tiny",
                "--seconds",
                "1",
                "--skip",
                "render,memory,streaming,per_head",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "one pass, all heads" in out and "onnxruntime" in out and "targets:" in out


def test_bench_memory_subprocess():
    from unitalker.inference.bench import measure_memory

    m = measure_memory("tiny", 2.0)
    assert m["peak_mb"] > m["model_mb"] > 0 and m["output_mb"] > 0


def test_models_lists_bundled(capsys, monkeypatch, tmp_path):
    from unitalker.models import checkpoint

    save_tiny_checkpoint(tmp_path / "default")
    monkeypatch.setattr(checkpoint, "MODELS_DIR", tmp_path)
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    assert "default (default)" in out and "4 identities" in out and "BIWI_23370_vertices" in out


def test_convert_checkpoint_errors(tmp_path, capsys):
    bad = tmp_path / "x.pt"
    bad.write_bytes(b"garbage")
    assert main(["convert-checkpoint", str(bad), "-o", str(tmp_path / "o")]) == 2
    assert "x.pt" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_convert_checkpoint_roundtrip(tmp_path, capsys):
    """An original-layout state dict with a local encoder folder converts and animates."""
    import torch
    import transformers
    from tests.conftest import tiny_hf_config
    from tests.inference.infer_testdata import tiny_wavlm

    model = tiny_wavlm()
    enc_dir = tmp_path / "enc"
    transformers.WavLMConfig(**tiny_hf_config("wavlm")).save_pretrained(enc_dir)
    state = {}
    for k, v in model.state_dict().items():
        if k.startswith("audio_encoder.model."):
            state["audio_encoder." + k[len("audio_encoder.model.") :]] = v
        elif k.startswith(("decoder.", "out_head_dict.")) and "BIWI" not in k and "FLAME" not in k:
            state[k] = v
    pt = tmp_path / "orig.pt"
    torch.save(state, pt)
    out = tmp_path / "conv"
    assert main(["convert-checkpoint", str(pt), "--encoder", str(enc_dir), "-o", str(out)]) == 0
    wav = tmp_path / "a.wav"
    sf.write(str(wav), speechy(1.0), 16000)
    assert main(["animate", "-q", str(wav), "-m", str(out), "-o", str(tmp_path / "res")]) == 0
    from unitalker.export import load_npz

    res = load_npz(tmp_path / "res" / "a.npz")
    assert list(res) == ["3DETF_blendshape_weight"]
    assert np.isfinite(res["3DETF_blendshape_weight"].data).all()


@pytest.mark.slow
def test_bench_compile_path_on_tiny():
    """The bf16 + torch.compile row is timed (or its failure noted), and the dynamo
    recompile limit the bench raises for per-layer compiles is put back."""
    import torch._dynamo as dynamo

    from unitalker.inference.bench import run_bench

    limit = dynamo.config.recompile_limit
    rep = run_bench(
        "tiny",
        1.0,
        repeats=1,
        paths=("one_pass", "compile"),
        memory_seconds=(),
        lookaheads=(),
        render=False,
        default_streams=(),
    )
    assert dynamo.config.recompile_limit == limit
    failed = [n for n in rep.notes if n.startswith("torch.compile failed")]
    assert ("compile" in rep.speed and rep.errors["compile"] < 0.1 * rep.spread) or failed

"""bf16 autocast and ONNX match fp32 torch within stated tolerances.

Tolerances (tiny random WavLM model, outputs spanning about +-1):
- ONNX (onnxruntime fp32): max abs error <= 1e-4, relative (to the output's max) <= 1e-4.
- bf16 autocast: max abs error <= 0.05, relative <= 5e-2 (bf16 keeps 8 mantissa bits).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from tests.inference.infer_testdata import HEADS, speechy, tiny_wavlm

from unitalker.inference.animate import animate

pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")

ONNX_ABS, ONNX_REL = 1e-4, 1e-4
BF16_ABS, BF16_REL = 5e-2, 5e-2


def errors(a: dict, b: dict) -> tuple[float, float]:
    abs_err = max(float(np.abs(a[h].data - b[h].data).max()) for h in a)
    rel_err = max(float(np.abs(a[h].data - b[h].data).max() / np.abs(a[h].data).max()) for h in a)
    return abs_err, rel_err


def test_bf16_matches_fp32():
    model = tiny_wavlm()
    wav = speechy(3.0)
    ref = animate(model, wav)
    bf = animate(model, wav, precision="bf16")
    abs_err, rel_err = errors(ref, bf)
    print(f"bf16 vs fp32: max abs {abs_err:.2e}, relative {rel_err:.2e}")
    assert abs_err <= BF16_ABS and rel_err <= BF16_REL
    assert all(bf[h].data.dtype == np.float32 for h in bf)


@pytest.mark.parametrize("native", [True, False])
def test_slow_precision_is_named_once(monkeypatch, caplog, native):
    # bf16 without native kernels (AVX2-only CPUs) falls back to reference code, ~20x
    # slower than fp32: the user who asked for it is told so, once, and it still runs.
    from unitalker.inference import precision

    monkeypatch.setattr(precision, "cpu_bf16_native", lambda: native)
    monkeypatch.setattr(precision, "_WARNED", set())
    model = tiny_wavlm()
    with caplog.at_level("WARNING", logger="unitalker.inference.precision"):
        for _ in range(2):
            precision.for_precision(model, "bf16")
    warned = [r for r in caplog.records if "no native kernels" in r.getMessage()]
    assert len(warned) == (0 if native else 1)
    assert precision.warn_slow_precision("bf16", "cpu") is (not native)
    assert precision.warn_slow_precision("fp16", "cpu") is True  # a GPU precision
    assert precision.warn_slow_precision("bf16", "cuda") is False
    assert precision.warn_slow_precision("fp32", "cpu") is False
    monkeypatch.undo()
    assert isinstance(precision.cpu_bf16_native(), bool)  # the real probe


@pytest.fixture(scope="module")
def onnx_file(tmp_path_factory):
    from unitalker.inference.onnx import export_onnx

    path = tmp_path_factory.mktemp("onnx") / "tiny.onnx"
    return export_onnx(tiny_wavlm(), path)


@pytest.mark.parametrize("seconds", [0.3, 2.71, 7.5])
def test_onnx_matches_fp32_at_any_length(onnx_file, seconds):
    from unitalker.inference.onnx import OnnxUniTalker

    model = tiny_wavlm()
    runner = OnnxUniTalker(onnx_file)
    assert runner.heads == HEADS
    wav = speechy(seconds, seed=int(seconds * 10))
    ref = animate(model, wav, identity=1, window=3.0, overlap=1.0)
    got = animate(runner, wav, identity=1, window=3.0, overlap=1.0)
    for h in ref:
        assert got[h].data.shape == ref[h].data.shape
    abs_err, rel_err = errors(ref, got)
    print(f"onnx vs fp32 ({seconds} s): max abs {abs_err:.2e}, relative {rel_err:.2e}")
    assert abs_err <= ONNX_ABS and rel_err <= ONNX_REL


@pytest.mark.parametrize("position", [0, 2])
def test_onnx_other_adaptor_positions(tmp_path, position):
    from unitalker.inference.onnx import OnnxUniTalker, export_onnx

    model = tiny_wavlm(position)
    runner = OnnxUniTalker(export_onnx(model, tmp_path / "m.onnx", heads=HEADS[1:]))
    audio = torch.from_numpy(speechy(1.37))[None]
    with torch.no_grad():
        ref = model(audio, heads=HEADS[1:])
    got = runner(audio)
    for h in HEADS[1:]:
        assert torch.allclose(ref[h].motion, got[h].motion, atol=ONNX_ABS)


def test_onnx_runner_contract_and_errors(onnx_file, tmp_path):
    from tests.conftest import tiny_model_config

    from unitalker.inference.onnx import OnnxExportError, OnnxUniTalker, export_onnx
    from unitalker.models.unitalker import UniTalker

    runner = OnnxUniTalker(onnx_file)
    assert runner.identity_index(None) == 3 and runner.identity_index("T:1") == 1
    with pytest.raises(KeyError, match="unknown identity"):
        runner.identity_index("nobody")
    with pytest.raises(ValueError, match="exported at"):
        runner(torch.zeros(1, 16000), fps={HEADS[0]: 60.0})
    with pytest.raises(FileExistsError):
        export_onnx(tiny_wavlm(), onnx_file)
    with pytest.raises(KeyError, match="unknown head"):
        export_onnx(UniTalker(tiny_model_config("builtin")).eval(), tmp_path / "b.onnx", ["x"])
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a model")
    with pytest.raises(OnnxExportError):
        OnnxUniTalker(bad)


@pytest.mark.parametrize(
    ("family", "decoder", "position"),
    [
        ("builtin", "tcn", 1),
        ("builtin", "transformer", 1),
        ("wavlm", "transformer", 0),
        ("builtin", "transformer", 2),
    ],
)
def test_onnx_exports_builtin_encoder_and_transformer_decoder(tmp_path, family, decoder, position):
    # The exported graph is the model's own forward: every encoder and decoder, any length.
    from tests.conftest import randomize, tiny_model_config

    from unitalker.inference.onnx import OnnxUniTalker, export_onnx
    from unitalker.models.unitalker import UniTalker

    torch.manual_seed(0)
    config = tiny_model_config(family, heads=HEADS, decoder=decoder, position=position)
    model = randomize(UniTalker(config)).eval()
    runner = OnnxUniTalker(export_onnx(model, tmp_path / "m.onnx"))
    for seconds in (0.03, 1.37, 3.3):  # shorter than one window, shorter and longer than traced
        audio = torch.from_numpy(speechy(seconds, seed=int(seconds * 100)))[None]
        with torch.no_grad():
            ref = model(audio, identity=2)
        got = runner(audio, identity=2)
        for h in HEADS:
            assert got[h].motion.shape == ref[h].motion.shape
            err = float((got[h].motion - ref[h].motion).abs().max())
            assert err <= ONNX_ABS and err <= ONNX_REL * float(ref[h].motion.abs().max()), (h, err)

"""``unitalker animate`` end to end on a tiny model saved to a temp folder."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
from tests.inference.infer_testdata import HEADS, save_tiny_checkpoint, speechy

from unitalker.cli import main
from unitalker.export import load_npz


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    return save_tiny_checkpoint(tmp_path_factory.mktemp("model") / "tiny")


def wav_file(path, seconds=1.0, sr=16000, channels=1):
    x = speechy(seconds, sr=sr, channels=channels)
    sf.write(str(path), x, sr)
    return path


def run(*args):
    return main(["animate", "-q", *map(str, args)])


def files(folder):
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())


def test_animate_writes_npz_per_head_with_fps(tmp_path, ckpt):
    f = wav_file(tmp_path / "hello.wav", 1.3)
    out = tmp_path / "out"
    assert run(f, "-m", ckpt, "-o", out) == 0
    res = load_npz(out / "hello.npz")
    assert sorted(res) == sorted(HEADS)
    assert res["BIWI_23370_vertices"].fps == 25.0 and res["FLAME_5023_vertices"].fps == 30.0
    assert res["FLAME_5023_vertices"].n_frames == round(1.3 * 30)
    assert res["3DETF_blendshape_weight"].data.shape == (39, 52)


def test_heads_formats_and_identity(tmp_path, ckpt):
    f = wav_file(tmp_path / "a.wav")
    out = tmp_path / "o"
    rc = run(
        f,
        "-m",
        ckpt,
        "-o",
        out,
        "--heads",
        "3DETF_blendshape_weight",
        "--format",
        "npz,csv,json",
        "--identity",
        "T:1",
    )
    assert rc == 0
    assert files(out) == [
        "a.npz",
        "a_3DETF_blendshape_weight.csv",
        "a_3DETF_blendshape_weight.json",
    ]
    assert load_npz(out / "a.npz")["3DETF_blendshape_weight"].identity == "T:1"
    # existing outputs are kept unless --overwrite
    assert run(f, "-m", ckpt, "-o", out, "--heads", "3DETF_blendshape_weight") == 1
    assert run(f, "-m", ckpt, "-o", out, "--heads", "3DETF_blendshape_weight", "--overwrite") == 0


def test_folder_input_recursive(tmp_path, ckpt):
    src = tmp_path / "in"
    (src / "sub").mkdir(parents=True)
    wav_file(src / "one.wav")
    wav_file(src / "sub" / "two.flac")
    (src / "notes.txt").write_text("not audio")
    out = tmp_path / "out"
    assert run(src, "-m", ckpt, "-o", out) == 0
    assert files(out) == ["one.npz", "sub/two.npz"]


def test_batch_with_bad_files_continues_and_lists_failures(tmp_path, ckpt, capsys):
    good1 = wav_file(tmp_path / "good1.wav")
    good2 = wav_file(tmp_path / "good2.wav")
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    fake = tmp_path / "fake.wav"
    fake.write_text("this is not audio at all, just text renamed to .wav\n" * 20)
    corrupt = tmp_path / "corrupt.mp3"
    corrupt.write_bytes(
        b"ID3\x03\x00\x00\x00\x00\x00\x00"
        + bytes(np.random.default_rng(0).integers(0, 255, 4000, dtype=np.uint8))
    )
    nan = tmp_path / "nan.npy"
    np.save(nan, np.full(16000, np.nan, dtype=np.float32))
    zero = tmp_path / "zero.npy"
    np.save(zero, np.zeros(0, dtype=np.float32))
    out = tmp_path / "out"
    rc = run(
        good1,
        empty,
        fake,
        corrupt,
        nan,
        zero,
        tmp_path / "missing.wav",
        good2,
        "-m",
        ckpt,
        "-o",
        out,
    )
    err = capsys.readouterr().err
    assert rc == 1
    assert files(out) == ["good1.npz", "good2.npz"]  # no partial outputs of the bad ones
    assert "6 failed" in err
    for name, why in [
        ("empty.wav", "empty"),
        ("fake.wav", "decode"),
        ("corrupt.mp3", ""),
        ("nan.npy", "NaN"),
        ("zero.npy", "zero-length"),
        ("missing.wav", "no such"),
    ]:
        line = next(line for line in err.splitlines() if name in line and line.startswith("  "))
        assert why in line, line


@pytest.mark.parametrize(
    "args, message",
    [
        (["--heads", "nope"], "unknown head"),
        (["--identity", "nobody"], "unknown identity"),
        (["--format", "xyz"], "unknown format"),
        (["--backend", "onnxruntime", "--precision", "bf16"], "bf16"),
    ],
)
def test_user_errors_exit_2_before_work(tmp_path, ckpt, capsys, args, message):
    f = wav_file(tmp_path / "a.wav")
    out = tmp_path / "out"
    assert run(f, "-m", ckpt, "-o", out, *args) == 2
    assert message in capsys.readouterr().err
    assert not out.exists()


def test_output_folder_that_is_a_file(tmp_path, ckpt, capsys):
    f = wav_file(tmp_path / "a.wav")
    out = tmp_path / "out"
    out.write_text("a file")
    assert run(f, "-m", ckpt, "-o", out) == 2
    assert "is a file" in capsys.readouterr().err


def test_original_pt_gives_convert_hint(tmp_path, capsys):
    import torch

    f = wav_file(tmp_path / "a.wav")
    pt = tmp_path / "UniTalker-B-D0-D7.pt"
    torch.save({"decoder.learnable_style_emb.weight": torch.zeros(3, 4)}, pt)  # release layout
    assert run(f, "-m", pt, "-o", tmp_path / "o") == 2
    assert "convert-checkpoint" in capsys.readouterr().err
    torch.save({"x": torch.zeros(1)}, pt)  # any other state dict is not called one
    assert run(f, "-m", pt, "-o", tmp_path / "o") == 2
    err = capsys.readouterr().err
    assert "convert-checkpoint" not in err and "not an original UniTalker" in err


@pytest.mark.parametrize("sr, channels", [(8000, 1), (96000, 6)])
def test_any_rate_and_channel_count(tmp_path, ckpt, sr, channels):
    f = wav_file(tmp_path / f"x{sr}.wav", 1.0, sr=sr, channels=channels)
    out = tmp_path / "out"
    assert run(f, "-m", ckpt, "-o", out) == 0
    assert load_npz(out / f"x{sr}.npz")["FLAME_5023_vertices"].n_frames == 30


def test_long_audio_windows_and_onnx_backend(tmp_path, ckpt):
    pytest.importorskip("onnxruntime")
    f = wav_file(tmp_path / "long.wav", 7.0)
    a, b = tmp_path / "a", tmp_path / "b"
    assert run(f, "-m", ckpt, "-o", a, "--window", "3", "--overlap", "1") == 0
    onnx = tmp_path / "m.onnx"
    assert main(["export", "onnx", str(ckpt), "-o", str(onnx)]) == 0
    assert (
        run(f, "-m", onnx, "--backend", "onnxruntime", "-o", b, "--window", "3", "--overlap", "1")
        == 0
    )
    ra, rb = load_npz(a / "long.npz"), load_npz(b / "long.npz")
    for h in HEADS:
        np.testing.assert_allclose(ra[h].data, rb[h].data, atol=1e-4)


def test_original_windows_and_lossless_glb(tmp_path, ckpt):
    import pygltflib

    f = wav_file(tmp_path / "a.wav", 1.2)
    a, b = tmp_path / "a", tmp_path / "b"
    assert (
        run(f, "-m", ckpt, "-o", a, "-f", "npz,glb", "--windows", "original", "--glb-lossless") == 0
    )
    assert run(f, "-m", ckpt, "-o", b, "-f", "npz,glb") == 0
    ra, rb = load_npz(a / "a.npz"), load_npz(b / "a.npz")
    for h in HEADS:  # one window: both layouts are one pass
        np.testing.assert_allclose(ra[h].data, rb[h].data, atol=1e-6)
    extras = {
        d.name: pygltflib.GLTF2().load(str(d / "a_FLAME_5023_vertices.glb")).meshes[0].extras
        for d in (a, b)
    }
    assert extras["a"]["mode"] == "lossless" and extras["b"]["mode"] == "bounded"
    assert extras["b"]["max_error_fraction_of_motion_range"] <= 0.01

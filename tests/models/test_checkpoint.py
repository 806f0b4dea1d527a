from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from tests.conftest import randomize, tiny_model_config

from unitalker import conventions
from unitalker.models.checkpoint import (
    CheckpointError,
    average_checkpoints,
    deepen_checkpoint,
    load_model,
    load_original,
    save_model,
)
from unitalker.models.unitalker import UniTalker

HEADS = ["FLAME_5023_vertices", "3DETF_blendshape_weight", "flame_params_from_dadhead"]


def test_our_format_round_trips_exactly(tmp_path, tiny_model):
    save_model(tiny_model, tmp_path / "ckpt", extra={"note": "x"})
    assert json.loads((tmp_path / "ckpt" / "unitalker.json").read_text())["format_version"] == 1
    loaded = load_model(tmp_path / "ckpt", device="cpu")
    a, b = tiny_model.state_dict(), loaded.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    audio = torch.randn(1, 20000)
    with torch.no_grad():
        x, y = tiny_model(audio), loaded(audio)
    assert all(torch.equal(x[h].motion, y[h].motion) for h in x)
    # the safetensors file alone is self-describing too
    lone = load_model(tmp_path / "ckpt" / "model.safetensors", device="cpu")
    assert lone.config == tiny_model.config
    assert loaded.meta["extra"] == {"note": "x"}


def test_average_of_checkpoints_is_the_mean_of_their_weights(tmp_path, tiny_model):
    """Two fine-tunes average tensor by tensor; the result loads like any checkpoint and
    names its sources; other architectures and a lone checkpoint are refused."""
    save_model(tiny_model, tmp_path / "a", extra={"step": 1})
    torch.manual_seed(1)
    other = randomize(UniTalker(tiny_model_config()), seed=1)
    save_model(other, tmp_path / "b", extra={"step": 2})
    out = average_checkpoints([tmp_path / "a", tmp_path / "b"], tmp_path / "avg")
    avg = load_model(out, device="cpu")
    a, b, m = tiny_model.state_dict(), other.state_dict(), avg.state_dict()
    assert m.keys() == a.keys()
    changed = 0
    for k, v in m.items():
        if v.is_floating_point():
            want = ((a[k].double() + b[k].double()) / 2).to(v.dtype)
            torch.testing.assert_close(v, want, rtol=0, atol=1e-7)
            changed += int(not torch.equal(a[k], b[k]))
        else:
            assert torch.equal(v, a[k])
    assert changed > 10
    assert avg.meta["extra"]["step"] == 2
    assert avg.meta["extra"]["averaged_from"] == [str(tmp_path / "a"), str(tmp_path / "b")]
    with pytest.raises(CheckpointError, match="two or more"):
        average_checkpoints([tmp_path / "a"], tmp_path / "x")
    heads = list(tiny_model.config.head_names)
    small = UniTalker(tiny_model_config(heads=heads[:1]))
    save_model(small, tmp_path / "c")
    with pytest.raises(CheckpointError, match="differs"):
        average_checkpoints([tmp_path / "a", tmp_path / "c"], tmp_path / "y")
    assert not (tmp_path / "y").exists()


def test_deepened_checkpoint_gives_the_same_output_and_trains(tmp_path):
    """Identity-initialised layers after the built-in encoder's own: the same outputs at
    first (full and windowed passes), every old tensor copied, the new layers' residual
    branches zero and their other weights drawn, a gradient for the new layers, the
    source named; other encoders, a bad count and an existing output are refused."""
    import dataclasses

    cfg = tiny_model_config()
    cfg = dataclasses.replace(cfg, encoder=dataclasses.replace(cfg.encoder, stream_window=(2, 1)))
    torch.manual_seed(0)
    tiny_model = randomize(UniTalker(cfg)).eval()
    save_model(tiny_model, tmp_path / "a", extra={"step": 7})
    out = deepen_checkpoint(tmp_path / "a", tmp_path / "deep", 2)
    deep = load_model(out, device="cpu").eval()
    n0 = tiny_model.config.encoder.n_layers
    assert deep.config.encoder.n_layers == n0 + 2
    assert deep.meta["extra"]["step"] == 7
    assert deep.meta["extra"]["deepened_from"] == {"source": str(tmp_path / "a"), "extra_layers": 2}
    old, new = tiny_model.state_dict(), deep.state_dict()
    assert all(torch.equal(new[k], v) for k, v in old.items())
    added = sorted(set(new) - set(old))
    assert added and all(k.startswith("audio_encoder.transformer.layers.") for k in added)
    zero = [k for k in added if ".out_proj." in k or ".linear2." in k]
    assert len(zero) == 4 * 2 and all(not new[k].any() for k in zero)
    assert new[f"audio_encoder.transformer.layers.{n0}.linear1.weight"].abs().sum() > 0
    audio = torch.randn(2, 24000)
    with torch.no_grad():
        x, y = tiny_model(audio), deep(audio)
        assert all(torch.allclose(x[h].motion, y[h].motion, atol=1e-6) for h in x)
        xw, yw = tiny_model(audio, windowed=True), deep(audio, windowed=True)
        assert all(torch.allclose(xw[h].motion, yw[h].motion, atol=1e-6) for h in xw)
        assert not all(torch.allclose(x[h].motion, xw[h].motion) for h in x)  # windowed differs
    deep.train()
    head = deep.heads[0]
    deep(audio, [head])[head].motion.square().mean().backward()
    w = dict(deep.named_parameters())[f"audio_encoder.transformer.layers.{n0}.linear2.weight"]
    assert w.grad is not None and w.grad.abs().sum() > 0
    with pytest.raises(CheckpointError, match="already"):
        deepen_checkpoint(tmp_path / "a", tmp_path / "deep", 2)
    with pytest.raises(CheckpointError, match=">= 1"):
        deepen_checkpoint(tmp_path / "a", tmp_path / "none", 0)
    torch.manual_seed(1)
    save_model(UniTalker(tiny_model_config("wav2vec2")), tmp_path / "hf")
    with pytest.raises(CheckpointError, match="only the built-in encoder"):
        deepen_checkpoint(tmp_path / "hf", tmp_path / "hf_deep", 1)
    assert not (tmp_path / "none").exists() and not (tmp_path / "hf_deep").exists()


@pytest.mark.parametrize("family", ["wavlm", "wav2vec2"])
def test_hf_model_round_trips_without_hub(tmp_path, family):
    torch.manual_seed(1)
    model = randomize(UniTalker(tiny_model_config(family))).eval()
    save_model(model, tmp_path / "m")
    loaded = load_model(tmp_path / "m", device="cpu")
    audio = torch.randn(1, 16000)
    with torch.no_grad():
        assert torch.equal(
            model(audio)["FLAME_5023_vertices"].motion, loaded(audio)["FLAME_5023_vertices"].motion
        )


def test_corrupt_and_truncated_checkpoints_fail_clearly(tmp_path, tiny_model):
    save_model(tiny_model, tmp_path / "ok")
    data = (tmp_path / "ok" / "model.safetensors").read_bytes()
    trunc = tmp_path / "trunc"
    trunc.mkdir()
    (trunc / "model.safetensors").write_bytes(data[: len(data) // 2])
    (trunc / "unitalker.json").write_text((tmp_path / "ok" / "unitalker.json").read_text())
    with pytest.raises(CheckpointError, match="trunc"):
        load_model(trunc)
    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(b"\x00" * 64 + b"not a checkpoint")
    with pytest.raises(CheckpointError, match="garbage.safetensors"):
        load_model(garbage)
    empty = tmp_path / "empty.safetensors"
    empty.write_bytes(b"")
    with pytest.raises(CheckpointError, match="empty"):
        load_model(empty)
    with pytest.raises(CheckpointError, match="neither a bundled model"):
        load_model(tmp_path / "missing")
    bad_cfg = tmp_path / "badcfg"
    bad_cfg.mkdir()
    (bad_cfg / "model.safetensors").write_bytes(data)
    meta = json.loads((tmp_path / "ok" / "unitalker.json").read_text())
    meta["model"]["decoder"]["hiddenn"] = 3
    (bad_cfg / "unitalker.json").write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match="hiddenn"):
        load_model(bad_cfg)


def test_config_disagreeing_with_weights_names_file_and_tensor(tmp_path, tiny_model):
    save_model(tiny_model, tmp_path / "ok")
    cfg = tmp_path / "ok" / "unitalker.json"
    meta = json.loads(cfg.read_text())
    meta["model"]["decoder"]["hidden"] = 20  # weights were saved with 24
    cfg.write_text(json.dumps(meta))
    with pytest.raises(CheckpointError) as e:
        load_model(tmp_path / "ok", device="cpu")
    msg = str(e.value)
    assert "model.safetensors" in msg and "unitalker.json" in msg and "shape" in msg
    assert "decoder." in msg and "[24" in msg  # the first mismatching tensor, with its shape


def test_unavailable_device_is_a_clear_error(tmp_path, tiny_model, monkeypatch, capsys):
    from unitalker.cli import main
    from unitalker.device import DeviceError, resolve_device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(DeviceError, match="CUDA is not available"):
        resolve_device("cuda")
    with pytest.raises(DeviceError, match="not a torch device"):
        resolve_device("gpu")
    assert resolve_device(None).type == "cpu" and resolve_device("auto").type == "cpu"
    save_model(tiny_model, tmp_path / "m")
    wav = tmp_path / "a.npy"
    np.save(wav, np.zeros(8000, np.float32))
    for argv in (
        [
            "animate",
            str(wav),
            "-m",
            str(tmp_path / "m"),
            "-o",
            str(tmp_path / "o"),
            "--device",
            "cuda",
        ],
        ["stream", str(wav), "-m", str(tmp_path / "m"), "--device", "cuda:3"],
    ):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert "CUDA is not available" in err and "--device cpu" in err and "Traceback" not in err
    assert not (tmp_path / "o").exists()


def _write_release(root, model, rng):
    """A fake data release: pca.npz + id_template.npy for the heads' datasets."""
    done = set()
    for ds in conventions.datasets():
        if ds.key not in conventions.ORIGINAL_DATASETS:
            continue
        conv = conventions.get(ds.convention)
        folder = root / ds.folder
        folder.mkdir(parents=True, exist_ok=True)
        tpl = rng.normal(size=(ds.n_subjects, conv.dim)).astype(np.float32)
        np.save(folder / "id_template.npy", tpl)
        if ds.convention in model.pca_layer_dict:
            layer = model.pca_layer_dict[ds.convention]
            np.savez(
                folder / "pca.npz",
                components_to_data=layer.components_to_data.numpy(),
                original_data_mean=layer.original_data_mean.numpy(),
            )
        if ds.convention in model.heads and ds.convention not in done:  # first dataset's template
            done.add(ds.convention)
            model.set_template(ds.convention, tpl[ds.demo_template_id] * conv.scale)


@pytest.mark.parametrize(
    "naming, family, head_layers",
    [("old", "wavlm", 1), ("new", "wavlm", 1), ("old", "wav2vec2", 1), ("new", "wav2vec2", 2)],
)
def test_original_layout_loads_and_reproduces(tmp_path, naming, family, head_layers, rng):
    """A state dict in the release's key layout (either weight-norm naming, linear or the
    original's deeper heads) loads and reproduces the module it came from."""
    import dataclasses

    torch.manual_seed(2)
    n_ids = 935
    cfg = tiny_model_config(family, heads=HEADS, n_ids=n_ids)
    cfg = dataclasses.replace(
        cfg, heads=tuple(dataclasses.replace(h, layers=head_layers) for h in cfg.heads)
    )
    src = randomize(UniTalker(cfg)).eval()
    _write_release(tmp_path / "release", src, rng)
    state = {}
    for k, v in src.state_dict().items():
        if k.startswith(("pca_layer_dict", "templates")):
            continue  # the release strips PCA buffers; templates come from id_template.npy
        if k.startswith("audio_encoder.model."):
            k = "audio_encoder." + k[len("audio_encoder.model.") :]
        if naming == "old":
            k = k.replace(".parametrizations.weight.original0", ".weight_g").replace(
                ".parametrizations.weight.original1", ".weight_v"
            )
        state[k] = v.clone()
    assert any(k.endswith("weight_g") for k in state) == (naming == "old")
    torch.save(state, tmp_path / "UniTalker-T.pt")
    # the encoder's architecture from a local folder, as from_pretrained would read it
    src.audio_encoder.model.config.save_pretrained(tmp_path / "enc")
    (tmp_path / "enc" / "preprocessor_config.json").write_text(
        json.dumps(
            {
                "feature_extractor_type": "Wav2Vec2FeatureExtractor",
                "do_normalize": family != "wavlm",
                "feature_size": 1,
                "padding_value": 0.0,
                "sampling_rate": 16000,
                "return_attention_mask": False,
            }
        )
    )
    model = load_original(tmp_path / "UniTalker-T.pt", tmp_path / "release", str(tmp_path / "enc"))
    assert model.config.identities[-1] == "pivot" and model.config.n_identities == n_ids
    audio = torch.randn(1, 24000)
    with torch.no_grad():
        ref, out = src(audio), model(audio)
    for h in HEADS:
        assert (out[h].motion - ref[h].motion).abs().max() < 1e-5, h
    assert out["FLAME_5023_vertices"].motion.shape[1] == 45


def test_original_needs_release_for_pca_heads(tmp_path):
    src = UniTalker(tiny_model_config("wavlm", heads=HEADS, n_ids=935))
    state = {
        ("audio_encoder." + k[20:] if k.startswith("audio_encoder.model.") else k): v
        for k, v in src.state_dict().items()
        if not k.startswith(("pca_layer_dict", "templates"))
    }
    torch.save(state, tmp_path / "c.pt")
    with pytest.raises(CheckpointError, match="PCA head"):
        load_original(tmp_path / "c.pt", None, "microsoft/wavlm-base-plus")
    (tmp_path / "bad.pt").write_bytes(b"PK\x03\x04 truncated zip")
    with pytest.raises(CheckpointError, match="bad.pt"):
        load_original(tmp_path / "bad.pt", None)


def test_import_is_light():
    code = "import sys, unitalker, unitalker.conventions; print(sorted(m for m in ('torch','transformers','moderngl','fastapi','onnxruntime') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


class _OriginalStyleTransformerDecoder(torch.nn.Module):
    """The original's transformer decoder as its code builds it (written from its
    description: a stored periodic table ``PPE.pe`` for 3000 frames, FaceFormer's biased
    causal mask as a float table, the alignment mask as booleans), in its key names."""

    def __init__(self, in_dim: int, n_ids: int, d: int, period: int):
        super().__init__()
        self.period = period
        self.learnable_style_emb = torch.nn.Embedding(n_ids, d)
        self.audio_feature_map = torch.nn.Linear(in_dim, d)
        self.PPE = torch.nn.Module()
        pe = torch.zeros(period, d)
        pos = torch.arange(period, dtype=torch.float32)[:, None]
        div = torch.exp(torch.arange(0, d, 2).float() * (-np.log(10000.0) / d))
        pe[:, 0::2], pe[:, 1::2] = torch.sin(pos * div), torch.cos(pos * div)
        self.PPE.register_buffer("pe", pe[None].repeat(1, 3000 // period + 1, 1))
        layer = torch.nn.TransformerDecoderLayer(d, 4, 2 * d, batch_first=True)
        self.transformer_decoder = torch.nn.TransformerDecoder(layer, 1)

    def forward(self, feats: torch.Tensor, ident: torch.Tensor) -> torch.Tensor:
        t = feats.shape[1]
        query = self.learnable_style_emb(ident)[:, None].repeat(1, t, 1) + self.PPE.pe[:, :t]
        slopes = torch.tensor([2 ** (-2 * (i + 1)) for i in range(4)])  # 4 heads: 1/4, 1/16..
        steps = torch.arange(t)
        past = ((steps[:, None] - steps[None, :]) // self.period).float()
        mask = torch.where(
            steps[None, :] <= steps[:, None],
            -slopes[:, None, None] * past,
            torch.tensor(float("-inf")),
        )
        memory_mask = ~torch.eye(t, dtype=torch.bool)
        return self.transformer_decoder(
            query, self.audio_feature_map(feats), tgt_mask=mask, memory_mask=memory_mask
        )


def test_original_transformer_layout_converts_and_matches(tmp_path, rng):
    """A state dict in the original's transformer-decoder naming converts (convert-checkpoint
    path), and the converted decoder gives the original-style decoder's outputs."""
    import dataclasses

    from unitalker.models.checkpoint import convert_original

    torch.manual_seed(3)
    n_ids, period = 935, 25
    cfg = tiny_model_config("wavlm", heads=HEADS, n_ids=n_ids, decoder="transformer")
    cfg = dataclasses.replace(cfg, decoder=dataclasses.replace(cfg.decoder, period=period))
    src = randomize(UniTalker(cfg)).eval()
    _write_release(tmp_path / "release", src, rng)
    orig = _OriginalStyleTransformerDecoder(src.audio_encoder.hidden_size, n_ids, 24, period).eval()
    state = {
        ("audio_encoder." + k[20:] if k.startswith("audio_encoder.model.") else k): v
        for k, v in src.state_dict().items()
        if not k.startswith(("pca_layer_dict", "templates", "decoder."))
    }
    state |= {f"decoder.{k}": v for k, v in orig.state_dict().items()}
    assert (
        "decoder.PPE.pe" in state and "decoder.transformer_decoder.layers.0.linear1.weight" in state
    )
    torch.save(state, tmp_path / "UniTalker-T.pt")
    src.audio_encoder.model.config.save_pretrained(tmp_path / "enc")
    out = convert_original(
        tmp_path / "UniTalker-T.pt",
        tmp_path / "conv",
        tmp_path / "release",
        str(tmp_path / "enc"),
        encoder_family="wavlm",
    )
    model = load_model(out, "cpu")
    assert model.config.decoder.kind == "transformer" and model.config.decoder.period == period
    feats = torch.randn(1, 70, src.audio_encoder.hidden_size)  # 70 frames: past the period twice
    for ident in (torch.tensor([5]), torch.tensor([n_ids - 1])):  # the original runs batch 1
        with torch.no_grad():
            assert torch.allclose(model.decoder(feats, ident), orig(feats, ident), atol=1e-6)
    # the whole model equals ours with the original decoder's weights
    src.decoder.load_state_dict({k: v for k, v in orig.state_dict().items() if k != "PPE.pe"})
    audio = torch.randn(1, 24000)
    with torch.no_grad():
        ref, got = src(audio), model(audio)
    for h in HEADS:
        assert (got[h].motion - ref[h].motion).abs().max() < 1e-5, h


def test_original_unknown_decoder_layout_is_named(tmp_path):
    state = {
        "decoder.learnable_style_emb.weight": torch.zeros(3, 4),
        "decoder.audio_feature_map.weight": torch.zeros(4, 8),
        "out_head_dict.FLAME_5023_vertices.weight": torch.zeros(15069, 4),
    }
    torch.save(state, tmp_path / "x.pt")
    with pytest.raises(CheckpointError, match="decoder layout not recognised"):
        load_original(tmp_path / "x.pt", None)

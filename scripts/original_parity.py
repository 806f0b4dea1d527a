#!/usr/bin/env python
"""Check unitalker's loader of the released checkpoints against the original UniTalker code.

The original code is not shipped here; point this at a clone of the authors' repository
(github.com/X-niper/UniTalker). For each encoder family and head depth it builds the
original model from a tiny random encoder folder and a random data release, randomises
the heads and identity embedding, saves the state dict in the release layout (optionally
with the old weight-norm names), loads it with :func:`unitalker.models.checkpoint.load_original`
and compares every head of D0-D7 with the original's forward on the same audio, with the
original demo's choices (pivot identity, demo template times scale, 25 / 30 fps).

    python scripts/original_parity.py --original ~/src/UniTalker

Needs only CPU and no network (both encoders are built from small configs). Exit status 1
when any difference exceeds --tol (1e-5).
"""

from __future__ import annotations

import argparse
import functools
import sys
import tempfile
import types
from pathlib import Path

import numpy as np
import torch

K_PCA = 40  # components of the random PCA bases


def _original_keys(dataset_config: dict) -> dict[str, str]:
    """Our dataset key (D0-D7) -> the original config's key, matched on convention and
    subject count (the released code's numbering differs between versions)."""
    from unitalker import conventions as C

    out = {}
    for key in C.ORIGINAL_DATASETS:
        ds = C.get_dataset(key)
        hits = [
            k
            for k, v in dataset_config.items()
            if v["annot_type"] == ds.convention and v["subjects"] == ds.n_subjects
        ]
        if len(hits) != 1:
            raise SystemExit(
                f"cannot match {key} ({ds.convention}, {ds.n_subjects} subjects) "
                f"in the original dataset_config: {hits}"
            )
        out[key] = hits[0]
    return out


def _release(root: Path, cfg: dict, keys: dict[str, str], rng: np.random.Generator) -> Path:
    rel = root / "release"
    for okey in keys.values():
        c = cfg[okey]
        f = rel / c["dirname"]
        f.mkdir(parents=True, exist_ok=True)
        tpl = rng.normal(size=(c["subjects"], c["annot_dim"])).astype(np.float32)
        np.save(f / "id_template.npy", tpl)
        if c["pca"]:
            d = c["annot_dim"]
            np.savez(
                f / "pca.npz",
                components_to_data=(rng.normal(size=(K_PCA, d)) * 0.01).astype(np.float32),
                original_data_mean=(rng.normal(size=d) * 0.01).astype(np.float32),
                data_components_mean=np.zeros(K_PCA, np.float32),
                data_components_std=np.ones(K_PCA, np.float32),
            )
    return rel


def _encoder(root: Path, family: str) -> Path:
    import transformers as tf

    path = root / f"tiny-{family}"  # the original picks its class by "wavlm"/"wav2vec2" in the name
    common = {
        "hidden_size": 64,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "intermediate_size": 128,
        "conv_dim": (32,) * 7,
        "num_conv_pos_embeddings": 16,
        "num_conv_pos_embedding_groups": 4,
    }
    if family == "wavlm":
        model = tf.WavLMModel(tf.WavLMConfig(**common, num_buckets=32, max_bucket_distance=80))
    else:
        model = tf.Wav2Vec2Model(
            tf.Wav2Vec2Config(**common, feat_extract_norm="layer", do_stable_layer_norm=True)
        )
    model.save_pretrained(path)
    tf.Wav2Vec2FeatureExtractor(
        feature_size=1, sampling_rate=16000, padding_value=0.0, do_normalize=family != "wavlm"
    ).save_pretrained(path)
    return path


def run(original: Path, family: str, head_layers: int, naming: str, seed: int = 0) -> float:
    from transformers import Wav2Vec2FeatureExtractor

    from unitalker import conventions as C
    from unitalker.models.checkpoint import load_original

    sys.path.insert(0, str(original))
    from dataset.dataset_config import dataset_config  # the original's table

    from models import unitalker as orig_mod  # the original's model

    # transformers >= 4.4x defaults to SDPA attention, which refuses the original's
    # `config.output_attentions = True`; 4.39 (the authors') used eager attention.
    for cls in ("Wav2Vec2Model", "WavLMModel"):
        klass = getattr(orig_mod, cls, None)
        if klass is not None and not hasattr(klass, "_parity_patched"):
            klass.from_pretrained = functools.partial(
                klass.from_pretrained, attn_implementation="eager"
            )
            klass._parity_patched = True

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    keys = _original_keys(dataset_config)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        rel, enc = _release(root, dataset_config, keys, rng), _encoder(root, family)
        n_ids = sum(dataset_config[k]["subjects"] for k in keys.values()) + 1
        args = types.SimpleNamespace(
            dataset=list(keys.values()),
            data_root=str(rel),
            audio_encoder_repo=str(enc),
            decoder_type="conv",
            interpolate_pos=1,
            decoder_dimension=256,
            pca_dim=512,
            use_pca=True,
            headlayer=head_layers,
            identity_num=n_ids,
            audio_encoder_feature_dim=64,
            period=30,
            freeze_wav2vec=False,
        )
        orig = orig_mod.UniTalker(args)
        with torch.no_grad():  # zero-initialised heads would hide the decoder
            for name, p in orig.named_parameters():
                if name.startswith("out_head_dict") or "learnable_style_emb" in name:
                    p.copy_(torch.randn_like(p) * 0.05)
        orig.eval()
        state = {}
        for k, v in orig.state_dict().items():
            if k.startswith("pca_layer_dict"):
                continue  # the release strips PCA buffers
            if naming == "old":
                k = k.replace(".parametrizations.weight.original0", ".weight_g")
                k = k.replace(".parametrizations.weight.original1", ".weight_v")
            state[k] = v
        torch.save(state, root / "ckpt.pt")
        ours = load_original(root / "ckpt.pt", rel, str(enc)).eval()
        proc = Wav2Vec2FeatureExtractor.from_pretrained(enc)
        worst = 0.0
        for seconds in (3.3, 7.77):
            audio = (rng.normal(size=int(seconds * 16000)) * 0.3 + 0.1).astype(np.float32)
            norm = np.squeeze(proc(audio, sampling_rate=16000).input_values).astype(np.float32)
            with torch.no_grad():
                mine = ours(torch.from_numpy(audio)[None])  # defaults: all heads, pivot
                seen: set[str] = set()
                for key, okey in keys.items():
                    c = dataset_config[okey]
                    conv = c["annot_type"]
                    tpl = np.load(rel / c["dirname"] / "id_template.npy")
                    tpl = torch.from_numpy(tpl[C.get_dataset(key).demo_template_id][None])
                    tpl = tpl * c["scale"]
                    fps = 25 if conv == "BIWI_23370_vertices" else 30
                    ref = orig(
                        torch.from_numpy(norm)[None],
                        tpl,
                        None,
                        torch.tensor([n_ids - 1]),
                        conv,
                        fps,
                    )[0]
                    if conv in seen:  # a second dataset of a shared head: its own template
                        got = ours(
                            torch.from_numpy(audio)[None], heads=[conv], templates={conv: tpl[0]}
                        )[conv].motion
                    else:
                        got = mine[conv].motion
                    seen.add(conv)
                    if got.shape != ref.shape:
                        raise SystemExit(
                            f"{key} {conv}: shape {tuple(got.shape)} vs original {tuple(ref.shape)}"
                        )
                    worst = max(worst, (got - ref).abs().max().item())
    return worst


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--original", required=True, type=Path, help="a clone of the original UniTalker repository"
    )
    p.add_argument("--tol", type=float, default=1e-5)
    args = p.parse_args()
    if not (args.original / "models" / "unitalker.py").exists():
        raise SystemExit(f"{args.original}: not a UniTalker clone (no models/unitalker.py)")
    worst = 0.0
    print(
        f"{'encoder':<9} {'head layers':>11} {'weight-norm names':>18} {'max |ours - original|':>22}"
    )
    for family, layers, naming in (
        ("wavlm", 1, "old"),
        ("wavlm", 2, "new"),
        ("wav2vec2", 1, "old"),
        ("wav2vec2", 2, "new"),
    ):
        err = run(args.original, family, layers, naming)
        worst = max(worst, err)
        print(f"{family:<9} {layers:>11} {naming:>18} {err:>22.2e}")
    ok = worst <= args.tol
    print(
        f"{'OK' if ok else 'FAIL'}: max difference {worst:.2e} (tolerance {args.tol:.0e}) "
        "over every head of D0-D7, two clips"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

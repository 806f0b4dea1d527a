"""Does a speech representation pretrained on human speech hear the held-out engine better
than the model's own encoder? A frame-level viseme probe on A2F-Synth's voices datasets.

Features per frame of the clip's convention (25 or 30 fps), for each clip:

- ``ours``: the model's encoder output (``contextualize``), adapted to the head's frames,
  what the decoder reads;
- ``emb``: Google's ``speech_embedding`` (the keyword-spotting embedding, Apache-2.0) as
  openwakeword 0.4.0's wheel ships it (``melspectrogram.onnx`` + ``embedding_model.onnx``:
  32 log-mel bands at 100 fps, a 96-d embedding of each 76-frame window), one window
  centred on every second mel frame and interpolated to the head's frames;
- ``both``: the two side by side.

A classifier per feature set (standardised, multinomial logistic regression, or a
one-hidden-layer MLP with ``--mlp``) learns each frame's viseme class from the clip's
timeline (``unitalker.data.visemes``) on training clips of every engine, and is scored per
split and engine: accuracy over the labelled frames and without the silent ones.

Get the embedding's two graphs (no other part of openwakeword is used):
``pip download --no-deps openwakeword==0.4.0`` and unzip the wheel; pass its
``openwakeword/resources/models`` folder.

Usage: python scripts/speech_embedding_probe.py ONNX_DIR [--model default]
       [--release data/a2f_synth_release] [--train-per-dataset 60] [--mlp]
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np


class SpeechEmbedding:
    """``speech_embedding`` features of 16 kHz audio at any frame rate."""

    def __init__(self, onnx_dir: Path, hop: int = 2) -> None:
        import onnxruntime as ort

        so = ort.SessionOptions()
        so.intra_op_num_threads = 2
        cpu = ["CPUExecutionProvider"]
        self.mel = ort.InferenceSession(str(onnx_dir / "melspectrogram.onnx"), so, providers=cpu)
        self.emb = ort.InferenceSession(str(onnx_dir / "embedding_model.onnx"), so, providers=cpu)
        self.hop = hop

    def __call__(self, audio: np.ndarray, n_frames: int, fps: float) -> np.ndarray:
        """``[S]`` float audio in [-1, 1] -> ``[n_frames, 96]`` at ``fps``."""
        pad = np.zeros(38 * 160, np.float32)  # half a window: the first window centres on t=0
        x = np.concatenate([pad, np.clip(audio, -1, 1).astype(np.float32) * 32767, pad])
        # openwakeword's transform, which brings the graph's log-mel to the TF model's scale
        spec = self.mel.run(None, {"input": x[None]})[0].squeeze() / 10 + 2  # [M, 32]
        starts = np.arange(0, len(spec) - 76 + 1, self.hop)
        wins = np.stack([spec[i : i + 76] for i in starts])[..., None].astype(np.float32)
        out = np.concatenate(
            [
                self.emb.run(None, {"input_1": wins[j : j + 512]})[0]
                for j in range(0, len(wins), 512)
            ]
        ).reshape(len(wins), 96)
        t_src = starts / 100.0 + 0.005  # window i is centred on the padded audio's frame i+38
        t_dst = np.arange(n_frames) / fps
        return np.stack([np.interp(t_dst, t_src, out[:, k]) for k in range(out.shape[1])], 1)


def encoder_features(model, audio: np.ndarray, n_frames: int) -> np.ndarray:
    """The model's encoder output at ``n_frames`` frames, ``[n_frames, hidden]``: what the
    decoder reads (adaptor position 0 or 1; at 2, the encoder output adapted likewise)."""
    import torch

    from unitalker.models.adaptor import adapt
    from unitalker.models.unitalker import _mask

    enc = model.audio_encoder
    a = torch.from_numpy(np.asarray(audio, np.float32))[None]
    lens = [a.shape[1]]
    with torch.no_grad():
        feats = enc.extract(enc.normalize(a, lens), lens)
        in_lens = [min(n, feats.shape[1]) for n in enc.output_lengths(lens)]
        if model.config.adaptor_position == 0:  # frame rate adapted before the transformer
            f = adapt(feats, in_lens, [n_frames])
            return enc.contextualize(f, _mask([n_frames], f))[0].numpy()
        ctx = enc.contextualize(feats, _mask(in_lens, feats))
        return adapt(ctx, in_lens, [n_frames])[0].numpy()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("onnx_dir", type=Path, help="openwakeword 0.4.0's resources/models folder")
    ap.add_argument("--model", default="default", help="checkpoint folder or bundled name")
    ap.add_argument("--release", default="data/a2f_synth_release")
    ap.add_argument("--datasets", nargs="+", default=["V0", "V1", "V2", "V3"])
    ap.add_argument("--train-per-dataset", type=int, default=60, help="spread over the split")
    ap.add_argument(
        "--mlp", action="store_true", help="an MLP (256 hidden) instead of a linear probe"
    )
    args = ap.parse_args()
    for name in ("melspectrogram.onnx", "embedding_model.onnx"):
        if not (args.onnx_dir / name).is_file():
            raise SystemExit(f"{args.onnx_dir}: no {name} (unzip openwakeword 0.4.0's wheel)")

    from sklearn.linear_model import LogisticRegression
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from unitalker import conventions
    from unitalker.data import ClipDataset, load_manifest
    from unitalker.data.visemes import IGNORE, timeline_path, viseme_classes
    from unitalker.models.checkpoint import load_model

    model = load_model(args.model, "cpu").eval()
    embed = SpeechEmbedding(args.onnx_dir)
    manifest = load_manifest(args.release)
    sil = viseme_classes().index("sil")
    # (split, engine) -> [(ours [T, H], emb [T, 96], visemes [T])]
    data: dict[tuple[str, str], list[tuple[np.ndarray, np.ndarray, np.ndarray]]] = defaultdict(list)
    for split in ("train", "test", "test_unseen_voice", "test_unseen_engine"):
        for key in args.datasets:
            try:
                ds = ClipDataset(
                    manifest,
                    split,
                    max_seconds=None,
                    min_seconds=0.0,
                    datasets=(key,),
                    visemes=True,
                )
            except ValueError:
                continue
            picks = range(len(ds))
            if split == "train":
                n_train = min(len(ds), args.train_per_dataset)
                picks = np.linspace(0, len(ds) - 1, n_train).astype(int)
            for i in picks:
                item = ds[int(i)]
                tl = timeline_path(ds.entries[int(i)].audio_path, key)
                engine = json.loads(tl.read_text()).get("engine", "?") if tl else "?"
                n = len(item["motion"])
                ours = encoder_features(model, item["audio"], n)
                data[(split, engine)].append(
                    (
                        ours,
                        embed(item["audio"], n, conventions.get(item["convention"]).fps),
                        item["visemes"],
                    )
                )
            print(f"{split} {key}: {len(picks)} clips", file=sys.stderr, flush=True)

    def stack(parts, which):
        xs, ys = [], []
        for ours, emb, lab in parts:
            f = {"ours": ours, "emb": emb, "both": np.concatenate([ours, emb], 1)}[which]
            ok = lab != IGNORE
            xs.append(f[ok])
            ys.append(lab[ok])
        return np.concatenate(xs), np.concatenate(ys)

    train = [p for (split, _), parts in data.items() if split == "train" for p in parts]
    print("| features | split | engine | frames | accuracy | without silence |")
    print("| --- | --- | --- | ---: | ---: | ---: |")
    for which in ("ours", "emb", "both"):
        x, y = stack(train, which)
        clf = (
            MLPClassifier((256,), max_iter=200, early_stopping=True, random_state=0)
            if args.mlp
            else LogisticRegression(max_iter=500)
        )
        probe = make_pipeline(StandardScaler(), clf).fit(x, y)
        for (split, engine), parts in sorted(data.items()):
            xt, yt = stack(parts, which)
            pred = probe.predict(xt)
            speech = yt != sil
            print(
                f"| {which} | {split} | {engine} | {len(yt)} | {np.mean(pred == yt):.1%} | "
                f"{np.mean(pred[speech] == yt[speech]):.1%} |",
                flush=True,
            )


if __name__ == "__main__":
    main()

"""Does a speech representation pretrained on human speech hear the held-out engine better
than the model's own encoder? A frame-level viseme probe on A2F-Synth's voices datasets.

Features per frame of the clip's convention (25 or 30 fps), for each clip:

- ``ours``: the model's encoder output (``contextualize``), adapted to the head's frames,
  what the decoder reads;
- ``emb``: Google's ``speech_embedding`` (the keyword-spotting embedding, Apache-2.0) as
  openwakeword 0.4.0's wheel ships it (``melspectrogram.onnx`` + ``embedding_model.onnx``:
  32 log-mel bands at 100 fps, a 96-d embedding of each 76-frame window), one window
  centred on every second mel frame and interpolated to the head's frames;
- ``both``: the two side by side;
- ``phones`` (``--phone-loop``): PocketSphinx's phone loop (its en-us acoustic model, trained
  on human speech, decoding with the phone language model and no words): the decoded phone
  under each frame as a one-hot vector, two frames either side stacked; also scored
  as it is, each decoded phone mapped to its viseme (no classifier, row ``phones raw``);
- ``ours+phones``: the encoder and the phone loop side by side.

A classifier per feature set (standardised, multinomial logistic regression, or a
one-hidden-layer MLP with ``--mlp``) learns each frame's viseme class from the clip's
timeline (``unitalker.data.visemes``) on training clips of every engine, and is scored per
split and engine: accuracy over the labelled frames and without the silent ones.

Get the embedding's two graphs (no other part of openwakeword is used):
``pip download --no-deps openwakeword==0.4.0`` and unzip the wheel; pass its
``openwakeword/resources/models`` folder.

Usage: python scripts/speech_embedding_probe.py ONNX_DIR [--model default]
       [--release data/a2f_synth_release] [--train-per-dataset 60] [--mlp] [--phone-loop]
       python scripts/speech_embedding_probe.py --phone-loop   (no embedding)
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

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


class PhoneLoop:
    """PocketSphinx's phone-loop decoding of 16 kHz audio, per frame at any rate."""

    PAD_S = 0.3  # silence either side (the decoder places the first phone at frame 0 otherwise)

    def __init__(self) -> None:
        import pocketsphinx

        from unitalker.synth.align import ARPABET_IPA

        lm = Path(pocketsphinx.__file__).parent / "model" / "en-us" / "en-us-phone.lm.bin"
        self.decoder = pocketsphinx.Decoder(
            samprate=16000, loglevel="FATAL", lm=None, allphone=str(lm)
        )
        self.ipa = ARPABET_IPA
        self.names = sorted(ARPABET_IPA)  # SIL among them: silence, fillers and noise

    def timeline(self, audio: np.ndarray) -> list[tuple[str, float, float]]:
        """``[(ipa, start_s, end_s), ...]`` as decoded (silence and fillers ``"_"``)."""
        pad = np.zeros(int(self.PAD_S * 16000), np.float32)
        y = np.concatenate([pad, np.clip(audio, -1, 1).astype(np.float32), pad])
        d = self.decoder
        d.start_utt()
        d.process_raw((y * 32767).astype(np.int16).tobytes(), full_utt=True)
        d.end_utt()
        out = []
        for seg in d.seg():
            ph = seg.word.split("(")[0].upper()
            start, end = (
                seg.start_frame * 0.01 - self.PAD_S,
                (seg.end_frame + 1) * 0.01 - self.PAD_S,
            )
            out.append((self.ipa.get(ph, "_"), start, end))
        return out

    def __call__(
        self, audio: np.ndarray, n_frames: int, fps: float
    ) -> tuple[np.ndarray, np.ndarray]:
        """``([n_frames, 5 * 40] one-hot phones, +-2 frames; [n_frames] viseme of each)``."""
        from unitalker.data.visemes import frame_visemes

        tl = self.timeline(audio)
        column = {self.ipa[n]: i for i, n in enumerate(self.names)}
        t = np.arange(n_frames) / fps
        hot = np.zeros((n_frames, len(self.names)), np.float32)
        for ph, start, end in tl:
            hot[(t >= start) & (t < end), column[ph]] = 1
        ctx = np.concatenate([np.roll(hot, k, 0) for k in (-2, -1, 0, 1, 2)], 1)
        return ctx, frame_visemes(tl, n_frames, fps)


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
    ap.add_argument(
        "onnx_dir", type=Path, nargs="?", help="openwakeword 0.4.0's resources/models folder"
    )
    ap.add_argument("--model", default="default", help="checkpoint folder or bundled name")
    ap.add_argument("--release", default="data/a2f_synth_release")
    ap.add_argument("--datasets", nargs="+", default=["V0", "V1", "V2", "V3"])
    ap.add_argument("--train-per-dataset", type=int, default=60, help="spread over the split")
    ap.add_argument(
        "--mlp", action="store_true", help="an MLP (256 hidden) instead of a linear probe"
    )
    ap.add_argument(
        "--phone-loop", action="store_true", help="also PocketSphinx's phone loop ('phones')"
    )
    args = ap.parse_args()
    if args.onnx_dir is None and not args.phone_loop:
        ap.error("give ONNX_DIR (the embedding), --phone-loop, or both")
    for name in ("melspectrogram.onnx", "embedding_model.onnx") if args.onnx_dir else ():
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
    embed = SpeechEmbedding(args.onnx_dir) if args.onnx_dir else None
    loop = PhoneLoop() if args.phone_loop else None
    manifest = load_manifest(args.release)
    sil = viseme_classes().index("sil")
    # (split, engine) -> [({feature set: [T, F]}, visemes [T], phone-loop visemes [T] or None)]
    data: dict[tuple[str, str], list[tuple[dict[str, np.ndarray], np.ndarray, Any]]]
    data = defaultdict(list)
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
                n, fps = len(item["motion"]), conventions.get(item["convention"]).fps
                feats = {"ours": encoder_features(model, item["audio"], n)}
                raw = None
                if embed is not None:
                    feats["emb"] = embed(item["audio"], n, fps)
                    feats["both"] = np.concatenate([feats["ours"], feats["emb"]], 1)
                if loop is not None:
                    feats["phones"], raw = loop(item["audio"], n, fps)
                    feats["ours+phones"] = np.concatenate([feats["ours"], feats["phones"]], 1)
                data[(split, engine)].append((feats, item["visemes"], raw))
            print(f"{split} {key}: {len(picks)} clips", file=sys.stderr, flush=True)

    def stack(parts, which):
        xs, ys = [], []
        for feats, lab, _ in parts:
            ok = lab != IGNORE
            xs.append(feats[which][ok])
            ys.append(lab[ok])
        return np.concatenate(xs), np.concatenate(ys)

    def row(which, split, engine, pred, yt):
        speech = yt != sil
        print(
            f"| {which} | {split} | {engine} | {len(yt)} | {np.mean(pred == yt):.1%} | "
            f"{np.mean(pred[speech] == yt[speech]):.1%} |",
            flush=True,
        )

    train = [p for (split, _), parts in data.items() if split == "train" for p in parts]
    print("| features | split | engine | frames | accuracy | without silence |")
    print("| --- | --- | --- | ---: | ---: | ---: |")
    for which in train[0][0]:
        x, y = stack(train, which)
        clf = (
            MLPClassifier((256,), max_iter=200, early_stopping=True, random_state=0)
            if args.mlp
            else LogisticRegression(max_iter=500)
        )
        probe = make_pipeline(StandardScaler(), clf).fit(x, y)
        for (split, engine), parts in sorted(data.items()):
            if split != "train":
                xt, yt = stack(parts, which)
                row(which, split, engine, probe.predict(xt), yt)
    if loop is not None:  # the phone loop's own phones, mapped to visemes
        for (split, engine), parts in sorted(data.items()):
            if split != "train":
                ok = [lab != IGNORE for _, lab, _ in parts]
                yt = np.concatenate([lab[k] for (_, lab, _), k in zip(parts, ok, strict=True)])
                pred = np.concatenate([raw[k] for (_, _, raw), k in zip(parts, ok, strict=True)])
                row("phones raw", split, engine, pred, yt)


if __name__ == "__main__":
    main()

"""Batching does not change what a clip contributes: padding is masked end to end."""

from __future__ import annotations

import pytest
import torch
from train_fixtures import tiny_config

from unitalker.data import collate
from unitalker.training.builders import build_run


def _cut(item: dict, seconds: float) -> dict:
    fps = item["fps"]
    return {
        **item,
        "audio": item["audio"][: int(seconds * 16000)],
        "motion": item["motion"][: int(round(seconds * fps))],
    }


@pytest.mark.parametrize("decoder", ["tcn", "transformer"])
@pytest.mark.parametrize("convention", ["tt_verts", "tt_bs", "tt_params"])
def test_padded_batch_keeps_per_clip_losses(release, tmp_path, decoder, convention):
    cfg = tiny_config(release, tmp_path, f"model.decoder.kind={decoder}", "pivot_prob=0")
    t = build_run(cfg).trainer
    t.model.eval()  # no dropout
    ds = t.train_set
    idx = [i for i, c in enumerate(ds.conventions) if c == convention][:3]
    # three lengths: the longest clip pads the others by 45% and 30%
    items = [_cut(ds[i], s) for i, s in zip(idx, (1.0, 0.55, 0.7), strict=True)]
    with torch.no_grad():
        batch = collate(items)
        out = t.model(
            batch.audio,
            heads=[convention],
            identity=batch.identity,
            templates={convention: batch.template},
            lengths=batch.audio_lengths.tolist(),
            frames={convention: batch.motion_lengths.tolist()},
        )[convention]
        for j, item in enumerate(items):
            alone = t.compute_loss(collate([item]), train=False).as_floats()
            n = int(batch.motion_lengths[j])
            coeffs = target = None
            if out.coeffs is not None:
                coeffs = out.coeffs[j : j + 1, :n]
                target = t.model.pca_layer_dict[convention].encode(
                    batch.motion[j : j + 1, :n] - batch.template[j : j + 1, None, :]
                )[..., : coeffs.shape[-1]]
            in_batch = t.loss_fn(
                convention,
                out.motion[j : j + 1, :n],
                batch.motion[j : j + 1, :n],
                batch.mask[j : j + 1, :n],
                coeffs,
                target,
            ).as_floats()
            assert in_batch.keys() == alone.keys()
            for k, v in alone.items():
                assert in_batch[k] == pytest.approx(v, rel=1e-5, abs=1e-9), (j, k)
        # and the batch loss is the frame-weighted mean of the clips' (masked, no padding)
        total = t.compute_loss(batch, train=False).as_floats()["loss"]
        per = [t.compute_loss(collate([it]), train=False).as_floats()["loss"] for it in items]
        w = batch.motion_lengths.tolist()
        assert total == pytest.approx(
            sum(a * b for a, b in zip(per, w, strict=True)) / sum(w), rel=1e-5
        )

"""Training loop: loss goes down, warm-up, pivot, exact resume, fine-tuning, errors."""

from __future__ import annotations

import torch
from train_fixtures import tiny_config

from unitalker.training.builders import build_run
from unitalker.training.pivot import PivotReplacer
from unitalker.training.run import train


def _state(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def test_two_steps_lower_loss(release, tmp_path):
    cfg = tiny_config(
        release,
        tmp_path,
        "schedule.steps=2",
        "schedule.warmup_steps=2",
        "optim.lr=0.001",
        "data.datasets=[TA]",
        "data.batch_size=6",
        "pivot_prob=0.0",
    )
    t = build_run(cfg).trainer
    from unitalker.data import collate

    batch = collate([t.train_set[i] for i in range(len(t.train_set))])
    t.model.eval()
    before = float(t.compute_loss(batch, train=False).total.detach())
    t.model.train()
    t.fit()
    t.model.eval()
    after = float(t.compute_loss(batch, train=False).total.detach())
    assert after < before


def test_warmup_freezes_exactly_the_encoder(release, tmp_path):
    cfg = tiny_config(
        release,
        tmp_path,
        "schedule.steps=2",
        "schedule.warmup_steps=2",
        "optim.lr=0.003",
        "data.batch_size=2",
    )
    t = build_run(cfg).trainer
    s0 = _state(t.model)
    t.fit()
    s1 = _state(t.model)
    for k in s0:
        if k.startswith("audio_encoder."):
            assert torch.equal(s0[k], s1[k]), k
    assert not torch.equal(
        s0["decoder.audio_feature_map.weight"], s1["decoder.audio_feature_map.weight"]
    )
    # after the warm-up everything but the local feature extractor trains
    t.step = 2
    assert not t.apply_phase()
    feats = {id(p) for p in t.model.audio_encoder.feature_parameters()}
    for n, p in t.model.named_parameters():
        assert p.requires_grad == (id(p) not in feats), n
    t.step = 1
    assert t.apply_phase()
    assert not any(p.requires_grad for p in t.model.audio_encoder.parameters())


def test_pivot_rate():
    rep = PivotReplacer(pivot_index=7, prob=0.1, seed=3)
    ids = torch.zeros(20000, dtype=torch.long)
    rate = (rep(ids) == 7).float().mean().item()
    assert abs(rate - 0.1) < 0.01
    assert torch.equal(PivotReplacer(7, 0.1, 3)(ids), PivotReplacer(7, 0.1, 3)(ids))
    assert torch.equal(PivotReplacer(None, 0.1)(ids), ids)


def test_resume_equals_uninterrupted(release, tmp_path):
    common = [
        "schedule.steps=4",
        "schedule.warmup_steps=1",
        "optim.lr=0.003",
        "data.batch_size=2",
        "log.ckpt_every=2",
        "log.keep_last=5",
    ]
    full = train(tiny_config(release, tmp_path / "a", *common))
    resumed = train(
        tiny_config(release, tmp_path / "b", *common),
        resume=tmp_path / "a" / "checkpoints" / "step_0000002",
    )
    from unitalker.models.checkpoint import load_model

    a, b = (
        load_model(full.final_dir, "cpu").state_dict(),
        load_model(resumed.final_dir, "cpu").state_dict(),
    )
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    assert resumed.steps == 4


def test_finetune_new_head_keeps_frozen_encoder(release, tmp_path):
    base = train(
        tiny_config(
            release,
            tmp_path / "base",
            "schedule.steps=2",
            "schedule.warmup_steps=0",
            "data.datasets=[TA, TB]",
        )
    )
    cfg = tiny_config(
        release,
        tmp_path / "ft",
        "schedule.steps=2",
        "schedule.warmup_steps=0",
        f"model.init_from={base.final_dir}",
        "data.datasets=[TC]",
        "finetune.trainable=[heads, decoder]",
        "optim.lr=0.003",
    )
    t = build_run(cfg).trainer
    assert "tt_params" in t.model.heads and "tt_verts" in t.model.heads
    names = list(t.model.config.identities)
    assert names[-1] == "pivot" and any(n.startswith("TC:") for n in names)
    emb = t.model.decoder.learnable_style_emb.weight
    tc = names.index(next(n for n in names if n.startswith("TC:")))
    assert torch.equal(emb[tc], emb[-1])  # new identities start from the pivot row
    s0 = _state(t.model)
    t.fit()
    s1 = _state(t.model)
    for k in s0:
        if k.startswith("audio_encoder."):
            assert torch.equal(s0[k], s1[k]), k
    assert not torch.equal(
        s0["out_head_dict.tt_params.weight"], s1["out_head_dict.tt_params.weight"]
    )


def test_finetune_gives_the_encoder_a_stream_window(release, tmp_path):
    import pytest

    from unitalker.models.checkpoint import load_model
    from unitalker.training.builders import TrainSetupError

    base = train(tiny_config(release, tmp_path / "base", "schedule.steps=1"))
    with pytest.raises(TrainSetupError, match="stream_window"):
        build_run(
            tiny_config(
                release,
                tmp_path / "nowin",
                f"model.init_from={base.final_dir}",
                "data.augment.p_stream_window=0.5",
            )
        )
    with pytest.raises(TrainSetupError, match=r"in \[0, 1\]"):
        build_run(
            tiny_config(
                release,
                tmp_path / "negative",
                f"model.init_from={base.final_dir}",
                "model.encoder.stream_window=[4, 1]",
                "data.augment.p_stream_window=-0.5",
            )
        )
    cfg = tiny_config(
        release,
        tmp_path / "ft",
        "schedule.steps=2",
        f"model.init_from={base.final_dir}",
        "model.encoder.stream_window=[4, 1]",
        "data.augment.p_stream_window=0.5",
    )
    t = build_run(cfg).trainer
    assert t.model.audio_encoder.stream_window == (4, 1)
    assert t.model.audio_encoder.stream_window_p == 0.5
    saved = load_model(t.fit().final_dir)
    assert saved.config.encoder.stream_window == (4, 1)
    assert saved.audio_encoder.stream_window_p == 0.0  # a training setting, not saved

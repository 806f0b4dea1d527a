"""The viseme term: its cross-entropy by hand, the config rule, and training with it on a
tiny release whose first dataset has A2F-Synth timelines (a fresh model, a fine-tune)."""

from __future__ import annotations

import json
import math
import shutil

import pytest
import torch
from train_fixtures import tiny_config

from unitalker.data.visemes import IGNORE, viseme_classes
from unitalker.training.builders import build_run
from unitalker.training.losses import UniTalkerLoss
from unitalker.training.run import train

V = {name: i for i, name in enumerate(viseme_classes())}


def test_viseme_term_is_the_cross_entropy_of_labelled_valid_frames(release):  # registers tt_*
    loss = UniTalkerLoss({"tt_params": None}, viseme_weight=0.5)
    pred = torch.zeros(2, 3, 3)
    mask = torch.tensor([[True, True, True], [True, True, False]])
    logits = torch.randn(2, 3, 15, generator=torch.Generator().manual_seed(0))
    labels = torch.tensor([[0, 4, IGNORE], [7, 1, 9]])  # (1, 2) is padding: not counted
    terms = loss("tt_params", pred, pred, mask, viseme_logits=logits, visemes=labels)
    counted = [(0, 0), (0, 1), (1, 0), (1, 1)]
    want = sum(-torch.log_softmax(logits[b, t], -1)[labels[b, t]].item() for b, t in counted) / len(
        counted
    )
    assert terms.viseme.item() == pytest.approx(want, rel=1e-5)
    assert terms.total.item() == pytest.approx(0.5 * want, rel=1e-5)  # param term is 0
    assert "viseme" in terms.as_floats()
    # no labelled frame: no term (not NaN)
    none = loss(
        "tt_params", pred, pred, mask, viseme_logits=logits, visemes=torch.full_like(labels, IGNORE)
    )
    assert none.viseme is None and math.isfinite(none.total.item())
    # weight 0: never computed
    off = UniTalkerLoss({"tt_params": None})(
        "tt_params", pred, pred, mask, viseme_logits=logits, visemes=labels
    )
    assert off.viseme is None


def test_loss_viseme_needs_the_classifier(release, tmp_path):
    with pytest.raises(ValueError, match="model.visemes"):
        tiny_config(release, tmp_path, "loss.viseme=1.0")


def _timed_release(release, tmp_path):
    """A copy of the tiny release with a phoneme timeline for every TA clip."""
    root = tmp_path / "rel"
    shutil.copytree(release, root, symlinks=True)
    tl_dir = root / "_timelines" / "TA"
    tl_dir.mkdir(parents=True)
    for split in ("train", "val", "test"):
        for e in json.loads((root / "TA" / f"{split}.json").read_text())["data"]:
            stem = e["audio_path"].split("/")[-1].rsplit(".", 1)[0]
            tl = [["_", 0.0, 0.2], ["a", 0.2, 0.5], ["m", 0.5, 0.7], ["u", 0.7, 1.0]]
            (tl_dir / f"{stem}.json").write_text(json.dumps({"phonemes": tl}))
    return root


def test_training_with_visemes(release, tmp_path):
    root = _timed_release(release, tmp_path)
    cfg = tiny_config(
        root,
        tmp_path / "run",
        "schedule.steps=4",
        "schedule.warmup_steps=0",
        "optim.lr=0.01",
        "data.batch_size=6",
        "model.visemes=true",
        "loss.viseme=1.0",
        "pivot_prob=0.0",
    )
    t = build_run(cfg).trainer
    assert t.model.config.visemes == viseme_classes()
    items = {n: [] for n in ("TA", "TB", "TC")}
    for i in range(len(t.train_set)):
        it = t.train_set[i]
        items[it["dataset"]].append(it)
    ta = items["TA"][0]["visemes"]  # 25 fps, 1 s: 5 sil, 8 aa, 5 PP, 7 ou
    assert ta.tolist() == [V["sil"]] * 5 + [V["aa"]] * 8 + [V["PP"]] * 5 + [V["ou"]] * 7
    assert all((it["visemes"] == IGNORE).all() for it in items["TB"] + items["TC"])

    from unitalker.data import collate

    batch = collate(items["TA"])
    t.model.eval()
    before = t.compute_loss(batch, train=False).viseme.item()
    assert t.compute_loss(collate(items["TB"]), train=False).viseme is None
    t.model.train()
    t.fit()
    t.model.eval()
    after = t.compute_loss(batch, train=False).viseme.item()
    assert after < before

    from unitalker.models.checkpoint import load_model

    assert load_model(tmp_path / "run" / "model").config.visemes == viseme_classes()


def test_finetune_adds_the_classifier(release, tmp_path):
    from unitalker.models.checkpoint import load_model

    root = _timed_release(release, tmp_path)
    base = load_model(train(tiny_config(root, tmp_path / "base", "schedule.steps=1")).final_dir)
    assert not base.config.visemes and not hasattr(base, "viseme_head")
    cfg = tiny_config(
        root,
        tmp_path / "ft",
        "schedule.steps=2",
        "schedule.warmup_steps=0",
        f"model.init_from={tmp_path / 'base' / 'model'}",
        "data.datasets=[TA]",
        "model.visemes=true",
        "loss.viseme=1.0",
    )
    t = build_run(cfg).trainer
    assert t.model.config.visemes == viseme_classes()
    old, new = base.state_dict(), t.model.state_dict()
    for k in old:
        if k.startswith("audio_encoder."):
            assert torch.equal(old[k], new[k]), k
    w0 = t.model.viseme_head.weight.detach().clone()
    result = t.fit()
    assert math.isfinite(result.last_losses["viseme"])
    assert not torch.equal(w0, t.model.viseme_head.weight)

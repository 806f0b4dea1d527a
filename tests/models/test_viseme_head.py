"""The optional viseme classifier: its logits come from the encoder's output at the first
head's frames (every adaptor position), change no motion output, and survive a save."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from tests.conftest import randomize, tiny_model_config

from unitalker.models.checkpoint import load_model, save_model
from unitalker.models.unitalker import VISEME_OUTPUT, UniTalker
from unitalker.synth.articulation import VISEMES


def _model(position: int = 1) -> UniTalker:
    cfg = dataclasses.replace(tiny_model_config("builtin", position=position), visemes=VISEMES)
    torch.manual_seed(0)
    return randomize(UniTalker(cfg)).eval()


@pytest.mark.parametrize("position", [0, 1, 2])
def test_logits_at_the_first_heads_frames_motion_unchanged(position):
    model = _model(position)
    audio = torch.zeros(2, 24000)
    audio[0].normal_()
    audio[1, :16000].normal_()
    heads = ["BIWI_23370_vertices", "FLAME_5023_vertices"]  # 25 and 30 fps
    with torch.no_grad():
        out = model(audio, heads=heads, lengths=[24000, 16000], visemes=True)
        plain = model(audio, heads=heads, lengths=[24000, 16000])
    v = out[VISEME_OUTPUT]
    assert v.motion.shape == (2, 38, len(VISEMES)) and v.lengths == [38, 25] and v.fps == 25.0
    assert v.coeffs is None and torch.isfinite(v.motion).all()
    for h in heads:
        assert torch.equal(out[h].motion, plain[h].motion)
    assert VISEME_OUTPUT not in plain


def test_logits_read_the_encoder_not_the_identity():
    model = _model()
    audio = torch.randn(1, 16000)
    with torch.no_grad():
        a = model(audio, identity=0, visemes=True)
        b = model(audio, identity=1, visemes=True)
    assert torch.equal(a[VISEME_OUTPUT].motion, b[VISEME_OUTPUT].motion)
    h = model.heads[0]
    assert not torch.equal(a[h].motion, b[h].motion)


def test_a_model_without_the_classifier_says_so():
    model = randomize(UniTalker(tiny_model_config("builtin"))).eval()
    assert not hasattr(model, "viseme_head")
    with pytest.raises(ValueError, match="no viseme classifier"):
        model(torch.randn(1, 16000), visemes=True)


def test_duplicate_classes_are_refused():
    with pytest.raises(ValueError, match="duplicate viseme"):
        dataclasses.replace(tiny_model_config("builtin"), visemes=("sil", "PP", "sil"))


def test_save_and_load_keep_the_classifier(tmp_path):
    model = _model()
    save_model(model, tmp_path / "m")
    back = load_model(tmp_path / "m", device="cpu")
    assert back.config.visemes == VISEMES and back.config == model.config
    audio = torch.randn(1, 16000)
    with torch.no_grad():
        x = model(audio, visemes=True)[VISEME_OUTPUT].motion
        y = back(audio, visemes=True)[VISEME_OUTPUT].motion
    assert torch.equal(x, y)

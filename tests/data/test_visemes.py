"""Viseme labels per frame: read from A2F-Synth timelines, carried through augmentation
(a viseme change at a known time stays at its frame) and padded in batches."""

from __future__ import annotations

import json

import numpy as np
import pytest

from unitalker.data.augment import AugmentConfig, AugmentedDataset
from unitalker.data.batching import collate
from unitalker.data.visemes import (
    IGNORE,
    clip_visemes,
    frame_visemes,
    from_soft,
    one_hot,
    timeline_path,
    viseme_classes,
)

SR, FPS = 16000, 25.0
V = {name: i for i, name in enumerate(viseme_classes())}


def test_classes_are_the_articulation_visemes_silence_first():
    from unitalker.synth.articulation import VISEMES

    assert viseme_classes() == VISEMES and VISEMES[0] == "sil" and len(VISEMES) == 15


def test_frame_visemes_by_hand():
    tl = [["_", 0.0, 0.1], ["ˈb", 0.1, 0.2], ["a", 0.2, 0.3], ["p", 0.3, 0.3], ["f", 0.3, 0.36]]
    got = frame_visemes(tl, 11, 25.0)  # frames at 0, 0.04, ... 0.4 s
    want = ["sil"] * 3 + ["PP"] * 2 + ["aa"] * 3 + ["FF"] + ["sil"] * 2  # empty /p/: none
    assert got.dtype == np.int64
    assert got.tolist() == [V[w] for w in want]


def test_clip_visemes_reads_the_timeline_or_ignores(tmp_path):
    (tmp_path / "D" / "wav").mkdir(parents=True)
    (tmp_path / "_timelines" / "D").mkdir(parents=True)
    tl = {"phonemes": [["_", 0.0, 0.2], ["m", 0.2, 0.4], ["u", 0.4, 1.0]]}
    (tmp_path / "_timelines" / "D" / "a.json").write_text(json.dumps(tl))
    wav = tmp_path / "D" / "wav" / "a.wav"
    assert timeline_path(wav, "D") == tmp_path / "_timelines" / "D" / "a.json"
    got = clip_visemes(wav, "D", 10, 10.0)
    assert got.tolist() == [V["sil"]] * 2 + [V["PP"]] * 2 + [V["ou"]] * 6
    assert (clip_visemes(tmp_path / "D" / "wav" / "b.wav", "D", 4, 10.0) == IGNORE).all()
    (tmp_path / "_timelines" / "D" / "c.json").write_text("[1, 2]")
    with pytest.raises(ValueError, match="c.json: not an A2F-Synth timeline"):
        clip_visemes(tmp_path / "D" / "wav" / "c.wav", "D", 4, 10.0)


def test_one_hot_and_back():
    labels = np.array([0, 3, IGNORE, 14])
    oh = one_hot(labels, 15)
    assert oh.shape == (4, 15) and oh[2].sum() == 0 and oh[1, 3] == 1
    np.testing.assert_array_equal(from_soft(oh), labels)
    blend = 0.3 * oh[1] + 0.7 * oh[3]  # an interpolated row: the stronger class
    assert from_soft(blend[None]).tolist() == [14]
    assert from_soft(0.4 * oh[1][None]).tolist() == [IGNORE]  # mostly unlabelled


def _item(seconds: float = 2.0, change_s: float = 1.2) -> dict:
    """A click at ``change_s``; visemes ``aa`` before it, ``PP`` from its frame on."""
    audio = np.zeros(int(seconds * SR), np.float32)
    audio[int(change_s * SR)] = 0.9
    n = round(seconds * FPS)
    vis = np.full(n, V["aa"], np.int64)
    vis[round(change_s * FPS) :] = V["PP"]
    return {
        "audio": audio,
        "motion": np.zeros((n, 2), np.float32),
        "template": np.zeros(2, np.float32),
        "identity": 0,
        "convention": "c",
        "dataset": "d",
        "fps": FPS,
        "name": "x",
        "visemes": vis,
    }


def _click_frame(audio: np.ndarray) -> float:
    hop = SR // 100
    n = len(audio) // hop
    env = np.abs(audio[: n * hop]).reshape(n, hop).max(1)
    return (np.argmax(env) + 0.5) * hop / SR * FPS


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_visemes_follow_tempo_silence_and_crops(seed):
    item = _item()

    class Base:
        def __len__(self):
            return 1

        def __getitem__(self, i):
            return dict(item)

    cfg = AugmentConfig(
        enabled=True,
        prob=1.0,
        p_silence=1.0,
        p_tempo=1.0,
        p_pitch=0.0,
        p_vtln=0.0,
        p_reverb=0.0,
        p_noise=0.0,
        p_band=0.0,
        p_codec=0.0,
        p_gain=0.0,
        p_clip=0.0,
    )
    out = AugmentedDataset(Base(), cfg, seed=seed)[0]
    vis, motion = out["visemes"], out["motion"]
    assert vis.dtype == np.int64 and len(vis) == len(motion) and motion.shape[1] == 2
    first_pp = int(np.argmax(vis == V["PP"]))
    assert abs(_click_frame(out["audio"]) - first_pp) <= 1.0
    assert vis[0] == V["sil"] and vis[-1] == V["sil"]  # padded silence is `sil`
    assert set(np.unique(vis)) <= {V["sil"], V["aa"], V["PP"]}


def test_collate_pads_visemes_and_leaves_them_out_when_absent():
    a, b = _item(1.0, 0.5), _item(2.0, 1.0)
    batch = collate([a, b])
    assert batch.visemes.shape == (2, 50)
    assert (batch.visemes[0, 25:] == IGNORE).all() and batch.visemes[1, 49] == V["PP"]
    for it in (a, b):
        del it["visemes"]
    assert collate([a, b]).visemes is None

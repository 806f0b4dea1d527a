"""On-the-fly augmentation keeps labels aligned: a click at a known time stays at its frame."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from unitalker.data.augment import (
    AugmentConfig,
    AugmentedDataset,
    Augmenter,
    formant_shift,
    stream_crop,
    stretch_labels,
)

SR, FPS = 16000, 30.0
CLICK_S = 1.2
OPS = (
    "silence",
    "tempo",
    "pitch",
    "vtln",
    "formant",
    "reverb",
    "noise",
    "band",
    "codec",
    "gain",
    "clip",
    "lofi",
)


def _click_item(seconds: float = 2.4) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Audio with one click at CLICK_S; labels with a bump in channel 0 at its frame."""
    audio = np.zeros(int(seconds * SR), np.float32)
    audio[int(CLICK_S * SR)] = 0.9
    n = round(seconds * FPS)
    motion = np.zeros((n, 3), np.float32)
    motion[round(CLICK_S * FPS), 0] = 1.0
    motion[:, 2] = np.arange(n) / n  # a ramp: time-stretching must resample it smoothly
    return audio, motion, np.zeros(3, np.float32)


def _only(op: str, **extra) -> AugmentConfig:
    """A config applying just ``op`` (probability 1); noise kept well above 0 dB here."""
    probs = {f"p_{o}": 0.0 for o in OPS}
    probs[f"p_{op}"] = 1.0
    return AugmentConfig(enabled=True, prob=1.0, snr_db=(20.0, 30.0), **probs, **extra)


def _click_frame(audio: np.ndarray) -> float:
    """Frame of the click: the loudest 10 ms envelope window (robust to filtering)."""
    hop = SR // 100
    n = len(audio) // hop
    env = np.abs(audio[: n * hop]).reshape(n, hop).max(1)
    return (np.argmax(env) + 0.5) * hop / SR * FPS


@pytest.mark.parametrize("op", OPS)
def test_click_stays_at_its_frame(op):
    audio, motion, neutral = _click_item()
    aug = Augmenter(_only(op))
    for seed in (0, 1):
        out_a, out_m, ops = aug(audio, motion, FPS, neutral, seed)
        assert op in ops
        assert abs(len(out_a) / SR * FPS - len(out_m)) <= 1.0  # same time base
        if op == "clip":  # pointwise (it flattens a lone click): time and labels untouched
            assert len(out_a) == len(audio)
            np.testing.assert_array_equal(out_m, motion)
            continue
        label_frame = int(np.argmax(out_m[:, 0]))
        assert abs(_click_frame(out_a) - label_frame) <= 1.0, (op, ops)


def test_chain_of_everything_keeps_alignment():
    audio, motion, neutral = _click_item()
    cfg = dataclasses.replace(
        _only("tempo"), **{f"p_{o}": 1.0 for o in OPS}, clip_percentile=(0, 0)
    )
    out_a, out_m, ops = Augmenter(cfg)(audio, motion, FPS, neutral, seed=3)
    assert set(ops) == set(OPS)
    assert abs(_click_frame(out_a) - int(np.argmax(out_m[:, 0]))) <= 1.5


def _vowel(f1: float, f2: float, f0: float = 120.0, seconds: float = 0.6) -> np.ndarray:
    """A pulse train at ``f0`` through resonators at ``f1``, ``f2`` and 2600 Hz."""
    from scipy.signal import lfilter

    y = np.zeros(int(seconds * SR))
    y[:: int(SR / f0)] = 1.0
    for f, bw in ((f1, 80.0), (f2, 100.0), (2600.0, 150.0)):
        r = np.exp(-np.pi * bw / SR)
        y = lfilter([1 - r], [1, -2 * r * np.cos(2 * np.pi * f / SR), r * r], y)
    return (0.5 * y / np.abs(y).max()).astype(np.float32)


def _resonances(audio: np.ndarray) -> list[float]:
    """The three lowest narrow resonances (Hz) of the middle 25 ms: LPC of order 18."""
    from scipy.linalg import solve_toeplitz
    from scipy.signal import lfilter

    x = lfilter([1, -0.97], [1], audio)
    mid = len(x) // 2
    seg = x[mid : mid + 400] * np.hanning(400)
    r = np.correlate(seg, seg, "full")[399 : 399 + 19]
    roots = np.roots(np.concatenate([[1.0], -solve_toeplitz(r[:18], r[1:19])]))
    up = roots[roots.imag > 0]
    freq, bw = np.angle(up) * SR / (2 * np.pi), -np.log(np.abs(up)) * SR / np.pi
    return sorted(f for f, b in zip(freq, bw, strict=True) if b < 300 and f > 150)[:3]


@pytest.mark.parametrize(
    "f1_scale,f2_scale", [(1.3, 1.0), (1.0, 1.3), (0.8, 1.25), (1.4, 1.2), (0.75, 0.8)]
)
def test_formant_shift_moves_f1_and_f2_apart_keeping_pitch_and_level(f1_scale, f2_scale):
    vowel = _vowel(700.0, 1200.0)
    f1, f2, f3 = _resonances(vowel)
    assert abs(f1 - 700) < 30 and abs(f2 - 1200) < 30
    out = formant_shift(vowel, SR, f1_scale, f2_scale)
    assert out.shape == vowel.shape and out.dtype == np.float32
    g1, g2, g3 = _resonances(out)
    assert g1 == pytest.approx(f1 * f1_scale, rel=0.05)
    assert g2 == pytest.approx(f2 * f2_scale, rel=0.05)
    assert g3 == pytest.approx(f3, rel=0.02)  # the third formant stays
    # pitch kept: the autocorrelation peaks at the pulse period (120 Hz)
    mid = out[len(out) // 4 : 3 * len(out) // 4].astype(np.float64)
    ac = np.correlate(mid, mid, "full")[len(mid) - 1 :]
    lo, hi = int(SR / 200), int(SR / 80)
    assert lo + int(np.argmax(ac[lo:hi])) == pytest.approx(SR / 120, abs=2)
    # level kept within a few dB
    assert 0.5 < np.sqrt(np.mean(out**2)) / np.sqrt(np.mean(vowel**2)) < 2.0


def test_formant_shift_at_one_and_on_silence_is_the_input():
    vowel = _vowel(600.0, 1700.0)
    np.testing.assert_allclose(formant_shift(vowel, SR, 1.0, 1.0), vowel, atol=1e-4)
    silence = np.zeros(SR // 2, np.float32)
    np.testing.assert_array_equal(formant_shift(silence, SR, 1.4, 0.8), silence)


# Draw seeds and operations logged (augment.jsonl, without the dataset's stream crop) by
# the bundled model's round-5 balance stage (configs/default_engines_balance.yaml, seed 25),
# trained before the formant operation existed.
RECIPE_DRAWS = [
    (86031746, {"pitch": 0.927, "vtln": 0.9942, "reverb": 0.166, "noise": 6.05, "gain": -4.87}),
    (
        2763587205,
        {"pitch": -1.71, "reverb": 0.506, "noise": 11.41, "codec": "opus@24k", "gain": -2.88},
    ),
    (842405750, {"tempo": 0.9911, "vtln": 1.0263, "codec": "mp3@48k", "gain": -10.32}),
    (1106993696, {"tempo": 1.1273, "pitch": -0.701, "noise": 8.03}),
    (4058648833, {"vtln": 1.0885, "codec": "mp3@24k", "gain": 3.36}),
    (1621159091, {}),
    (2412462754, {"silence": [0.104, 0.332], "pitch": 2.401, "gain": -10.84}),
]


def test_operations_off_by_default_leave_the_recipes_draws_unchanged():
    """``p_formant`` and ``p_lofi`` are 0 by default and then draw nothing: the default
    recipe's configs augment exactly as they did when the bundled model was trained."""
    cfg = AugmentConfig(enabled=True, prob=0.8, p_codec=0.1)  # the engines stages' chain
    assert cfg.p_formant == 0.0 and cfg.p_lofi == 0.0
    audio = (np.random.default_rng(0).standard_normal(SR) * 0.05).astype(np.float32)
    motion, neutral = np.zeros((30, 3), np.float32), np.zeros(3, np.float32)
    for seed, expected in RECIPE_DRAWS:
        assert Augmenter(cfg)(audio, motion, FPS, neutral, seed)[2] == expected


def test_formant_op_draws_both_scales_in_range():
    audio, motion, neutral = _click_item()
    cfg = dataclasses.replace(_only("formant"), formant_scale=(0.8, 1.4))
    for seed in range(6):
        _, _, ops = Augmenter(cfg)(audio, motion, FPS, neutral, seed)
        f1, f2 = ops["formant"]
        assert 0.8 <= f1 <= 1.4 and 0.8 <= f2 <= 1.4


def test_silence_padding_is_neutral_and_ramped():
    audio, motion, _ = _click_item()
    motion = motion + 0.5  # the clip's edges are not neutral
    neutral = np.full(3, 0.1, np.float32)
    cfg = dataclasses.replace(_only("silence"), silence_s=(0.6, 0.6))
    out_a, out_m, ops = Augmenter(cfg)(audio, motion, FPS, neutral, seed=0)
    lead = round(0.6 * FPS)
    np.testing.assert_allclose(out_m[0], neutral, atol=1e-6)
    np.testing.assert_allclose(out_m[-1], neutral, atol=1e-6)
    np.testing.assert_allclose(out_m[lead : lead + len(motion)], motion)
    assert np.all(out_a[: int(0.6 * SR) - 1] == 0)


def test_stretch_labels_keeps_times():
    m = np.arange(30, dtype=np.float32)[:, None]  # value = frame index
    out = stretch_labels(m, 1.5)
    assert len(out) == 45
    np.testing.assert_allclose(out[30, 0], 20.0)  # frame 30 of the slower clip = old 20


def test_augmented_dataset_is_seeded_and_logged(tmp_path):
    audio, motion, neutral = _click_item()
    item = {
        "audio": audio,
        "motion": motion,
        "template": neutral,
        "fps": FPS,
        "name": "x",
        "identity": 0,
        "convention": "c",
        "dataset": "d",
    }

    class Base:
        lengths = [len(motion)]

        def __len__(self):
            return 1

        def __getitem__(self, i):
            return dict(item)

    cfg = AugmentConfig(enabled=True, prob=1.0, p_codec=0.0)
    a = AugmentedDataset(Base(), cfg, seed=5, log_path=tmp_path / "aug.jsonl", max_seconds=3.0)
    b = AugmentedDataset(Base(), cfg, seed=5, max_seconds=3.0)
    x1, x2 = a[0], a[0]  # two draws of the same item differ ...
    assert not np.array_equal(x1["audio"], x2["audio"]) or x1["audio"].shape != x2["audio"].shape
    np.testing.assert_array_equal(b[0]["audio"], x1["audio"])  # ... and replay with the seed
    a.set_epoch(1)
    assert len(a[0]["audio"]) <= 3.0 * SR
    assert a.lengths == [len(motion)]  # other attributes are the base's
    lines = (tmp_path / "aug.jsonl").read_text().splitlines()
    assert len(lines) == 3 and '"ops"' in lines[0]


def test_spec_augment_masks_bands_and_spans_only():
    """Masks cover whole mel bands / whole frames, at most the widths asked, filled with
    the item's mean; the same torch seed gives the same masks."""
    import torch

    from unitalker.data.augment import SpecAugment

    x = torch.randn(4, 80, 200)
    aug = SpecAugment(freq_masks=2, freq_width=10, time_masks=2, time_width=3)
    torch.manual_seed(0)
    y = aug(x)
    torch.manual_seed(0)
    assert torch.equal(y, aug(x))
    for b in range(4):
        fill = x[b].mean()
        changed = y[b] != x[b]
        assert torch.allclose(y[b][changed], fill.expand(int(changed.sum())))
        bands = changed.all(dim=1)  # a masked band is masked at every frame
        frames = changed.all(dim=0)
        assert int(bands.sum()) <= 20 and int(frames.sum()) <= 6
        # every changed cell lies in a masked band or a masked frame
        assert bool((changed <= (bands[:, None] | frames[None, :])).all())
    assert (y != x).any()


def test_spec_augment_runs_in_training_only():
    """The training builder's masks touch the built-in encoder's features in train mode;
    eval (inference) is unchanged, and nothing of it is in the state dict."""
    import torch

    from unitalker.data.augment import AugmentConfig
    from unitalker.models.config import debug_config
    from unitalker.models.unitalker import UniTalker
    from unitalker.training.builders import attach_feature_augment

    model = UniTalker(debug_config())
    keys = set(model.state_dict())
    audio = torch.randn(1, 16000)
    model.eval()
    with torch.no_grad():
        before = model.audio_encoder.extract(audio)
    attach_feature_augment(model, AugmentConfig(enabled=True, spec_freq_masks=2))
    with torch.no_grad():
        assert torch.equal(model.audio_encoder.extract(audio), before)
        model.train()
        assert not torch.equal(model.audio_encoder.extract(audio), before)
    assert set(model.state_dict()) == keys


def test_spec_augment_leaves_padding_alone():
    """Padding frames of a batch get no masks and do not count in the fill."""
    import torch

    from unitalker.data.augment import SpecAugment

    x = torch.randn(2, 40, 100) + 3.0
    x[1, :, 60:] = -13.8  # item 1 is padded after frame 60 (log of the clamp floor)
    aug = SpecAugment(freq_masks=3, freq_width=8, time_masks=3, time_width=4)
    torch.manual_seed(1)
    y = aug(x, [100, 60])
    assert torch.equal(y[1, :, 60:], x[1, :, 60:])
    changed = y[1] != x[1]
    assert changed.any()
    assert torch.allclose(y[1][changed], x[1, :, :60].mean().expand(int(changed.sum())))


@pytest.mark.parametrize("fps", [25.0, 30.0, 60.0])
@pytest.mark.parametrize("seed", range(6))
def test_stream_crop_keeps_the_click_at_its_frame(fps, seed):
    """A streaming crop ends anywhere and starts on the frame grid: labels stay aligned, and
    the frames of the last look-ahead leave the loss."""
    audio = np.zeros(int(4.0 * SR), np.float32)
    click = 1.71  # not on a half frame at any of the rates
    audio[int(click * SR)] = 0.9
    n = round(4.0 * fps)
    motion = np.zeros((n, 2), np.float32)
    motion[round(click * fps), 0] = 1.0
    motion[:, 1] = np.arange(n)  # frame index
    rng = np.random.default_rng(seed)
    a, m, keep, (start, end) = stream_crop(audio, motion, fps, rng, (2.5, 3.5), 0.1)
    np.testing.assert_array_equal(a, audio[start:end])
    assert round(len(a) / SR * fps) == len(m)
    f0 = start * fps / SR
    assert f0 == int(f0) and m[0, 1] == f0  # start on a whole frame
    if start <= click * SR < end:
        assert round(click * fps) - f0 == int(np.argmax(m[:, 0]))
    # every counted frame has >= 0.1 s of audio after it; the next one has less
    assert (keep - 1) / fps <= len(a) / SR - 0.1 < keep / fps
    assert 1 <= keep <= len(m)


def test_stream_crop_in_the_dataset_masks_the_loss():
    from unitalker.data.batching import collate

    audio, motion, neutral = _click_item(seconds=3.0)
    item = {
        "audio": audio,
        "motion": motion,
        "template": neutral,
        "fps": FPS,
        "name": "x",
        "identity": 0,
        "convention": "c",
        "dataset": "d",
    }

    class Base:
        def __len__(self):
            return 1

        def __getitem__(self, i):
            return dict(item)

    cfg = AugmentConfig(enabled=True, prob=0.0, p_stream_crop=1.0, stream_crop_s=(1.0, 1.0))
    ds = AugmentedDataset(Base(), cfg, seed=0)
    crops = [ds[0] for _ in range(4)]
    # 1 s, made up to 0.1 s longer by a start on the 30 fps grid (1600 samples)
    assert all(SR <= len(c["audio"]) < SR + 1600 for c in crops)
    assert len({len(c["audio"]) for c in crops}) > 1  # the end is drawn per item
    c = crops[0]
    plain = dict(item, audio=audio[: SR // 2], motion=motion[:15])
    batch = collate([c, plain])
    seconds = len(c["audio"]) / SR
    assert batch.motion_lengths.tolist() == [round(seconds * FPS), 15]
    assert batch.mask[0].sum() == c["loss_frames"] == int((seconds - 0.1) * FPS) + 1
    assert batch.mask[1].sum() == 15
    off = AugmentedDataset(Base(), dataclasses.replace(cfg, p_stream_crop=0.0), seed=0)[0]
    assert "loss_frames" not in off and len(off["audio"]) == len(audio)

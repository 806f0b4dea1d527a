"""Long audio: grid-aligned windows, cross-fade merge, bounded memory, seams."""

from __future__ import annotations

import numpy as np
import pytest
from tests.inference.infer_testdata import speechy, tiny_wavlm

from unitalker.audio import frame_count
from unitalker.inference.animate import (
    CrossfadeMerger,
    aligned_window_starts,
    animate,
    crossfade_merge,
    frame_grid,
)


def test_frame_grid_has_whole_frames_for_every_rate():
    g = frame_grid([25.0, 30.0])
    assert g == 3200
    for fps in (25.0, 30.0):
        assert (g * fps / 16000).is_integer()
    assert frame_grid([60.0]) == 800


def test_aligned_starts_cover_the_clip():
    n, win, hop, grid = 16000 * 61 + 77, 16000 * 25, 16000 * 20, 3200
    starts = aligned_window_starts(n, win, hop, grid)
    assert all(s % grid == 0 for s in starts)
    assert starts[0] == 0 and n - starts[-1] <= win + grid
    assert all(b - a <= hop for a, b in zip(starts, starts[1:], strict=False))


def test_incremental_merger_equals_crossfade_merge():
    rng = np.random.default_rng(0)
    n, fade = 100, 8
    pieces = [
        (0, rng.normal(size=(40, 3))),
        (30, rng.normal(size=(40, 3))),
        (60, rng.normal(size=(40, 3))),
    ]
    ref = crossfade_merge(pieces, n, fade)
    m = CrossfadeMerger(n, 3, fade)
    for s, a in pieces:
        m.add(s, a.astype(np.float32))
    np.testing.assert_allclose(m.result(), ref, atol=1e-6)


def test_single_window_equals_model_call():
    import torch

    model = tiny_wavlm()
    wav = speechy(2.3)
    res = animate(model, wav, window=25)
    with torch.no_grad():
        ref = model(torch.from_numpy(wav)[None])
    for h, a in res.items():
        np.testing.assert_allclose(a.data, ref[h].motion[0].numpy(), atol=1e-6)
        assert a.n_frames == frame_count(len(wav), a.fps)


@pytest.mark.parametrize("seconds", [13.7])
def test_seams_are_invisible(seconds):
    """Window 3 s / overlap 1 s: the jump across any window border is no larger than the
    frame-to-frame motion elsewhere, and frame counts equal the offline rule."""
    model = tiny_wavlm()
    wav = speechy(seconds, seed=3)
    res = animate(model, wav, window=3.0, overlap=1.0)
    whole = animate(model, wav, window=0)
    starts = aligned_window_starts(len(wav), 48000, 32000, frame_grid([25.0, 30.0]))
    for h, a in res.items():
        assert a.n_frames == frame_count(len(wav), a.fps) == whole[h].n_frames
        steps = np.abs(np.diff(a.data, axis=0)).max(axis=1)  # [T-1] largest channel jump
        border = set()
        for s in starts[1:]:
            # the cross-fade region ends where the previous window ends (s + overlap)
            for t in (round(s / 16000 * a.fps), round((s / 16000 + 1.0) * a.fps)):
                border.update(range(max(0, t - 2), min(len(steps), t + 2)))
        inner = np.array([steps[i] for i in range(len(steps)) if i not in border])
        at_border = np.array([steps[i] for i in sorted(border)])
        assert at_border.max() <= inner.max() + 1e-6, h
        # and the windowed result stays close to the whole-clip run
        scale = np.abs(whole[h].data - whole[h].data.mean(0)).max()
        assert np.abs(a.data - whole[h].data).mean() < 0.25 * scale


def test_ten_minutes_in_bounded_memory():
    """A 10-minute clip runs in 25 s windows; the merge holds only the result."""
    import tracemalloc

    from tests.conftest import tiny_model_config

    from unitalker.models.unitalker import UniTalker

    model = UniTalker(tiny_model_config("builtin", heads=["3DETF_blendshape_weight"])).eval()
    wav = np.zeros(16000 * 600, dtype=np.float32)
    wav[::7] = 0.1
    calls = []
    tracemalloc.start()
    res = animate(model, wav, progress=lambda d, t: calls.append((d, t)))
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    a = res["3DETF_blendshape_weight"]
    assert a.n_frames == 18000 and np.isfinite(a.data).all()
    assert calls[-1][0] == calls[-1][1] == len(calls) >= 30
    # numpy allocations: the result (18000 x 52 float32 = 3.7 MB) plus small per-window
    # pieces; a merge that kept every window and a float64 copy would need several times that.
    assert peak < 3 * a.data.nbytes + 8 * 2**20


def test_animate_rejects_bad_arguments():
    model = tiny_wavlm()
    with pytest.raises(KeyError, match="unknown head"):
        animate(model, speechy(1.0), heads=["nope"])
    with pytest.raises(ValueError, match="overlap"):
        animate(model, speechy(1.0), window=3, overlap=3)
    with pytest.raises(ValueError, match="precision"):
        animate(model, speechy(1.0), precision="fp8")
    with pytest.raises(ValueError, match="NaN"):
        animate(model, np.full(16000, np.nan, dtype=np.float32))


def _demo_loop(model, wav: np.ndarray, fps: int, normalize: bool):
    """The original demo's long-audio loop, re-implemented step by step from its description:
    normalise the clip, cut 25 s windows every 20 s (normalising each again), run each,
    then paste the windows with a linspace(1, 0) cross-fade over the 5 s overlap. (The demo
    runs one head at a time; heads are independent, so all heads of one fps run at once.)"""
    import torch

    sr, a, b = 16000, 25, 5

    def norm(x):
        return (x - x.mean()) / np.sqrt(x.var() + 1e-7) if normalize else x

    x = norm(wav)
    reps = max(0, int(np.ceil((len(x) / sr - a) / (a - b)))) + 1
    splits, start, end, step = [], 0, int(a * sr), int((a - b) * sr)
    for _ in range(reps):
        splits.append(norm(x[start:end]).astype(np.float32))
        start, end = start + step, end + step
    pieces: dict[str, list[np.ndarray]] = {}
    for piece in splits:
        with torch.no_grad():
            res = model(
                torch.from_numpy(piece)[None],
                fps=dict.fromkeys(model.heads, fps),
                identity=model.identity_index(None),
            )
        for h in model.heads:
            pieces.setdefault(h, []).append(res[h].motion[0].numpy())
    out = {}
    for head, ps in pieces.items():
        left = np.linspace(1, 0, b * fps)[:, None]
        wa, wb = a * fps, b * fps
        offset = wa - wb
        merged = np.empty(
            (len(ps[-1]) + offset * (len(ps) - 1), ps[-1].shape[-1]), dtype=ps[-1].dtype
        )
        merged[:wa] = ps[0]
        for p in ps[1:]:
            merged[wa - wb : wa] = left * merged[wa - wb : wa] + (1 - left) * p[:wb]
            merged[wa : wa + offset] = p[wb:]
            wa += offset
        out[head] = merged
    return out


def _small_model(family: str, heads: list[str]):
    import torch
    from tests.conftest import randomize, tiny_model_config

    from unitalker.models.unitalker import UniTalker

    torch.manual_seed(0)
    return randomize(UniTalker(tiny_model_config(family, heads=heads))).eval()


@pytest.mark.parametrize(
    "normalize, heads",
    [
        (True, ["3DETF_blendshape_weight", "synth_head_vertices"]),  # 30 and 25 fps
        (False, ["3DETF_blendshape_weight"]),
    ],  # an encoder that does not normalise: bit for bit
)
def test_original_windows_equal_the_demo_loop_on_47_s(normalize, heads):
    """``windows='original'`` is the demo's loop: windows at 0, 20, 40 s, its blend, its
    frame count and its double normalisation."""
    from unitalker.inference.animate import demo_windows

    model = _small_model("builtin", heads)
    if not normalize:
        model.audio_encoder.normalize = lambda audio, lengths: audio
    wav = speechy(47.0, seed=5)
    assert demo_windows(len(wav)) == [(0, 400000), (320000, 720000), (640000, 752000)]
    got = animate(model, wav, windows="original")
    rates = {int(a.fps) for a in got.values()}
    ref = {}
    for r in rates:
        ref |= {h: v for h, v in _demo_loop(model, wav, r, normalize).items() if got[h].fps == r}
    for h, a in got.items():
        assert a.data.shape == ref[h].shape
        assert len(ref[h]) == 7 * a.fps + 40 * a.fps  # last window 7 s, two 20 s hops
        np.testing.assert_allclose(a.data, ref[h], rtol=0, atol=1e-5 if normalize else 0.0)
    if not normalize:
        return
    # ours differs from the first overlap (20 s) on, not before it
    ours = animate(model, wav)
    for h, a in ours.items():
        t20 = int(20 * a.fps)
        np.testing.assert_allclose(a.data[:t20], got[h].data[:t20], atol=1e-5)
        assert np.abs(a.data[t20:] - got[h].data[t20 : len(a.data)]).max() > 1e-4


def test_original_windows_short_clip_is_one_pass():
    model = _small_model("builtin", ["3DETF_blendshape_weight", "FLAME_5023_vertices"])
    wav = speechy(3.0)
    got = animate(model, wav, windows="original")
    ours = animate(model, wav)
    for h, a in got.items():
        np.testing.assert_allclose(a.data, ours[h].data, atol=1e-6)
    with pytest.raises(ValueError, match="windows"):
        animate(model, wav, windows="demo")
    with pytest.raises(ValueError, match="whole frame rates"):
        animate(model, wav, windows="original", fps={"FLAME_5023_vertices": 29.97})

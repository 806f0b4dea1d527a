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

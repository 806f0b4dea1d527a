"""The dressed synth heads in the preview: a closed mouth with teeth, blink only on screen."""

from __future__ import annotations

import numpy as np
import pytest

from unitalker.animation import Animation
from unitalker.conventions import ARKIT52_EMOTALK
from unitalker.export import load_npz, write_outputs
from unitalker.render import renderer as renderer_module
from unitalker.render.layout import LABEL_HEIGHT, MeshPanel, build_layout
from unitalker.synth import conventions as SC

needs_egl = pytest.mark.skipif(not renderer_module.egl_available(), reason="no EGL here")
BG = np.round(np.asarray(renderer_module.BACKGROUND) * 255).astype(int)


def _weights(jaw: list[float]) -> np.ndarray:
    w = np.zeros((len(jaw), 52), np.float32)
    w[:, ARKIT52_EMOTALK.index("jawOpen")] = jaw
    return w


def _head(name: str, jaw: list[float]) -> Animation:
    """A head of convention ``name`` with the jaw opened by ``jaw`` per frame."""
    w = _weights(jaw)
    if name == SC.ARKIT:
        return Animation(name, 30.0, w)
    if name == SC.FLAME:
        p = np.zeros((len(jaw), 43), np.float32)
        p[:, 0] = np.asarray(jaw) * 0.32
        return Animation(name, 30.0, p)
    a = SC.asset(SC.TOPOLOGY_OF[name])
    v = a["neutral"][None] + np.einsum("tc,cvk->tvk", w, a["rig_basis"])
    return Animation(name, 30.0, v.reshape(len(jaw), -1).astype(np.float32))


def _is_bg(img: np.ndarray) -> np.ndarray:
    return (np.abs(img.astype(int) - BG) <= 2).all(axis=-1)


@needs_egl
@pytest.mark.parametrize("name", [SC.ARKIT, SC.HEAD, SC.HEAD2, SC.FLAME])
def test_open_mouth_shows_cavity_and_teeth_not_background(name: str) -> None:
    anim = _head(name, [0.0, 1.0])
    images = {}
    for dress in (True, False):
        panel = MeshPanel(anim, 192, name, dress=dress, idle=False)
        images[dress] = (panel.draw(0).copy(), panel.draw(1).copy())
        panel.close()
    closed, opened = images[True]
    mouth = np.abs(opened.astype(int) - closed.astype(int)).sum(-1) > 30  # what the jaw changed
    mouth &= ~_is_bg(closed) | ~_is_bg(opened)  # on the head (not the chin's moving outline)
    assert mouth.sum() > 50
    rows = np.nonzero(mouth.any(axis=1))[0]
    cols = np.nonzero(mouth.any(axis=0))[0]
    # the opening: inside the head's silhouette in the closed frame
    inner = mouth & ~_is_bg(closed)
    assert not _is_bg(opened)[inner].any(), "background seen through the mouth"
    box = opened[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1].astype(int)
    teeth = (box.min(axis=-1) > 170) & (np.ptp(box, axis=-1) < 45)  # near-white pixels
    assert teeth.sum() >= 6, "no teeth in the open mouth"
    # without the dressing the same frame is see-through (the test can tell them apart)
    bare_closed, bare_open = images[False]
    assert _is_bg(bare_open)[~_is_bg(bare_closed)].sum() > 20


@needs_egl
def test_blink_and_idle_only_on_screen_never_in_the_data(tmp_path) -> None:
    n = 40  # 1.33 s: the first procedural blink is closed at t = 0.97-1.01 s
    anim = _head(SC.HEAD, [0.0] * n)
    results = {SC.HEAD: anim, SC.ARKIT: _head(SC.ARKIT, [0.0] * n)}
    before = {k: v.data.copy() for k, v in results.items()}
    frames = {}
    for idle in (True, False):
        lay = build_layout(results, 160, idle=idle)
        frames[idle] = [lay.frame(i).copy() for i in (0, 29)]
        lay.close()
    # the static face blinks at t = 29/30 s only with idle on; off, it never changes
    np.testing.assert_array_equal(frames[False][0], frames[False][1])
    top = slice(LABEL_HEIGHT, LABEL_HEIGHT + 80)  # eyes are in the panels' upper half
    assert np.abs(frames[True][1][top].astype(int) - frames[False][1][top]).sum() > 0
    # writing the preview (idle on, the default) and the data together: data unchanged
    paths = write_outputs(results, tmp_path, "clip", ["npz", "json", "mp4"], audio=None)
    assert any(p.suffix == ".mp4" for p in paths)
    saved = load_npz(tmp_path / "clip.npz")
    for k, v in before.items():
        np.testing.assert_array_equal(results[k].data, v)
        np.testing.assert_array_equal(saved[k].data, v)
    eye = ARKIT52_EMOTALK.index("eyeBlinkLeft")
    assert saved[SC.ARKIT].data[:, eye].max() == 0.0


@needs_egl
def test_one_pass_layout_equals_panel_by_panel() -> None:
    results = {SC.HEAD2: _head(SC.HEAD2, [0.0, 0.6]), SC.FLAME: _head(SC.FLAME, [0.0, 0.6])}
    lay = build_layout(results, 128, idle=False)
    assert lay._fbo is not None
    composed = lay.frame(1).copy()
    for i, p in enumerate(lay.panels):
        alone = p.draw(1)
        diff = np.abs(composed[LABEL_HEIGHT:, i * 128 : (i + 1) * 128].astype(int) - alone)
        assert diff.max() <= 1
        # the chunk's normals are those of the frame drawn
        np.testing.assert_allclose(p.normals(1), p.renderer.normal_computer(p.mesh(1)), atol=1e-6)
    lay.close()

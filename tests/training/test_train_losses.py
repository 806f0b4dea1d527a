"""Loss terms against hand computations."""

from __future__ import annotations

import pytest
import torch

from unitalker.training.losses import UniTalkerLoss, masked_mse


def test_masked_mse_ignores_padding():
    pred = torch.tensor([[[1.0, 1.0], [5.0, 5.0]]])
    tgt = torch.zeros(1, 2, 2)
    mask = torch.tensor([[True, False]])
    assert masked_mse(pred, tgt, mask).item() == pytest.approx(1.0)
    assert masked_mse(pred, tgt, None).item() == pytest.approx(13.0)


def test_eq2_terms(release):
    from unitalker import conventions
    from unitalker.geometry import rig_for

    loss = UniTalkerLoss(
        {c: rig_for(c) for c in ("tt_verts", "tt_bs", "tt_params")}, alpha=0.01, beta=1e-4
    )
    mask = torch.tensor([[True, True, False]])
    # vertices + PCA
    p, t = torch.ones(1, 3, 36), torch.zeros(1, 3, 36)
    c, tc = torch.full((1, 3, 4), 2.0), torch.zeros(1, 3, 4)
    terms = loss("tt_verts", p, t, mask, c, tc)
    assert terms.vertex.item() == pytest.approx(1.0) and terms.pca.item() == pytest.approx(4.0)
    assert terms.total.item() == pytest.approx(1.0 + 0.01 * 4.0)
    # blendshapes: vertex term through the rig, param term on the weights
    w = torch.tensor([[[1.0, 0, 0, 0], [0, 0, 0, 0], [9, 9, 9, 9]]])
    basis = conventions.get("tt_bs").resource("rig_basis")
    terms = loss("tt_bs", w, torch.zeros_like(w), mask)
    expect_v = (basis[0] ** 2).sum() / (2 * basis[0].size)
    assert terms.vertex.item() == pytest.approx(expect_v, rel=1e-5)
    assert terms.param.item() == pytest.approx(1 / 8)
    assert terms.total.item() == pytest.approx(expect_v + 1e-4 / 8, rel=1e-5)
    # params without a mesh: only the parameter term
    terms = loss("tt_params", torch.ones(1, 3, 3), torch.zeros(1, 3, 3), mask)
    assert terms.vertex is None and terms.total.item() == pytest.approx(1e-4)


@pytest.mark.parametrize("conv", ["synth_head_vertices", "synth_arkit52", "synth_flame_params"])
def test_lip_term_is_the_lip_region_mse(conv):
    """loss.lip adds the vertex MSE over the lip region (through the rig for weights and
    parameters); at 0 the loss is Eq. 2 unchanged."""
    from unitalker import conventions
    from unitalker.geometry import rig_for

    c = conventions.get(conv)
    lip = torch.as_tensor(conventions.find_region(conv, "lip").indices, dtype=torch.long)
    g = torch.Generator().manual_seed(0)
    pred, target = (torch.randn(2, 5, c.dim, generator=g) * 0.01 for _ in range(2))
    mask = torch.ones(2, 5, dtype=torch.bool)
    mask[1, 3:] = False
    maps = {conv: rig_for(conv)}
    plain = UniTalkerLoss(maps)(conv, pred, target, mask)
    off = UniTalkerLoss(maps, lip_weight=0.0, lip_regions={conv: lip})(conv, pred, target, mask)
    assert off.lip is None and torch.equal(off.total, plain.total)
    on = UniTalkerLoss(maps, lip_weight=2.0, lip_regions={conv: lip})(conv, pred, target, mask)
    rig = maps[conv]
    if rig is None:
        vp, vt = pred.reshape(2, 5, -1, 3), target.reshape(2, 5, -1, 3)
    else:
        vp, vt = (rig(x.reshape(10, -1)).reshape(2, 5, -1, 3) for x in (pred, target))
    expect = ((vp[:, :, lip] - vt[:, :, lip]) ** 2)[mask].mean()
    torch.testing.assert_close(on.lip, expect)
    torch.testing.assert_close(on.total, plain.total + 2.0 * expect)


def test_loss_lip_config_takes_the_registered_lip_regions():
    from unitalker import conventions
    from unitalker.config import load_config
    from unitalker.training.builders import build_loss
    from unitalker.training.config import TrainConfig

    heads = ["synth_head_vertices", "synth_arkit52", "3DETF_blendshape_weight"]
    off = build_loss(load_config(TrainConfig, None, []), heads)
    assert off.lip_weight == 0 and off.lips == {}
    loss = build_loss(load_config(TrainConfig, None, ["loss.lip=0.5"]), heads)
    assert loss.lip_weight == 0.5
    assert set(loss.lips) == {"synth_head_vertices", "synth_arkit52"}  # 3DETF has no lip region
    want = conventions.find_region("synth_head_vertices", "lip").indices
    assert loss.lips["synth_head_vertices"].tolist() == list(want)
    with pytest.raises(ValueError, match="lip"):
        load_config(TrainConfig, None, ["loss.lip=-1"])


def test_velocity_term_is_the_frame_difference_mse():
    """loss.velocity adds the MSE of frame-to-frame vertex differences over pairs of valid
    frames (a padded frame's pair is left out); at 0 it is absent."""
    conv = "synth_head_vertices"
    from unitalker import conventions

    d = conventions.get(conv).dim
    g = torch.Generator().manual_seed(1)
    pred, target = (torch.randn(2, 6, d, generator=g) for _ in range(2))
    mask = torch.ones(2, 6, dtype=torch.bool)
    mask[0, 4:] = False
    assert UniTalkerLoss({})(conv, pred, target, mask).velocity is None
    got = UniTalkerLoss({}, velocity_weight=0.5)(conv, pred, target, mask)
    dp, dt = pred.diff(dim=1), target.diff(dim=1)  # [2, 5, D]
    pairs = mask[:, 1:] & mask[:, :-1]
    expect = ((dp - dt) ** 2)[pairs].mean()
    torch.testing.assert_close(got.velocity, expect)
    torch.testing.assert_close(got.total, got.vertex + 0.5 * expect)


@pytest.mark.parametrize("conv", ["synth_head_vertices", "synth_arkit52", "synth_flame_params"])
def test_contact_term_is_the_lip_gap_error_on_closed_label_frames(conv):
    """loss.contact: the squared error of the lip gap (upper-lower midline distance) over
    the valid frames whose label lips are closed; open and padded frames do not count."""
    import numpy as np

    from unitalker.evaluation.voices import mouth_gauge
    from unitalker.geometry import rig_for
    from unitalker.synth.articulation import CURVES
    from unitalker.synth.conventions import render

    curves = {c: np.zeros(5, np.float32) for c in CURVES}
    curves["jaw_open"] = np.array([0.0, 0.8, 0.0, 0.6, 0.0], np.float32)  # closed, open, ...
    target = torch.as_tensor(render(conv, curves, None))[None].float()  # [1, 5, D]
    g = torch.Generator().manual_seed(2)
    pred = target + 0.02 * torch.randn(target.shape, generator=g) * target.abs().amax()
    mask = torch.tensor([[True, True, True, True, False]])  # frame 4 (closed) is padding
    gauge = mouth_gauge(conv)
    pair = (gauge.upper, gauge.lower, gauge.rest, gauge.open_range)
    maps = {conv: rig_for(conv)}
    assert UniTalkerLoss(maps, lip_pairs={conv: pair})(conv, pred, target, mask).contact is None
    loss = UniTalkerLoss(maps, contact_weight=3.0, lip_pairs={conv: pair})
    got = loss(conv, pred, target, mask)
    rig = maps[conv]
    vp, vt = (
        (x.reshape(1, 5, -1, 3) if rig is None else rig(x.reshape(5, -1)).reshape(1, 5, -1, 3))
        for x in (pred, target)
    )
    gp = (vp[0, :, gauge.upper] - vp[0, :, gauge.lower]).norm(dim=-1)
    gt = (vt[0, :, gauge.upper] - vt[0, :, gauge.lower]).norm(dim=-1)
    closed = gt <= gauge.rest + 0.1 * gauge.open_range
    assert closed.tolist() == [True, False, True, False, True]  # the jaw opens frames 1, 3
    expect = ((gp - gt) ** 2)[[0, 2]].mean()
    torch.testing.assert_close(got.contact, expect)
    plain = UniTalkerLoss(maps)(conv, pred, target, mask)
    torch.testing.assert_close(got.total, plain.total + 3.0 * expect)
    # moving the lips on an open or a padded frame leaves the term alone
    moved = pred.clone()
    moved[:, [1, 3, 4]] = target[:, [1, 3, 4]] * 1.5
    torch.testing.assert_close(loss(conv, moved, target, mask).contact, expect)
    # contact_frames="all": every valid frame, a lip-gap MSE
    every = UniTalkerLoss(maps, contact_weight=1.0, lip_pairs={conv: pair}, contact_frames="all")
    torch.testing.assert_close(every(conv, pred, target, mask).contact, ((gp - gt) ** 2)[:4].mean())


def test_loss_contact_config_takes_the_synth_lip_midlines():
    from unitalker.config import load_config
    from unitalker.evaluation.voices import mouth_gauge
    from unitalker.training.builders import build_loss
    from unitalker.training.config import TrainConfig

    heads = ["synth_head2_vertices", "synth_flame_params", "3DETF_blendshape_weight"]
    assert build_loss(load_config(TrainConfig, None, []), heads).pairs == {}
    loss = build_loss(load_config(TrainConfig, None, ["loss.contact=0.05"]), heads)
    assert loss.contact_weight == 0.05 and loss.contact_tol == 0.1
    assert set(loss.pairs) == {"synth_head2_vertices", "synth_flame_params"}  # not 3DETF
    g = mouth_gauge("synth_head2_vertices")
    assert loss.pairs["synth_head2_vertices"] == (g.upper, g.lower, g.rest, g.open_range)
    with pytest.raises(ValueError, match="contact"):
        load_config(TrainConfig, None, ["loss.contact=-1"])
    with pytest.raises(ValueError, match="contact_frames"):
        load_config(TrainConfig, None, ["loss.contact_frames=some"])


def test_short_runs_keeps_the_brief_closures_between_open_frames():
    from unitalker.training.losses import short_runs

    f = torch.tensor(
        [[1, 1, 0, 1, 1, 0, 0, 1, 1, 1, 1, 0, 1], [0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]]
    )
    got = short_runs(f.bool(), 3).int().tolist()
    # a run touching either end may be a cut-off rest; [7:11] is longer than 3 frames
    assert got == [[0, 0, 0, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0], [0, 1] + [0] * 11]
    # a run ending at the last valid frame (padding after it) touches the end too
    mask = torch.ones(2, 13, dtype=torch.bool)
    mask[0, 5:] = False
    assert short_runs(f.bool(), 3, mask).int().tolist()[0] == [0] * 13


def test_contact_closures_counts_brief_label_closures_not_rests():
    """contact_frames="closures": a bilabial-length closure between open frames counts,
    the rest at either end of the clip and a long closed run do not."""
    import numpy as np

    from unitalker.evaluation.voices import mouth_gauge
    from unitalker.synth.articulation import CURVES
    from unitalker.synth.conventions import render

    conv = "synth_head_vertices"  # 25 fps: closures of at most 5 frames
    jaw = np.array([0, 0, 0.7, 0.7, 0, 0, 0.7, 0.7, 0, 0, 0, 0, 0, 0, 0.7, 0, 0], np.float32)
    curves = {c: np.zeros(len(jaw), np.float32) for c in CURVES}
    curves["jaw_open"] = jaw
    target = torch.as_tensor(render(conv, curves, None))[None].float()
    pred = target.clone()
    pred[0, :] = target[0, 2]  # every frame wide open: a missed closure everywhere
    g = mouth_gauge(conv)
    loss = UniTalkerLoss(
        {},
        contact_weight=1.0,
        lip_pairs={conv: (g.upper, g.lower, g.rest, g.open_range)},
        contact_frames="closures",
    )
    vp, vt = (x.reshape(len(jaw), -1, 3) for x in (pred[0], target[0]))
    gp = (vp[:, g.upper] - vp[:, g.lower]).norm(dim=-1)
    gt = (vt[:, g.upper] - vt[:, g.lower]).norm(dim=-1)
    # frames 4-5 are a 2-frame closure; 0-1 and 15-16 rests at the ends; 8-13 too long
    want = ((gp - gt) ** 2)[[4, 5]].mean()
    torch.testing.assert_close(loss(conv, pred, target, None).contact, want)

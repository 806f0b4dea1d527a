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

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

"""Loss terms against hand computations; FLAME reading and skinning."""

from __future__ import annotations

import pickle

import numpy as np
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
    from unitalker.training.geometry import vertex_map

    loss = UniTalkerLoss({c: vertex_map(c) for c in ("tt_verts", "tt_bs", "tt_params")},
                         alpha=0.01, beta=1e-4)  # fmt: skip
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


def _flame_arrays(rng, v=10, j=5):
    w = rng.random((v, j))
    return {
        "v_template": rng.normal(size=(v, 3)),
        "shapedirs": rng.normal(size=(v, 3, 400)) * 0.01,
        "posedirs": rng.normal(size=(v, 3, 9 * (j - 1))) * 0.01,
        "J_regressor": rng.random((j, v)) / v,
        "weights": w / w.sum(1, keepdims=True),
        "kintree_table": np.array([[4294967295, 0, 1, 1, 1], [0, 1, 2, 3, 4]]),
        "f": np.array([[0, 1, 2]]),
    }


class _FakeCh:  # pickled as chumpy.ch.Ch: our loader must never call it
    pass


def test_flame_pickle_with_chumpy_and_lbs(tmp_path):
    from unitalker.training.flame import FlameLBS, load_flame_model

    rng = np.random.default_rng(0)
    arr = _flame_arrays(rng)
    # emulate the chumpy pickle: shapedirs as a Ch object whose state holds the array
    _FakeCh.__module__, _FakeCh.__qualname__ = "chumpy.ch", "Ch"
    import sys
    import types

    mod = types.ModuleType("chumpy.ch")
    mod.Ch = _FakeCh
    sys.modules["chumpy"], sys.modules["chumpy.ch"] = types.ModuleType("chumpy"), mod
    try:
        ch = _FakeCh()
        ch.__dict__["x"] = arr["shapedirs"]
        path = tmp_path / "flame.pkl"
        path.write_bytes(pickle.dumps({**arr, "shapedirs": ch}, protocol=2))
    finally:
        del sys.modules["chumpy"], sys.modules["chumpy.ch"]
    model = load_flame_model(path)
    assert np.allclose(model["shapedirs"], arr["shapedirs"])
    lbs = FlameLBS(model)
    zero = lbs(torch.zeros(1, 400), torch.zeros(1, 3))
    assert torch.allclose(zero[0], torch.tensor(arr["v_template"], dtype=torch.float32), atol=1e-5)
    opened = lbs(torch.zeros(1, 400), torch.tensor([[0.3, 0.0, 0.0]]))
    assert not torch.allclose(opened, zero)
    opened.sum().backward() if opened.requires_grad else None


def test_flame_pickle_refuses_code(tmp_path):
    from unitalker.training.flame import UnsafeFlameFileError, load_flame_model

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps({"v_template": Evil()}))
    with pytest.raises(UnsafeFlameFileError):
        load_flame_model(path)

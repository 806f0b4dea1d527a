"""Reading a FLAME model file: the chumpy pickle without chumpy, and never running code."""

from __future__ import annotations

import pickle
import sys
import types

import numpy as np
import pytest
import torch

from unitalker.geometry import rig_for
from unitalker.geometry.flame import UnsafeFlameFileError, load_flame_model

from .test_rigs import flame_arrays


class _FakeCh:  # pickled as chumpy.ch.Ch: our loader must never call it
    pass


def _chumpy_pickle(path, arr):
    # emulate the chumpy pickle: shapedirs as a Ch object whose state holds the array
    _FakeCh.__module__, _FakeCh.__qualname__ = "chumpy.ch", "Ch"
    mod = types.ModuleType("chumpy.ch")
    mod.Ch = _FakeCh
    sys.modules["chumpy"], sys.modules["chumpy.ch"] = types.ModuleType("chumpy"), mod
    try:
        ch = _FakeCh()
        ch.__dict__["x"] = arr["shapedirs"]
        path.write_bytes(pickle.dumps({**arr, "shapedirs": ch}, protocol=2))
    finally:
        del sys.modules["chumpy"], sys.modules["chumpy.ch"]


def test_flame_pickle_with_chumpy_and_lbs(tmp_path):
    arr = flame_arrays(np.random.default_rng(0))
    path = tmp_path / "flame.pkl"
    _chumpy_pickle(path, arr)
    model = load_flame_model(path)
    assert np.allclose(model["shapedirs"], arr["shapedirs"])
    rig = rig_for("flame_params_from_dadhead", flame_model=path)
    zero = rig(torch.zeros(1, 413))
    assert torch.allclose(zero[0], torch.tensor(arr["v_template"], dtype=torch.float32), atol=1e-5)
    jaw = torch.zeros(1, 413)
    jaw[0, 400] = 0.3
    opened = rig(jaw.requires_grad_())
    assert not torch.allclose(opened, zero)
    opened.sum().backward()
    assert torch.isfinite(jaw.grad).all() and jaw.grad[0, 400:403].abs().sum() > 0


def test_flame_face_indices(tmp_path):
    arr = flame_arrays(np.random.default_rng(1))
    np.savez(tmp_path / "flame.npz", **arr)
    np.save(tmp_path / "face.npy", np.array([0, 3, 7]))
    full = rig_for("flame_params_from_dadhead", flame_model=tmp_path / "flame.npz")
    face = rig_for(
        "flame_params_from_dadhead",
        flame_model=tmp_path / "flame.npz",
        flame_face_indices=tmp_path / "face.npy",
    )
    x = torch.randn(2, 413) * 0.1
    assert torch.allclose(face(x), full(x)[:, [0, 3, 7]], atol=1e-6)
    assert face.n_vertices == 3 and face.neutral().shape == (3, 3)


def test_flame_pickle_refuses_code(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps({"v_template": Evil()}))
    with pytest.raises(UnsafeFlameFileError, match="refusing to unpickle builtins.print"):
        rig_for("flame_params_from_dadhead", flame_model=path)

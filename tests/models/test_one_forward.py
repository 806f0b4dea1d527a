"""The traced forward (what ONNX exports) against the eager one, piece by piece, and the
model contract (:class:`unitalker.models.protocol.TalkerModel`) of both runners."""

from __future__ import annotations

import inspect

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from tests.conftest import randomize, tiny_model_config

from unitalker.audio import frame_count
from unitalker.models.adaptor import interpolate, interpolate_gather
from unitalker.models.encoders import BuiltinAudioEncoder
from unitalker.models.protocol import TalkerModel
from unitalker.models.unitalker import UniTalker, _graph_frame_count


def test_graph_frame_count_is_frame_count():
    # every length around the rounding ties of 25 / 30 / 60 fps and odd rates
    for fps in (25.0, 30.0, 60.0, 29.97, 50.0):
        for s in [1, 320, 400, 641, 16000, 16001, 160000, 1234567] + list(range(300, 1300, 7)):
            got = int(_graph_frame_count(torch.zeros(1, s), fps))
            assert got == frame_count(s, fps), (fps, s)


@pytest.mark.parametrize(
    ("t_in", "t_out"), [(1, 7), (7, 1), (50, 50), (50, 25), (49, 150), (499, 250)]
)
def test_gather_interpolation_equals_f_interpolate(t_in, t_out):
    x = torch.randn(1, t_in, 5, generator=torch.Generator().manual_seed(t_in))
    got = interpolate_gather(x, torch.tensor(t_out))
    ref = interpolate(x, t_out)
    assert got.shape == ref.shape == (1, t_out, 5)
    if t_in == t_out:
        assert torch.equal(got, ref)
    # F.interpolate places the output frames in float32, the gathers in float64: both are
    # within float rounding of the exact (float64) interpolation
    exact = interpolate(x.double(), t_out)
    torch.testing.assert_close(got.double(), exact, atol=1e-6, rtol=0)
    torch.testing.assert_close(got, ref, atol=1e-4, rtol=0)


def test_builtin_dft_spectrum_equals_stft():
    enc = BuiltinAudioEncoder(hidden_size=32, n_layers=1, n_heads=2, n_mels=20)
    for s in (100, 400, 719, 16000):
        x = torch.randn(1, s, generator=torch.Generator().manual_seed(s))
        ref = (
            torch.stft(
                F.pad(x, (0, max(0, 400 - s))),
                400,
                320,
                window=enc.window,
                center=False,
                return_complex=True,
            )
            .abs()
            .pow(2)
        )
        got = enc._power_spectrum_graph(x)
        assert got.shape == ref.shape
        torch.testing.assert_close(got, ref, atol=1e-3, rtol=1e-4)


def _tiny(family: str = "builtin", **kw) -> UniTalker:
    torch.manual_seed(0)
    return randomize(UniTalker(tiny_model_config(family, **kw))).eval()


def test_both_runners_satisfy_the_model_protocol(tmp_path):
    pytest.importorskip("onnxruntime")
    from unitalker.inference.onnx import OnnxUniTalker, export_onnx

    model = _tiny("builtin", heads=["3DETF_blendshape_weight"])
    runner = OnnxUniTalker(export_onnx(model, tmp_path / "m.onnx"))
    for impl in (model, runner):
        assert isinstance(impl, TalkerModel)
        assert impl.heads == ["3DETF_blendshape_weight"]
        assert list(impl.identities) == ["T:0", "T:1", "T:2", "pivot"]
        assert impl.identity_index(None) == 3 and impl.identity_index("T:1") == 1
        assert impl.device == torch.device("cpu")
        # every argument the protocol names is accepted under the same name
        for name in ("__call__", "animate", "identity_index"):
            want = inspect.signature(getattr(TalkerModel, name)).parameters
            have = inspect.signature(
                getattr(
                    type(impl),
                    name
                    if name != "__call__"
                    else ("forward" if isinstance(impl, torch.nn.Module) else "__call__"),
                )
            ).parameters
            missing = [p for p in want if p not in have]
            assert not missing, (type(impl).__name__, name, missing)
        out = impl(torch.zeros(1, 8000), heads=["3DETF_blendshape_weight"], identity=1)
        assert out["3DETF_blendshape_weight"].motion.shape == (1, 15, 52)
    assert not isinstance(object(), TalkerModel)


def test_eager_forward_unchanged_by_the_tracing_paths():
    # The traced branches run only under tracing: an eager batch of one and the same clip
    # padded in a batch give what they gave (padded items equal their unpadded runs).
    model = _tiny("builtin")
    a = torch.randn(1, 16000, generator=torch.Generator().manual_seed(1)) * 0.1
    b = torch.cat([a, torch.zeros(1, 3000)], dim=1)
    with torch.no_grad():
        one = model(a, identity=1)
        both = model(torch.cat([b, b[:, list(range(19000))]]), identity=1, lengths=[16000, 19000])
    for h, o in one.items():
        n = o.motion.shape[1]
        np.testing.assert_allclose(both[h].motion[0, :n], o.motion[0], atol=1e-5)
        assert both[h].lengths[0] == n

"""Device resolution: auto, explicit devices, and a clear error for CUDA without CUDA."""

from __future__ import annotations

import pytest
import torch

from unitalker.device import DeviceError, resolve_device


def test_auto_and_cpu():
    assert resolve_device(None).type == ("cuda" if torch.cuda.is_available() else "cpu")
    assert resolve_device("auto") == resolve_device(None)
    assert resolve_device("cpu") == torch.device("cpu")


def test_unknown_device_is_a_clear_error():
    with pytest.raises(DeviceError, match="'gpu0': not a torch device name"):
        resolve_device("gpu0")


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cuda_without_cuda(capsys):
    with pytest.raises(DeviceError, match="CUDA is not available"):
        resolve_device("cuda")
    from unitalker.cli import main

    assert main(["bench", "--device", "cuda", "--size", "tiny", "--quick"]) != 0
    err = capsys.readouterr().err
    assert "CUDA is not available" in err and "Traceback" not in err

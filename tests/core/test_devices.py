"""Device resolution: auto, explicit devices, and a clear error for CUDA without CUDA."""

from __future__ import annotations

import pytest
import torch

from unitalker.devices import DeviceError, resolve_device


def test_auto_and_cpu():
    assert resolve_device(None).type == ("cuda" if torch.cuda.is_available() else "cpu")
    assert resolve_device("auto") == resolve_device(None)
    assert resolve_device("cpu") == torch.device("cpu")


def test_unknown_device_is_a_clear_error():
    with pytest.raises(DeviceError, match="unknown device 'gpu0'"):
        resolve_device("gpu0")


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cuda_without_cuda(capsys):
    with pytest.raises(DeviceError, match="no CUDA device"):
        resolve_device("cuda")
    from unitalker.cli import main

    assert main(["bench", "--device", "cuda", "--size", "tiny", "--quick"]) != 0
    err = capsys.readouterr().err
    assert "no CUDA device" in err and "Traceback" not in err

"""Device resolution shared by every entry point (CLI, Python API, training).

One small function so that ``--device cuda`` on a machine without CUDA is one clear error
(no traceback from deep inside torch), and ``None`` / ``"auto"`` mean the same everywhere.
"""

from __future__ import annotations

from typing import Any


class DeviceError(ValueError):
    """The requested device does not exist here; the message says what does."""


def resolve_device(name: Any = None) -> Any:
    """``None`` / ``"auto"``: CUDA when available, else CPU; otherwise the named device,
    checked to exist (``cuda``, ``cuda:1``, ``mps``, ``cpu`` or a ``torch.device``)."""
    import torch

    if name is None or name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(name)
    except (RuntimeError, TypeError) as e:
        raise DeviceError(f"unknown device {name!r} (use cpu, cuda, cuda:N or auto)") from e
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise DeviceError(
                f"device {name!r} asked for, but this torch has no CUDA device "
                f"(torch {torch.__version__}, built with CUDA: {torch.version.cuda or 'no'}); "
                "use --device cpu"
            )
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise DeviceError(
                f"device {name!r}: only {torch.cuda.device_count()} CUDA device(s) here"
            )
    elif dev.type == "mps" and not torch.backends.mps.is_available():
        raise DeviceError(f"device {name!r} asked for, but MPS is not available here")
    return dev

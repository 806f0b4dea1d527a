"""One place that turns a device name into a ``torch.device`` (and says why it cannot).

Every command's ``--device`` and the training config's ``device`` go through
:func:`resolve_device`, so ``--device cuda`` on a machine without CUDA is one clear error
instead of an ``AssertionError`` from deep inside torch.
"""

from __future__ import annotations

from typing import Any


class DeviceError(ValueError):
    """A device that does not exist on this machine (or is not a device name)."""


def resolve_device(name: Any = None) -> Any:
    """``None`` / ``"auto"`` -> CUDA when available, else CPU; otherwise check ``name``.

    Args:
        name: None, ``"auto"``, a device string (``cpu``, ``cuda``, ``cuda:1``, ``mps``) or
            a ``torch.device``.

    Returns:
        the ``torch.device``.

    Raises:
        DeviceError: not a device name, or the device is not available here.
    """
    import torch

    if name is None or (isinstance(name, str) and name.strip().lower() == "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(name.strip() if isinstance(name, str) else name)
    except (RuntimeError, TypeError, ValueError):
        raise DeviceError(
            f"device {name!r}: not a torch device name (use cpu, cuda, cuda:N, mps or auto)"
        ) from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            why = (
                "this torch build has no CUDA support"
                if torch.version.cuda is None
                else "no CUDA GPU is visible (driver missing or CUDA_VISIBLE_DEVICES empty?)"
            )
            raise DeviceError(
                f"device {name!r}: CUDA is not available here: {why}; use --device cpu"
            )
        n = torch.cuda.device_count()
        if dev.index is not None and not 0 <= dev.index < n:
            raise DeviceError(f"device {name!r}: this machine has {n} CUDA device(s) (0..{n - 1})")
    elif dev.type == "mps":
        mps = getattr(torch.backends, "mps", None)
        if mps is None or not mps.is_available():
            raise DeviceError(f"device {name!r}: Apple MPS is not available here; use --device cpu")
    elif dev.type != "cpu":
        raise DeviceError(f"device {name!r}: unitalker runs on cpu, cuda or mps")
    return dev

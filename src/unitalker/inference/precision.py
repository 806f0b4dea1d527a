"""Reduced-precision inference: a twin of the model stored in the compute dtype.

``bf16`` (and ``fp16``, meant for GPUs) run an inference-only copy of the model whose every
parameter and buffer is already in the compute dtype, with no autocast. Autocast casts
activations (and, without a twin, every fp32 weight: ~0.5 GB per call for the B-size
model) at each op boundary; a twin in the compute dtype casts nothing per call. Norms keep
fp32 accumulation inside their kernels (CPU and CUDA layer / group norm accumulate in
float for bf16 / fp16 inputs); only their outputs are rounded, and the measured error
against fp32 (``unitalker bench``) is no larger than autocast's.

The twin also has its inference-only rewrites done once: weight-norm parametrisations baked
into plain weights (the positional conv recomputed its weight on every call) and WavLM's
attention fused (:mod:`unitalker.models.fused_attention`; the base model is fused too).
"""

from __future__ import annotations

import contextlib
import copy
import functools
import logging
import weakref
from typing import TYPE_CHECKING

import torch
from torch import nn

if TYPE_CHECKING:
    from unitalker.models.protocol import TalkerModel

log = logging.getLogger(__name__)

PRECISIONS = ("fp32", "bf16", "fp16")
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}

_TWINS: weakref.WeakKeyDictionary[nn.Module, dict[torch.dtype, nn.Module]] = (
    weakref.WeakKeyDictionary()
)


def _bake_weight_norm(model: nn.Module) -> None:
    """Replace weight-norm parametrisations / hooks by the weight they compute."""
    from torch.nn.utils import parametrize

    for mod in model.modules():
        if parametrize.is_parametrized(mod):
            # Not parametrize.remove_parametrizations: it deletes the property from the
            # parametrised class, which a deep copy shares with the original model.
            values = {n: getattr(mod, n).detach().clone() for n in mod.parametrizations}
            del mod._modules["parametrizations"]
            mod.__class__ = type(mod).__bases__[0]
            for n, v in values.items():
                mod.register_parameter(n, nn.Parameter(v, requires_grad=False))
        for k, hook in list(mod._forward_pre_hooks.items()):
            if type(hook).__name__ == "WeightNorm":  # the old torch.nn.utils.weight_norm
                hook.remove(mod)
                del mod._forward_pre_hooks[k]


def twin(model: nn.Module, dtype: torch.dtype) -> nn.Module:
    """An eval-mode copy of ``model`` with every floating tensor in ``dtype`` (cached).

    The cache holds the twin as long as the model lives; a model changed after the first
    call (e.g. more training) should not be used with a stale twin, so inference code asks
    for the twin of an eval-mode model only.
    """
    twins = _TWINS.setdefault(model, {})
    t = twins.get(dtype)
    if t is None:
        from unitalker.models.fused_attention import fuse_wavlm_attention

        # Built outside inference mode, so its tensors are ordinary ones (with version
        # counters) even when the first call comes from inside torch.inference_mode().
        with torch.inference_mode(False), torch.no_grad():
            t = copy.deepcopy(model).eval()
            for p in t.parameters():
                p.requires_grad_(False)
            _bake_weight_norm(t)
            fuse_wavlm_attention(t)
            t.to(dtype)
        twins[dtype] = t
    return t


def bf16_twin(model: nn.Module) -> nn.Module:
    """:func:`twin` in bfloat16 (kept for callers of the first version)."""
    return twin(model, torch.bfloat16)


@functools.lru_cache(maxsize=1)
def cpu_bf16_native() -> bool:
    """Whether oneDNN has bf16 kernels for this CPU (AVX512-BF16, AMX, or AVX512 cores).

    Without them (AVX2-only x86: AMD before Zen 4, many Intel desktop and laptop parts) a
    bf16 matmul falls back to reference code: the B-size model's 10 s clip took 53 s in bf16 against
    2.4 s in fp32 on an AVX2-only EPYC.
    """
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):  # a torch without oneDNN: no fast bf16 either
        return False


_WARNED: set[str] = set()


def warn_slow_precision(precision: str, device: torch.device | str) -> bool:
    """Log once per precision when ``precision`` has no fast kernels on ``device``.

    Returns:
        True when it is slow there (bf16 / fp16 on a CPU without native bf16; fp16 on
        any CPU).
    """
    if torch.device(device).type != "cpu" or precision == "fp32":
        return False
    slow = precision == "fp16" or not cpu_bf16_native()
    if slow and precision not in _WARNED:
        _WARNED.add(precision)
        log.warning(
            "%s has no native kernels on this CPU (%s): it runs far slower than fp32 "
            "here; use --precision fp32, or the onnxruntime backend",
            precision,
            "fp16 is a GPU precision"
            if precision == "fp16"
            else "oneDNN finds no bf16 instructions to use",
        )
    return slow


def for_precision(
    model: TalkerModel, precision: str
) -> tuple[TalkerModel, contextlib.AbstractContextManager]:
    """The model to run and the context to run it in for ``precision``.

    Non-torch runners (ONNX) are returned as they are, with a null context. The context is
    a null context for every precision now (the twin needs no autocast); it is kept in the
    signature so that callers need not change.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    if precision == "fp32" or not isinstance(model, nn.Module):
        return model, contextlib.nullcontext()
    warn_slow_precision(precision, getattr(model, "device", "cpu"))
    # The model casts the normalised waveform to its own dtype (UniTalker.forward), so the
    # input is rounded once, after normalisation, and callers pass fp32 audio.
    return twin(model, DTYPES[precision]), contextlib.nullcontext()

"""Data-parallel training under ``torchrun``: gloo on CPU, NCCL on GPU.

The trainer averages gradients itself (:func:`all_reduce_grads`) instead of wrapping the
model in DDP: a batch holds one convention, so ranks touch different heads in the same
step, and the warm-up changes which parameters train mid-run; both break DDP's fixed
gradient buckets. Parameters no rank produced a gradient for keep ``grad = None`` on
every rank, so Adam skips them exactly as in a single process.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def init_from_env(device: str = "auto") -> DistInfo:
    """Join the process group when launched by torchrun (``WORLD_SIZE`` > 1)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    rank = int(os.environ["RANK"])
    local = int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = torch.cuda.is_available() and (device == "auto" or device.startswith("cuda"))
    if not dist.is_initialized():
        if use_cuda:
            torch.cuda.set_device(local)
        dist.init_process_group("nccl" if use_cuda else "gloo")
    return DistInfo(rank, world, local)


def all_reduce_grads(params: list[torch.nn.Parameter], world_size: int) -> None:
    """Average gradients over ranks; a parameter no rank has a gradient for stays None."""
    if world_size <= 1 or not params:
        return
    has = torch.tensor([p.grad is not None for p in params], dtype=torch.float32)
    dev = next((p.grad.device for p in params if p.grad is not None), params[0].device)
    has = has.to(dev)
    dist.all_reduce(has)
    flat = torch.cat(
        [
            (p.grad if p.grad is not None else torch.zeros_like(p)).reshape(-1).float()
            for p in params
        ]
    )
    dist.all_reduce(flat)
    flat /= world_size
    off = 0
    for p, h in zip(params, has.tolist(), strict=True):
        n = p.numel()
        p.grad = flat[off : off + n].view_as(p).to(p.dtype).clone() if h > 0 else None
        off += n


def _comm_device() -> torch.device:
    # NCCL reduces CUDA tensors only; gloo takes CPU tensors.
    if dist.is_initialized() and dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def all_reduce_mean(value: float, world_size: int) -> float:
    if world_size <= 1:
        return value
    t = torch.tensor([value], dtype=torch.float64, device=_comm_device())
    dist.all_reduce(t)
    return float(t.item()) / world_size


def barrier(info: DistInfo) -> None:
    if info.enabled and dist.is_initialized():
        dist.barrier()


def finish(info: DistInfo, code: int = 0) -> None:
    """End a worker: barrier, destroy the group, flush, and ``os._exit``.

    gloo can abort at interpreter exit when its threads are torn down in the wrong
    order; leaving through ``os._exit`` after an explicit shutdown avoids that.
    """
    if not info.enabled:
        return
    if dist.is_initialized():
        try:
            dist.barrier()
        finally:
            dist.destroy_process_group()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)

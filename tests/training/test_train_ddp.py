"""Data parallel training under torchrun (gloo): the ranks end with identical parameters,
and those equal a one-process run of the same global batch."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import torch

import unitalker

WORKER = Path(__file__).parent / "ddp_worker.py"
# No randomness inside a step (no pivot draws, no dropout): the two runs differ only in how
# the gradients of the global batch are summed.
EXACT = ["pivot_prob=0", "model.encoder.dropout=0", "model.decoder.dropout=0"]


def _run(cmd: list[str]) -> None:
    # the environment as the test runs in: the subprocess imports the package the test
    # imports (installed, or the caller's PYTHONPATH), nothing set up here
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]


def test_torchrun_two_ranks_equal_one_process(release, tmp_path):
    two, one = tmp_path / "two", tmp_path / "one"
    two.mkdir()
    one.mkdir()
    _run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc_per_node",
            "2",
            str(WORKER),
            str(release),
            str(two),
            "data.batch_size=2",
            *EXACT,
        ]
    )
    # one process, the same global batch: two micro-batches of 2 per step, in the order the
    # sampler deals them to ranks 0 and 1
    _run(
        [
            sys.executable,
            str(WORKER),
            str(release),
            str(one),
            "data.batch_size=2",
            "optim.accum_steps=2",
            *EXACT,
        ]
    )
    r0, r1 = torch.load(two / "rank0.pt"), torch.load(two / "rank1.pt")
    ref = torch.load(one / "rank0.pt")
    assert r0["package"] == r1["package"] == ref["package"] == unitalker.__file__
    assert (two / "model" / "model.safetensors").exists()
    moved = 0.0
    for k, v in r0["final"].items():
        assert torch.equal(v, r1["final"][k]), k
        assert torch.equal(r0["init"][k], ref["init"][k]), k  # the same start
        # all-reduce (mean of two sums) vs accumulation (sum of halves): rounding only
        torch.testing.assert_close(v, ref["final"][k], rtol=1e-4, atol=1e-6, msg=k)
        if v.is_floating_point():
            moved = max(moved, (v - r0["init"][k]).abs().max().item())
    assert moved > 1e-3  # training changed the weights, so the comparison means something

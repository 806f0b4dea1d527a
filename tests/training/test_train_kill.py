"""SIGKILL during training (and during checkpoint writes), then --resume: bit-exact.

Each kill lands at a different moment after a new checkpoint starts to appear, so some
land inside the checkpoint writes. After every kill, every checkpoint that is there must
load completely (writes are atomic) and the next start removes the ``.tmp-*`` leftovers;
resuming to the end gives exactly the parameters of an uninterrupted run.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from train_fixtures import TINY

WORKER = Path(__file__).parent / "kill_worker.py"
STEPS = 14


def _env() -> dict[str, str]:
    src = str(Path(__file__).parents[2] / "src")
    return {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([src, os.environ.get("PYTHONPATH", "")]),
        "OMP_NUM_THREADS": "1",
    }


def _cmd(release, out, *extra):
    sets = [
        f"data.manifest={release}",
        f"out_dir={out}",
        *TINY,
        f"schedule.steps={STEPS}",
        "schedule.warmup_steps=2",
        "optim.lr=0.003",
        "data.batch_size=2",
        "device=cpu",
        "log.ckpt_every=1",
        "log.keep_last=2",
    ]
    return [
        sys.executable,
        str(WORKER),
        str(release),
        "--no-progress",
        *[x for s in sets for x in ("--set", s)],
        *extra,
    ]


def _steps(out: Path) -> list[Path]:
    return sorted((out / "checkpoints").glob("step_*")) if (out / "checkpoints").exists() else []


def _check_no_torn_checkpoint(out: Path) -> None:
    from unitalker.models.checkpoint import load_model

    for d in [*_steps(out), out / "model"]:
        if (d / "model.safetensors").exists():
            load_model(d, device="cpu")  # complete, or it would raise
        if (d / "trainer_state.pt").exists():
            assert isinstance(torch.load(d / "trainer_state.pt", weights_only=True), dict)


@pytest.mark.slow
def test_sigkill_then_resume_is_bit_exact(release, tmp_path):
    from unitalker.models.checkpoint import load_model

    ref = subprocess.run(
        _cmd(release, tmp_path / "ref"), env=_env(), capture_output=True, text=True, timeout=300
    )
    assert ref.returncode == 0, ref.stderr[-2000:]

    out = tmp_path / "killed"
    kills = 0
    for delay in (0.0, 0.004, 0.012, 0.03):
        before = {p.name for p in _steps(out)}
        resume = (
            ["--resume", str(out)]
            if any((p / "trainer_state.pt").exists() for p in _steps(out))
            else []
        )
        proc = subprocess.Popen(
            _cmd(release, out, *resume),
            env=_env(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            if {p.name for p in _steps(out)} - before:  # a new checkpoint is being written
                time.sleep(delay)
                break
            time.sleep(0.002)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        assert proc.returncode == -signal.SIGKILL, (
            "training ended before the kill",
            proc.stderr.read()[-2000:],
        )
        kills += 1
        _check_no_torn_checkpoint(out)
    assert kills == 4

    final = subprocess.run(
        _cmd(release, out, "--resume", str(out)),
        env=_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert final.returncode == 0, final.stderr[-2000:]
    assert "resumed at step" in final.stderr
    assert not list(out.rglob(".tmp-*"))  # leftovers of the kills were cleaned up
    a = load_model(tmp_path / "ref" / "model", "cpu").state_dict()
    b = load_model(out / "model", "cpu").state_dict()
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k

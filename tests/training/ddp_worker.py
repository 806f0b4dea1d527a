"""Run by test_train_ddp (under torchrun, or alone as the one-process reference): train the
tiny fixture, then save this rank's initial and final parameters and which package ran."""

from __future__ import annotations

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))

from train_fixtures import register_test_conventions, tiny_config  # noqa: E402

import unitalker  # noqa: E402
from unitalker.training.builders import build_run  # noqa: E402
from unitalker.training.distributed import finish, init_from_env  # noqa: E402

root, out, overrides = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3:]
register_test_conventions(root / "_res")
info = init_from_env("cpu")
cfg = tiny_config(
    root,
    out,
    "schedule.steps=3",
    "schedule.warmup_steps=1",
    "optim.lr=0.003",
    "device=cpu",
    *overrides,
)
trainer = build_run(cfg, dist=info).trainer
init = {k: v.clone() for k, v in trainer.model.state_dict().items()}
trainer.fit()
torch.save(
    {"init": init, "final": trainer.model.state_dict(), "package": unitalker.__file__},
    out / f"rank{info.rank}.pt",
)
finish(info)

"""Run under torchrun by test_train_ddp: train, then save this rank's parameters."""

from __future__ import annotations

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))

from train_fixtures import register_test_conventions, tiny_config  # noqa: E402

from unitalker.training.builders import build_run  # noqa: E402
from unitalker.training.distributed import finish, init_from_env  # noqa: E402

root, out = Path(sys.argv[1]), Path(sys.argv[2])
register_test_conventions(root / "_res")
info = init_from_env("cpu")
cfg = tiny_config(root, out, "schedule.steps=3", "schedule.warmup_steps=1", "data.batch_size=2",
                  "optim.lr=0.003", "device=cpu")  # fmt: skip
trainer = build_run(cfg, dist=info).trainer
trainer.fit()
torch.save(trainer.model.state_dict(), out / f"rank{info.rank}.pt")
finish(info)

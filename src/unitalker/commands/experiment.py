"""``unitalker experiment NAME [--data DIR]``: the paper's claims in miniature on A2F-Synth."""

from __future__ import annotations

import argparse
from pathlib import Path

from unitalker.commands._args import COUNT, SEED

NAMES = ("table4", "finetune-takes", "table5", "pivot", "pca-warmup", "finetune-fraction")
HELP = """experiments (each writes NAME.md and NAME.png into --out):
  table4             multi-head model vs one head on all data converted to S0's convention
  finetune-takes     fine-tune the default model on 1, 2, 5 min of Live Link Face takes
                     (generated; configs/finetune-arkit.yaml; --data is not read)
  table5             single-dataset models vs one unified model vs unified + fine-tuned
  pivot              with / without the pivot identity under GT, cross and pivot identity
  pca-warmup         with / without PCA heads and decoder warm-up (Fig. 5)
  finetune-fraction  UniTalker encoder vs bare encoder on an unseen convention (Fig. 4)

The data is A2F-Synth in the release layout: scripts/prepare_synth.sh data  writes it
to data/a2f_synth_release (about a minute). Runs are kept under --work: rerunning an
interrupted experiment reuses the models already trained."""


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "experiment",
        help="paper experiments in miniature on A2F-Synth",
        epilog=HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("name", choices=NAMES, help="which experiment")
    p.add_argument(
        "--data",
        default="data/a2f_synth_release",
        help="A2F-Synth in the release layout (default data/a2f_synth_release)",
    )
    p.add_argument(
        "--datasets",
        nargs="+",
        default=None,
        help="dataset keys (default S0 S1 S2; pivot: S0 S2 S3; finetune-fraction: "
        "target S0, pre-training on S1-S5; table4: S0 S1 S2, add S3 for the "
        "FLAME-like params: the settings are its prefixes, evaluated on the "
        "first)",
    )
    p.add_argument(
        "--steps",
        type=COUNT,
        default=None,
        help="training steps per model (%(type)s; default per experiment: 300-900; "
        "table4: 100 per dataset of each setting)",
    )
    p.add_argument(
        "--seeds",
        type=SEED,
        nargs="+",
        default=[0],
        help="training seeds (%(type)s); with several, tables give mean ± std (default 0)",
    )
    p.add_argument(
        "--conversion",
        choices=("rig", "surface"),
        default="rig",
        help="table4: how annotations are converted to the common convention "
        "(rig: exact, the generator's maps; surface: retopology and each "
        "convention's vertex function; default rig)",
    )
    p.add_argument("--out", default="docs/experiments", help="where the table and plot go")
    p.add_argument("--work", default="runs/experiments", help="where the training runs go")
    p.add_argument("--threads", type=COUNT, default=None, help="torch CPU threads (%(type)s)")
    p.add_argument("--quick", action="store_true", help="test-sized models, at most 4 steps")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from unitalker import experiments as ex

    data = Path(args.data)
    if not data.exists() and args.name != "finetune-takes":
        raise SystemExit(
            f"error: {data}: no such data folder. Generate A2F-Synth in the release layout "
            "first: scripts/prepare_synth.sh data"
        )
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    steps = args.steps or ex.DEFAULT_STEPS[args.name]
    if args.quick:
        steps = min(steps, 4)
    if steps < 1 and args.name != "finetune-takes":  # 0 there: the recipe's own steps
        raise SystemExit(f"error: --steps must be >= 1, got {steps}")
    setup = ex.Setup(data, Path(args.out), Path(args.work), steps, args.quick, tuple(args.seeds))
    datasets = list(args.datasets or ex.DEFAULT_DATASETS[args.name])
    if args.name == "table4":
        print(ex.table4(setup, datasets, args.conversion))
    elif args.name == "finetune-takes":
        print(ex.finetune_takes(setup, datasets))
    else:
        print(ex.EXPERIMENTS[args.name](setup, datasets))
    return 0

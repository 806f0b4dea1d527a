"""``unitalker experiment {table5,pivot} --data DIR [--quick]``: the paper's claims in miniature."""

from __future__ import annotations

import argparse


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("experiment", help="paper experiments in miniature on A2F-Synth")
    p.add_argument("name", choices=("table5", "pivot"), help="which experiment")
    p.add_argument("--data", required=True, help="A2F-Synth data in the release layout (root)")
    p.add_argument("--datasets", nargs="+", default=["S0", "S1", "S2"], help="dataset keys")
    p.add_argument("--steps", type=int, default=300, help="training steps per model")
    p.add_argument("--out", default="docs/experiments", help="where the table and plot go")
    p.add_argument("--quick", action="store_true", help="test-sized models and steps")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from unitalker.training.experiments import EXPERIMENTS

    steps = min(args.steps, 4) if args.quick else args.steps
    print(EXPERIMENTS[args.name](args.data, args.out, list(args.datasets), steps, quick=args.quick))
    return 0

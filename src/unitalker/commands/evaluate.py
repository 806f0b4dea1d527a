"""``unitalker evaluate MODEL MANIFEST``: LVE, LVD, MVE, UFVE, FDD per dataset."""

from __future__ import annotations

import argparse
import sys


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("evaluate", help="lip / face metrics of a model on a manifest split")
    p.add_argument("model", help="checkpoint folder / .safetensors / bundled model name")
    p.add_argument("manifest", help="split .json, dataset folder, or root of dataset folders")
    p.add_argument("--split", default="test", help="split name (default test)")
    p.add_argument("--identity", choices=("gt", "pivot", "cross"), default="gt",
                   help="condition on each clip's subject (gt, default), the pivot identity, "
                        "or a subject of another dataset (cross: Fig. 3's cross-identity case)")  # fmt: skip
    p.add_argument("--datasets", nargs="*", default=[], help="only these dataset keys")
    p.add_argument("--baseline", action="store_true",
                   help="score the static subject template instead of the model")  # fmt: skip
    p.add_argument("--csv", help="write the table as CSV")
    p.add_argument("--json", help="write the results as JSON")
    p.add_argument("--render", type=int, default=0, metavar="N",
                   help="write N side-by-side GT / prediction mp4s (needs the renderer)")  # fmt: skip
    p.add_argument("--render-dir", default="eval_previews", help="folder for --render videos")
    p.add_argument("--flame-model", help="FLAME model for flame_params_from_dadhead")
    p.add_argument("--flame-face-indices", help=".npy FLAME face vertex subset")
    p.add_argument("--regions", action="append", default=[], metavar="DIR",
                   help="folder with your lip / upper-face region files (repeatable): the "
                        "UniTalker resources, BIWI regions/, FLAME_masks.pkl, Multiface masks; "
                        "also read from $UNITALKER_REGIONS. Without a lip region, LVE is "
                        "reported as LVE-all (all vertices)")  # fmt: skip
    p.add_argument("--max-sequences", type=int, default=None, help="per dataset")
    p.add_argument("--device", default=None, help="torch device (default: cuda if available)")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from unitalker.evaluation.evaluate import evaluate, render_previews
    from unitalker.models.checkpoint import load_model

    model = load_model(args.model, device=args.device)
    bar = tqdm(unit="seq", desc="evaluate", file=sys.stderr, dynamic_ncols=True)

    def progress(done: int, total: int) -> None:
        bar.total = total
        bar.update(done - bar.n)

    report, kept = evaluate(
        model, args.manifest, split=args.split, identity=args.identity,
        datasets=tuple(args.datasets), flame_model=args.flame_model,
        flame_face_indices=args.flame_face_indices, static_baseline=args.baseline,
        max_sequences=args.max_sequences, progress=progress, keep_predictions=args.render,
        regions=tuple(args.regions),
    )  # fmt: skip
    bar.close()
    report.model = str(args.model)
    if not report.results:
        print("no dataset could be measured (no matching head / vertex map)", file=sys.stderr)
        return 1
    print(report.table())
    if args.csv:
        report.write_csv(args.csv)
    if args.json:
        report.write_json(args.json)
    if args.render:
        out = render_previews(kept, args.render_dir)
        if isinstance(out, str):
            print(out, file=sys.stderr)
        else:
            for p in out:
                print(f"preview: {p}", file=sys.stderr)
    return 0

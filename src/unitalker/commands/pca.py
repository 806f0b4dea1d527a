"""``unitalker pca``: fit the PCA of a vertex convention (the original ``pca.npz``)."""

from __future__ import annotations

import argparse
import sys

from unitalker.commands._args import COUNT, SEED


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("pca", help="fit PCA bases of vertex conventions")
    sub = p.add_subparsers(dest="pca_command", metavar="ACTION")
    fit = sub.add_parser("fit", help="fit incremental PCA on annotation - template (scaled units)")
    fit.add_argument("manifest", help="split .json, dataset folder, or root of dataset folders")
    fit.add_argument("-o", "--output", required=True, help="output pca.npz")
    fit.add_argument(
        "--components",
        type=COUNT,
        default=512,
        help="number of components K (%(type)s; default 512)",
    )
    fit.add_argument("--split", default="train", help="split to fit on (default train)")
    fit.add_argument(
        "--convention", default=None, help="convention to fit when the manifest holds several"
    )
    fit.add_argument(
        "--batch-size",
        type=COUNT,
        default=None,
        help="frames per incremental step (%(type)s; default max(1024, 2K))",
    )
    fit.add_argument("--seed", type=SEED, default=0, help="random seed (%(type)s; default 0)")
    fit.set_defaults(func=_fit)
    p.set_defaults(func=lambda args: (p.print_help(), 1)[1])


def _fit(args: argparse.Namespace) -> int:
    from unitalker.commands._progress import StageBars
    from unitalker.data.manifest import load_manifest
    from unitalker.data.pca import cumulative_explained, fit_pca, save_pca

    manifest = load_manifest(args.manifest)
    split = None if manifest.single_split else args.split
    with StageBars() as bars:
        pca = fit_pca(
            manifest,
            args.components,
            split=split,
            convention=args.convention,
            batch_size=args.batch_size,
            seed=args.seed,
            progress=bars,
        )
    out = save_pca(args.output, pca)
    k, d = pca["components_to_data"].shape
    print(f"wrote {out}: K={k} components of D={d}")
    print("cumulative explained variance:")
    for n, v in cumulative_explained(pca["explained_variance_ratio"]):
        print(f"  K={n:<5d} {v:.4f}")
    sys.stdout.flush()
    return 0

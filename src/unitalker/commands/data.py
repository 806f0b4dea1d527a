"""``unitalker data``: convert community dataset layouts, check manifests."""

from __future__ import annotations

import argparse
import sys

_CONVERT_HELP = {
    "biwi": "BIWI, CodeTalker layout: vertices_npy/F2_e01.npy, wav/F2_e01.wav, templates.pkl (-> D0)",
    "vocaset": "VOCASET, FaceFormer layout: vertices_npy/<subject>_sentenceNN.npy, wav/, templates.pkl (-> D1)",
    "multiface": "Multiface, FaceDiffuser layout: vertices_npy/NN_SS.npy, wav/, templates.pkl (-> D2)",
    "3detf": "3D-ETF: {HDTF,RAVDESS}/audio/*.wav + {HDTF,RAVDESS}/blendshape/*.npy (-> D3_HDTF, D4_RAVDESS)",
    "folder": "any folder of audio + .npy annotations matched by file stem",
}


def _ratios(text: str) -> tuple[float, float, float]:
    try:
        parts = tuple(float(x) for x in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected three comma-separated numbers, got {text!r}"
        ) from None
    if len(parts) != 3:
        raise argparse.ArgumentTypeError(f"expected three comma-separated numbers, got {text!r}")
    return parts  # type: ignore[return-value]


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "data", help="convert datasets to the manifest format; check manifests"
    )
    sub = p.add_subparsers(dest="data_command", metavar="ACTION")

    conv = sub.add_parser(
        "convert", help="convert a community dataset layout to the manifest format"
    )
    csub = conv.add_subparsers(dest="layout", metavar="LAYOUT")
    for name, text in _CONVERT_HELP.items():
        c = csub.add_parser(name, help=text, description=text)
        c.add_argument("src", help="source folder")
        c.add_argument(
            "dst", help="destination folder (must be empty or absent unless --overwrite)"
        )
        c.add_argument(
            "--overwrite",
            action="store_true",
            help="write into a non-empty DST (replaces only our files)",
        )
        c.add_argument("--mode", choices=("copy", "symlink", "hardlink"), default="copy",
                       help="how clip files get into DST (default: copy)")  # fmt: skip
        if name in ("3detf", "folder"):
            c.add_argument("--subject-regex", default=None,
                           help="regex searched in each file stem; group 1 is the subject")  # fmt: skip
            c.add_argument("--split-by", choices=("ratio", "subject"), default="ratio",
                           help="assign clips (ratio) or whole subjects to train/val/test; "
                                "3detf: only where the source states no split "
                                "(<subset>/{train,val,test}.txt)")  # fmt: skip
            c.add_argument(
                "--ratios",
                type=_ratios,
                default=(0.8, 0.1, 0.1),
                help="train,val,test (default 0.8,0.1,0.1)",
            )
            c.add_argument("--seed", type=int, default=0, help="seed of the split assignment")
        if name == "folder":
            c.add_argument(
                "--convention", required=True, help="registered convention name of the annotations"
            )
            c.add_argument("--fps", type=float, required=True, help="native annotation frame rate")
            c.add_argument(
                "--dataset", default="custom", help="dataset key written into the manifest"
            )
            c.add_argument(
                "--audio-dir", default="audio", help="audio sub-folder of SRC (default: audio)"
            )
            c.add_argument(
                "--annot-dir",
                default="annotations",
                help="annotation sub-folder of SRC (default: annotations)",
            )
            c.add_argument(
                "--templates",
                default=None,
                help=".npy/.npz/.pkl neutral templates (default: zeros)",
            )
        else:
            c.add_argument(
                "--dataset", default=None, help="dataset key (default: the paper's D-key)"
            )
            c.add_argument(
                "--convention",
                default=None,
                help="registered convention of the annotations (default: the dataset's own)",
            )
        c.set_defaults(func=_convert)

    chk = sub.add_parser(
        "check", help="verify every entry of a manifest; exit 1 if anything is wrong"
    )
    chk.add_argument("manifest", help="split .json, dataset folder, or root of dataset folders")
    chk.add_argument("--split", default="all", help="split to check (default: all)")
    chk.add_argument(
        "--tolerance", type=float, default=0.25, help="allowed audio/annotation duration gap in s"
    )
    chk.add_argument(
        "--tolerance-frac", type=float, default=0.05, help="... or this fraction of the duration"
    )
    chk.add_argument(
        "--headers-only", action="store_true", help="read audio headers instead of decoding"
    )
    chk.set_defaults(func=_check)
    p.set_defaults(func=lambda args: _help(p, args))


def _help(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    parser.print_help()
    return 1


def _convert(args: argparse.Namespace) -> int:
    from unitalker.data.convert import CONVERTERS

    if not args.layout:
        print("unitalker data convert: choose a layout: " + ", ".join(CONVERTERS), file=sys.stderr)
        return 1
    kw = {"overwrite": args.overwrite, "mode": args.mode}
    if args.layout in ("3detf", "folder"):
        kw.update(split_by=args.split_by, ratios=args.ratios, seed=args.seed)
        if args.subject_regex:
            kw["subject_regex"] = args.subject_regex
    if args.layout == "folder":
        kw.update(convention=args.convention, fps=args.fps, dataset=args.dataset,
                  audio_dir=args.audio_dir, annot_dir=args.annot_dir, templates=args.templates)  # fmt: skip
    else:
        if args.dataset:
            kw["dataset"] = args.dataset
        if args.convention:
            kw["convention"] = args.convention
    report = CONVERTERS[args.layout](args.src, args.dst, **kw)
    for folder, counts in report.counts.items():
        where = report.dst if folder == "." else report.dst / folder
        parts = ", ".join(f"{k} {v}" for k, v in counts.items())
        print(f"{where}: {report.subjects[folder]} subjects; clips: {parts}")
    if report.skipped:
        print(f"skipped {len(report.skipped)} file(s):")
        for s in report.skipped:
            print(f"  - {s}")
    return 0


def _check(args: argparse.Namespace) -> int:
    from unitalker.data.check import check_manifest, format_report

    report = check_manifest(
        args.manifest,
        split=args.split,
        tolerance_s=args.tolerance,
        tolerance_frac=args.tolerance_frac,
        decode_audio=not args.headers_only,
        progress=sys.stderr.isatty(),
    )
    print(format_report(report))
    return 0 if report.ok else 1

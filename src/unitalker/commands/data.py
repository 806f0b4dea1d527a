"""``unitalker data``: convert community dataset layouts, check manifests."""

from __future__ import annotations

import argparse
import sys

from unitalker.commands._args import FPS, NON_NEGATIVE_SECONDS, SEED, Number

_CONVERT_HELP = {
    "biwi": "BIWI, CodeTalker layout: vertices_npy/F2_e01.npy, wav/F2_e01.wav, templates.pkl (-> D0)",
    "vocaset": "VOCASET, FaceFormer layout: vertices_npy/<subject>_sentenceNN.npy, wav/, templates.pkl (-> D1)",
    "multiface": "Multiface, FaceDiffuser layout: vertices_npy/NN_SS.npy, wav/, templates.pkl (-> D2)",
    "3detf": "3D-ETF: {HDTF,RAVDESS}/audio/*.wav + {HDTF,RAVDESS}/blendshape/*.npy (-> D3_HDTF, D4_RAVDESS)",
    "folder": "any folder of audio + .npy annotations matched by file stem",
    "livelinkface": "Live Link Face (iOS) takes: per take folder a CSV (Timecode, BlendShapeCount, "
    "61 channels) + the .mov (its audio track) or a .wav",
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
        c.add_argument(
            "--mode",
            choices=("copy", "symlink", "hardlink"),
            default="copy",
            help="how clip files get into DST (default: copy)",
        )
        if name in ("3detf", "folder"):
            c.add_argument(
                "--subject-regex",
                default=None,
                help="regex searched in each file stem; group 1 is the subject",
            )
        if name in ("3detf", "folder", "livelinkface"):
            c.add_argument(
                "--split-by",
                choices=("ratio", "subject"),
                default="ratio",
                help="assign clips (ratio) or whole subjects to train/val/test; "
                "3detf: only where the source states no split "
                "(<subset>/{train,val,test}.txt)",
            )
            c.add_argument(
                "--ratios",
                type=_ratios,
                default=(0.8, 0.1, 0.1),
                help="train,val,test (default 0.8,0.1,0.1)",
            )
            c.add_argument(
                "--seed", type=SEED, default=0, help="seed of the split assignment (%(type)s)"
            )
        if name == "livelinkface":
            c.add_argument(
                "--convention",
                default=None,
                help="blendshape convention to map the ARKit channels onto by name "
                "(default synth_arkit52, the bundled model's ARKit head); with "
                "--channels all: the new convention's name (default livelinkface61)",
            )
            c.add_argument(
                "--channels",
                choices=("convention", "all"),
                default="convention",
                help="all: keep all 61 channels (head and eye rotations too) as a new "
                "convention written to DST/convention.yaml",
            )
            c.add_argument("--dataset", default="LLF", help="dataset key (default LLF)")
            c.add_argument(
                "--subject", default=None, help="the performer (default: SRC's folder name)"
            )
            c.add_argument(
                "--fps",
                type=FPS,
                default=None,
                help="the takes' frame rate (%(type)s; default: inferred from the timecodes)",
            )
            c.add_argument(
                "--split",
                default=None,
                help="put every take in this split (e.g. test for a held-out "
                "session) instead of --split-by/--ratios",
            )
        elif name == "folder":
            c.add_argument(
                "--convention", required=True, help="registered convention name of the annotations"
            )
            c.add_argument(
                "--fps", type=FPS, required=True, help="native annotation frame rate (%(type)s)"
            )
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
        "--tolerance",
        type=NON_NEGATIVE_SECONDS,
        default=0.25,
        help="allowed audio/annotation duration gap in s (%(type)s; default 0.25)",
    )
    chk.add_argument(
        "--tolerance-frac",
        type=Number(float, 0, 1),
        default=0.05,
        help="... or this fraction of the duration (%(type)s; default 0.05)",
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
    if args.layout in ("3detf", "folder", "livelinkface"):
        kw.update(split_by=args.split_by, ratios=args.ratios, seed=args.seed)
        if getattr(args, "subject_regex", None):
            kw["subject_regex"] = args.subject_regex
    if args.layout == "livelinkface":
        kw.update(
            convention=args.convention,
            channels=args.channels,
            dataset=args.dataset,
            subject=args.subject,
            fps=args.fps,
            split=args.split,
        )
    elif args.layout == "folder":
        kw.update(
            convention=args.convention,
            fps=args.fps,
            dataset=args.dataset,
            audio_dir=args.audio_dir,
            annot_dir=args.annot_dir,
            templates=args.templates,
        )
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
    from unitalker.commands._progress import StageBars
    from unitalker.data.check import check_manifest, format_report

    with StageBars() as bars:
        report = check_manifest(
            args.manifest,
            split=args.split,
            tolerance_s=args.tolerance,
            tolerance_frac=args.tolerance_frac,
            decode_audio=not args.headers_only,
            progress=bars if sys.stderr.isatty() else None,
        )
    print(format_report(report))
    return 0 if report.ok else 1

"""``unitalker render``: a preview video of saved results (an ``.npz`` from the npz writer)."""

from __future__ import annotations

import argparse
from pathlib import Path

from unitalker.commands._args import Number


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "render",
        help="render saved results (.npz) with the audio into a preview mp4",
        description=(
            "Render the heads of a results file side by side (meshes where the convention "
            "has one, bar charts of the channels otherwise) and mux the audio, to an mp4. "
            "Rendering is offscreen with OpenGL over EGL (Mesa works on CPU)."
        ),
    )
    p.add_argument(
        "results", type=Path, metavar="OUTPUT.npz", help="results written by the npz exporter"
    )
    p.add_argument("audio", type=Path, metavar="AUDIO", help="the audio the results were made from")
    p.add_argument(
        "-o",
        "--output",
        type=Path,
        default=None,
        help="video path (default: OUTPUT.mp4 next to the npz)",
    )
    p.add_argument(
        "--heads",
        nargs="+",
        default=None,
        metavar="CONVENTION",
        help="heads to show, in order (default: all)",
    )
    p.add_argument(
        "--size",
        type=Number(int, 16, 4096),
        default=512,
        help="panel size in pixels (%(type)s; default: 512)",
    )
    p.add_argument(
        "--fps",
        type=Number(float, 1, 240),
        default=None,
        help="video frame rate (%(type)s; default: the highest head fps)",
    )
    p.add_argument(
        "--no-idle",
        dest="idle",
        action="store_false",
        help="no procedural blink or head sway on the synth heads (draw exactly the data)",
    )
    p.add_argument("--overwrite", action="store_true", help="replace an existing video")
    p.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from unitalker.audio import load_audio
    from unitalker.cli import CLIError
    from unitalker.export import load_npz
    from unitalker.render.renderer import RendererUnavailable
    from unitalker.render.video import render_video

    out = args.output or args.results.with_suffix(".mp4")
    if out.exists() and not args.overwrite:
        raise CLIError(f"{out} exists (use --overwrite to replace it)")
    if args.size < 16:
        raise CLIError(f"--size must be at least 16, got {args.size}")
    if args.fps is not None and args.fps <= 0:
        raise CLIError(f"--fps must be positive, got {args.fps}")
    results = load_npz(args.results)
    if args.heads:
        missing = [h for h in args.heads if h not in results]
        if missing:
            raise CLIError(f"heads not in {args.results}: {missing}; it has: {', '.join(results)}")
    wav = load_audio(args.audio)
    bar = None
    progress = None
    if args.progress:
        from tqdm import tqdm

        def progress(done: int, total: int) -> None:
            nonlocal bar
            if bar is None:  # created on the first frame, when the total is known
                bar = tqdm(total=total, unit="frame", desc="render")
            bar.update(done - bar.n)

    try:
        path = render_video(
            results,
            wav,
            out,
            fps=args.fps,
            size=args.size,
            heads=args.heads,
            progress=progress,
            overwrite=args.overwrite,
            idle=args.idle,
        )
    except RendererUnavailable as e:
        raise CLIError(f"cannot render offscreen: {e}") from e
    finally:
        if bar is not None:
            bar.close()
    print(path)
    return 0

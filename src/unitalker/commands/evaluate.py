"""``unitalker evaluate MODEL MANIFEST``: LVE, LVD, MVE, UFVE, FDD per dataset."""

from __future__ import annotations

import argparse
import sys

from unitalker.commands._args import COUNT, NON_NEGATIVE_INT


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("evaluate", help="lip / face metrics of a model on a manifest split")
    p.add_argument("model", help="checkpoint folder / .safetensors / bundled model name")
    p.add_argument("manifest", help="split .json, dataset folder, or root of dataset folders")
    p.add_argument("--split", default="test", help="split name (default test)")
    p.add_argument(
        "--identity",
        choices=("gt", "pivot", "cross"),
        default="gt",
        help="condition on each clip's subject (gt, default), the pivot identity, "
        "or a subject of another dataset (cross: Fig. 3's cross-identity case)",
    )
    p.add_argument("--datasets", nargs="*", default=[], help="only these dataset keys")
    p.add_argument(
        "--baseline",
        action="store_true",
        help="score the static subject template instead of the model",
    )
    p.add_argument("--csv", help="write the table as CSV")
    p.add_argument("--json", help="write the results as JSON")
    p.add_argument(
        "--render",
        type=NON_NEGATIVE_INT,
        default=0,
        metavar="N",
        help="write N side-by-side GT / prediction mp4s (%(type)s; needs the renderer)",
    )
    p.add_argument("--render-dir", default="eval_previews", help="folder for --render videos")
    p.add_argument("--flame-model", help="FLAME model for flame_params_from_dadhead")
    p.add_argument("--flame-face-indices", help=".npy FLAME face vertex subset")
    p.add_argument(
        "--regions",
        action="append",
        default=[],
        metavar="DIR",
        help="folder with your lip / upper-face region files (repeatable): the "
        "UniTalker resources, BIWI regions/, FLAME_masks.pkl, Multiface masks; "
        "also read from $UNITALKER_REGIONS. Without a lip region, LVE is "
        "reported as LVE-all (all vertices)",
    )
    p.add_argument("--max-sequences", type=COUNT, default=None, help="per dataset (%(type)s)")
    p.add_argument("--device", default=None, help="torch device (default: cuda if available)")
    p.add_argument(
        "--unseen",
        action="store_true",
        help="held-out voices report: LVE / MVE on test, test_unseen_voice and "
        "test_unseen_engine vs the static baseline, and gap = unseen / seen",
    )
    p.add_argument(
        "--closures",
        action="store_true",
        help="also report bilabial closures (A2F-Synth clips, from their phoneme timelines): "
        "the share of /p/ /b/ /m/ where the model's lips close, beside the labels' (on the "
        "split; with --unseen on it and both unseen splits; the model runs once more over "
        "them); added to --json as 'closures'",
    )
    p.set_defaults(func=_run)
    s = subparsers.add_parser(
        "evaluate-speech",
        help="recorded-speech check: aligned labels + label-free mouth checks on audio files",
        description="Run the model on recorded speech (default: the alsa-utils voice clips in "
        "/usr/share/sounds/alsa; --set pocketsphinx: the read speech of pocketsphinx-testdata). "
        "With words (file stem or --text), the clip is force-aligned with "
        "PocketSphinx and scored against the articulation model's labels (LVE / MVE vs static); on any "
        "audio: correlation of mouth opening with loudness (dB) and the opening in frames 40 dB "
        "below the peak (rule: <= 0.02 of the open range).",
    )
    s.add_argument("model", help="checkpoint folder / .safetensors / bundled model name")
    s.add_argument("audio", nargs="*", help="audio files (default: the alsa-utils clips)")
    s.add_argument(
        "--text",
        action="append",
        default=None,
        help="words of each audio file, in order (default: none = label-free only)",
    )
    s.add_argument(
        "--set",
        dest="sets",
        action="append",
        choices=("alsa", "pocketsphinx"),
        default=None,
        help="recorded set(s) to run instead of audio files (repeatable; default: alsa): "
        "'alsa' = the 8 voice clips of alsa-utils (/usr/share/sounds/alsa), 'pocketsphinx' = "
        "the 10 transcribed recordings of pocketsphinx-testdata (read speech from LibriVox "
        "and spoken card names, /usr/share/pocketsphinx/test/data)",
    )
    s.add_argument(
        "--close-lips",
        action="store_true",
        help="score the output with its lips closed on the words' bilabials, as `animate "
        "--text` writes it (clips with words only; the alignment is the labels', so the "
        "closures are theirs by construction)",
    )
    s.add_argument("--json", help="write per-clip and summary results as JSON")
    s.add_argument("--device", default=None, help="torch device (default: cuda if available)")
    s.set_defaults(func=_run_speech)


def _run(args: argparse.Namespace) -> int:
    from unitalker.evaluation.evaluate import evaluate, render_previews
    from unitalker.models.checkpoint import load_model

    model = load_model(args.model, device=args.device)
    bar, progress = _sequence_bar("evaluate")
    if args.unseen:
        return _run_unseen(args, model, progress, bar)
    report, kept = evaluate(
        model,
        args.manifest,
        split=args.split,
        identity=args.identity,
        datasets=tuple(args.datasets),
        flame_model=args.flame_model,
        flame_face_indices=args.flame_face_indices,
        static_baseline=args.baseline,
        max_sequences=args.max_sequences,
        progress=progress,
        keep_predictions=args.render,
        regions=tuple(args.regions),
    )
    bar.close()
    report.model = str(args.model)
    if not report.results:
        print("no dataset could be measured (no matching head / vertex map)", file=sys.stderr)
        return 1
    print(report.table())
    if args.csv:
        report.write_csv(args.csv)
    _write_json(args, report.to_dict(), _closures(args, model, (args.split,)))
    if args.render:
        out = render_previews(kept, args.render_dir)
        if isinstance(out, str):
            print(out, file=sys.stderr)
        else:
            for p in out:
                print(f"preview: {p}", file=sys.stderr)
    return 0


def _run_unseen(args: argparse.Namespace, model, progress, bar) -> int:  # noqa: ANN001
    from unitalker.cli import CLIError
    from unitalker.data import load_manifest
    from unitalker.evaluation.voices import UNSEEN_SPLITS, unseen_report

    try:
        rep = unseen_report(
            model,
            args.manifest,
            seen_split=args.split,
            datasets=tuple(args.datasets),
            progress=progress,
        )
    except ValueError as e:
        raise CLIError(str(e)) from None
    finally:
        bar.close()
    rep.model = str(args.model)
    print(rep.table())
    if args.csv:
        rep.write_csv(args.csv)
    present = tuple(s for s in UNSEEN_SPLITS if load_manifest(args.manifest).has_split(s))
    _write_json(args, rep.to_dict(), _closures(args, model, (args.split, *present)))
    return 0


def _sequence_bar(desc: str):  # noqa: ANN202
    """A tqdm bar over sequences and the ``progress(done, total)`` callback that feeds it."""
    from tqdm import tqdm

    bar = tqdm(unit="seq", desc=desc, file=sys.stderr, dynamic_ncols=True)

    def progress(done: int, total: int) -> None:
        bar.total = total
        bar.update(done - bar.n)

    return bar, progress


def _closures(args: argparse.Namespace, model, splits: tuple[str, ...]) -> dict | None:  # noqa: ANN001
    """With ``--closures``: print the bilabial-closure table of ``splits``; its dict."""
    if not args.closures:
        return None
    if args.baseline:
        print(
            "--closures: not measured for --baseline (the static template never opens)",
            file=sys.stderr,
        )
        return None
    from unitalker.cli import CLIError
    from unitalker.evaluation.closures import closure_report

    bar, progress = _sequence_bar("closures")

    try:
        rep = closure_report(
            model,
            args.manifest,
            splits=splits,
            datasets=tuple(args.datasets),
            max_sequences=args.max_sequences,
            progress=progress,
        )
    except ValueError as e:
        raise CLIError(str(e)) from None
    finally:
        bar.close()
    rep.model = str(args.model)
    print()
    print(rep.table())
    return rep.to_dict()


def _write_json(args: argparse.Namespace, doc: dict, closures: dict | None) -> None:
    if not args.json:
        return
    import json
    from pathlib import Path

    if closures is not None:
        doc = {**doc, "closures": closures}
    Path(args.json).write_text(json.dumps(doc, indent=2) + "\n")


def _rule(ok: float | None) -> str:
    return "" if ok is None else ("met" if ok else "NOT met")


def _run_speech(args: argparse.Namespace) -> int:
    import json
    from dataclasses import asdict
    from pathlib import Path

    from tqdm import tqdm

    from unitalker.cli import CLIError
    from unitalker.evaluation.voices import SPEECH_SETS, speech_check, speech_summary
    from unitalker.models.checkpoint import load_model

    if args.audio and args.sets:
        raise CLIError("give audio files or --set, not both")
    if args.audio:
        texts = args.text or []
        if texts and len(texts) != len(args.audio):
            raise CLIError(f"--text given {len(texts)} time(s) for {len(args.audio)} audio file(s)")
        for a in args.audio:
            if not Path(a).is_file():
                raise CLIError(f"{a}: audio file not found")
        clips = list(zip(args.audio, texts or [None] * len(args.audio), strict=True))
    else:
        if args.text:
            raise CLIError("--text needs audio files (a --set brings its own words)")
        clips = []
        for name in dict.fromkeys(args.sets or ["alsa"]):
            found = SPEECH_SETS[name].clips()
            if not found:
                rec = SPEECH_SETS[name]
                given = f"--set {name}:" if args.sets else "no audio given and"
                raise CLIError(
                    f"{given} no recorded clips in {rec.folder} (apt-get install {rec.package})"
                )
            clips += found
    model = load_model(args.model, device=args.device)
    bar = tqdm(total=len(clips), unit="clip", desc="speech", file=sys.stderr)
    try:
        results = speech_check(
            model,
            clips,
            progress=lambda d, n: bar.update(d - bar.n),
            close_lips=args.close_lips,
        )
    finally:
        bar.close()
    summary = speech_summary(results)
    print(
        "| head | LVE | LVE static | ratio | MVE | MVE static | r(opening, dB) | silence opening | "
        "silence rule | opening in aligned pauses | opening in added pauses | pause rule | "
        "r(jawOpen, dB) | jawOpen in silence |"
    )
    print(
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: | ---: | --- | ---: | ---: |"
    )

    def f(row: dict, k: str, fmt: str) -> str:
        return format(row[k], fmt) if k in row else ""

    for conv, row in summary.items():
        print(
            f"| `{conv}` | {f(row, 'LVE', '.3e')} | {f(row, 'LVE_static', '.3e')} | {f(row, 'LVE_ratio', '.2f')} | "
            f"{f(row, 'MVE', '.3e')} | {f(row, 'MVE_static', '.3e')} | {row['r_loudness']:.2f} | "
            f"{row['silence_open_max']:.3f} | {'met' if row['silence_ok'] else 'NOT met'} | "
            f"{f(row, 'pause_open_max', '.3f')} | {f(row, 'padded_pause_max', '.3f')} | "
            f"{_rule(row.get('padded_pause_ok'))} | "
            f"{f(row, 'jaw_r_loudness', '.2f')} | {f(row, 'jaw_silence_max', '.3f')} |"
        )
    for conv, row in summary.items():
        if "bilabials" in row:
            print(
                f"bilabials ({conv}): {row['bilabials']:.0f} aligned; lips closed by the model in "
                f"{row['bilabials_closed']:.0%}, by the labels in {row['bilabials_closed_labels']:.0%}"
            )
    for conv, row in summary.items():
        if "r_loudness_labels" in row:
            print(
                f"labels ({conv}): r(opening, dB) {row['r_loudness_labels']:.2f}, silence "
                f"opening {row.get('silence_open_labels_max', float('nan')):.3f} (the same "
                "checks on the articulation labels of the alignment)"
            )
    print(
        f"\n{len(results)} clip(s); opening in units of the open range (wide /a/); silence = frames "
        "40 dB below the clip's peak; added pauses = the middle of 1 s of -60 dBFS noise "
        "before and after each clip; rule: median opening <= 0.02 (max over clips shown)"
    )
    if args.json:
        doc = {
            "model": str(args.model),
            "summary": summary,
            "clips": [
                {
                    **{
                        k: v for k, v in asdict(r).items() if k not in ("label_free", "labels_free")
                    },
                    "label_free": {c: asdict(x) for c, x in r.label_free.items()},
                    "labels_free": {c: asdict(x) for c, x in r.labels_free.items()},
                }
                for r in results
            ],
        }
        Path(args.json).write_text(json.dumps(doc, indent=2) + "\n")
    return 0

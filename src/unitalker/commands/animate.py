"""``unitalker animate``: audio files or folders in, one animation per head out."""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from unitalker.commands._args import NON_NEGATIVE_SECONDS, Number

if TYPE_CHECKING:
    from unitalker.models.protocol import TalkerModel

WINDOW = Number(float, 0, 3600)
HELP = "animate audio files (or folders of them) with every requested head"


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "animate",
        help=HELP,
        description=HELP + ". Writes OUT/<stem>.npz (all heads) and per-head files for "
        "other formats (OUT/<stem>_<head>.csv ...).",
    )
    p.add_argument(
        "audio", nargs="+", metavar="AUDIO", help="audio files or folders (searched recursively)"
    )
    p.add_argument(
        "-m",
        "--model",
        default=None,
        help="bundled model name, checkpoint folder/.safetensors, .onnx, or a Hugging Face Hub "
        "repo id OWNER/NAME (fetched once into the HF cache; default: the bundled default model)",
    )
    p.add_argument(
        "--heads", default=None, help="comma-separated heads (default: all of the model's)"
    )
    p.add_argument(
        "--identity",
        default=None,
        help="identity: 'pivot' (default), an index, or a name like D1:FaceTalk_...",
    )
    p.add_argument(
        "-o", "--output", default=".", type=Path, help="output folder (default: current folder)"
    )
    p.add_argument(
        "-f", "--format", default="npz", help="comma-separated formats, or 'all' (default: npz)"
    )
    p.add_argument(
        "--precision",
        choices=("fp32", "bf16"),
        default="fp32",
        help="bf16: a bfloat16 copy of the model (about 2x faster on CPUs with bf16 "
        "instructions, AVX512 / AMX; far slower on AVX2-only CPUs, which get a warning)",
    )
    p.add_argument(
        "--backend",
        choices=("torch", "onnxruntime"),
        default="torch",
        help="onnxruntime: export (or take -m MODEL.onnx) and run with onnxruntime",
    )
    p.add_argument(
        "--window",
        type=WINDOW,
        default=25.0,
        help="window length in seconds for long audio, 0 (whole clip at once) or at least 1 "
        "(%(type)s; default 25)",
    )
    p.add_argument(
        "--overlap",
        type=NON_NEGATIVE_SECONDS,
        default=5.0,
        help="cross-fade between windows in seconds, less than --window (%(type)s; default 5)",
    )
    p.add_argument(
        "--glb-max-error",
        type=Number(float, 0, 1, lo_open=True),
        default=0.01,
        metavar="FRACTION",
        help="glb of vertex heads: playback error bound as a fraction of the motion range "
        "(%(type)s; default 0.01; the error is stated in the file's extras)",
    )
    p.add_argument(
        "--glb-lossless",
        action="store_true",
        help="glb of vertex heads: keep every motion component (playback equals the frames)",
    )
    p.add_argument(
        "--windows",
        choices=("ours", "original"),
        default="ours",
        help="long-audio windows: ours (default; grid-aligned, last window ends at the end) or "
        "original (the original demo's 25 s windows at 0, 20, 40 s... and its cross-fade, "
        "reproduced exactly; --window / --overlap are then unused)",
    )
    p.add_argument(
        "--device", default=None, help="torch device (default: cuda if available, else cpu)"
    )
    p.add_argument(
        "--mp4-size",
        type=Number(int, 16, 4096),
        default=None,
        metavar="PIXELS",
        help="mp4 preview: panel size (%(type)s; default: 512, smaller when more than 3 "
        "panels, so that the video is at most 1536 pixels wide)",
    )
    p.add_argument(
        "--no-idle",
        dest="idle",
        action="store_false",
        help="mp4 preview: no procedural blink or head sway (they are never in the data)",
    )
    words = p.add_mutually_exclusive_group()
    words.add_argument(
        "--text",
        default=None,
        metavar="WORDS",
        help="the words said in the audio file (one input; English): the audio is "
        "force-aligned to them with PocketSphinx and the lips close on every /p/ /b/ /m/ "
        "(A2F-Synth heads; the rest of the motion is the model's)",
    )
    words.add_argument(
        "--text-beside",
        action="store_true",
        help="as --text, with each audio file's words read from the .txt file beside it "
        "(speech.wav -> speech.txt); a file without one fails",
    )
    p.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    p.add_argument(
        "--allow-any-container",
        action="store_true",
        help="let FFmpeg open any input it can (HLS playlists, concat lists, ...); by default "
        "only plain audio/video files are read, since such lists can make FFmpeg read other "
        "files. Use only for your own files",
    )
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    p.add_argument(
        "--profile",
        action="store_true",
        help="print the wall and CPU seconds of each stage (startup, model, inference, each "
        "output) to stderr",
    )
    p.set_defaults(func=run)


class Profile:
    """Wall and CPU seconds of the stages of a run, printed by ``--profile``.

    CPU is user + system time of the process that did the stage, all its threads (the
    encoder's, llvmpipe's, BLAS's); outputs written by the child process while the mp4
    renders overlap the mp4 in wall time, so their rows do not add up to the total.
    """

    def __init__(self) -> None:
        self.rows: list[tuple[str, float | None, float]] = []
        # What the interpreter start and the imports before the command cost.
        self.rows.append(("startup (interpreter, imports)", None, time.process_time()))
        self._wall0 = time.perf_counter()

    def add(self, name: str, wall: float | None, cpu: float) -> None:
        self.rows.append((name, wall, cpu))

    @contextlib.contextmanager
    def stage(self, name: str) -> Iterator[None]:
        t, c = time.perf_counter(), time.process_time()
        try:
            yield
        finally:
            self.add(name, time.perf_counter() - t, time.process_time() - c)

    def table(self) -> str:
        t = os.times()
        total_cpu = t.user + t.system + t.children_user + t.children_system
        lines = [f"{'stage':<44} {'wall s':>7} {'cpu s':>7}"]
        for name, wall, cpu in self.rows:
            w = "" if wall is None else f"{wall:7.2f}"
            lines.append(f"{name:<44} {w:>7} {cpu:7.2f}")
        wall = time.perf_counter() - self._wall0
        lines.append(f"{'total (cpu: this process and its children)':<44} {'':>7} {total_cpu:7.2f}")
        lines.append(f"{'wall after startup':<44} {wall:7.2f}")
        return "\n".join(lines)


def collect_inputs(paths: list[str]) -> tuple[list[tuple[Path, Path]], list[tuple[str, str]]]:
    """Expand files and folders into ``(file, relative output subfolder)`` pairs.

    Returns the pairs and ``(path, problem)`` for inputs that do not exist / hold no audio.
    """
    from unitalker.audio import AUDIO_EXTENSIONS

    exts = {*AUDIO_EXTENSIONS, ".npy"}
    found: list[tuple[Path, Path]] = []
    bad: list[tuple[str, str]] = []
    for raw in paths:
        p = Path(raw)
        if p.is_dir():
            files = sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in exts)
            if not files:
                bad.append((raw, f"no audio files ({', '.join(sorted(exts))}) in this folder"))
            found += [(f, f.parent.relative_to(p)) for f in files]
        elif p.exists():
            found.append((p, Path()))
        else:
            bad.append((raw, "no such file or folder"))
    return found, bad


def _stems(items: list[tuple[Path, Path]]) -> list[str]:
    # Two inputs with the same stem into the same folder (a.wav, a.mp3): keep them apart.
    keys = [(rel, f.stem) for f, rel in items]
    dup = {k for k in keys if keys.count(k) > 1}
    return [
        f"{f.stem}_{f.suffix.lstrip('.')}" if (rel, f.stem) in dup else f.stem for f, rel in items
    ]


def load_runner(
    model: str | None, backend: str, device: str | None, heads: list[str] | None
) -> TalkerModel:
    """The model object ``animate`` runs: a UniTalker, or an OnnxUniTalker."""
    from unitalker.cli import CLIError

    if backend == "onnxruntime":
        from unitalker.inference.onnx import OnnxUniTalker, export_onnx

        if model is not None and str(model).endswith(".onnx"):
            return OnnxUniTalker(model)
        import tempfile

        from unitalker.models.checkpoint import load_model

        torch_model = load_model(model, device="cpu")
        tmp = Path(tempfile.mkdtemp(prefix="unitalker-onnx-")) / "model.onnx"
        print(
            f"exporting to ONNX ({tmp}); save it once with `unitalker export onnx` and pass -m FILE.onnx",
            file=sys.stderr,
        )
        export_onnx(torch_model, tmp, heads=heads)
        return OnnxUniTalker(tmp)
    if model is not None and str(model).endswith(".onnx"):
        raise CLIError(f"{model}: an ONNX file needs --backend onnxruntime")
    from unitalker.models.checkpoint import load_model

    return load_model(model, device=device)


def run(args: argparse.Namespace) -> int:
    profile = Profile() if getattr(args, "profile", False) else None
    from tqdm import tqdm

    from unitalker.cli import CLIError
    from unitalker.export import available_formats

    out: Path = args.output
    if out.exists() and not out.is_dir():
        raise CLIError(f"output folder {out} exists and is a file")
    formats = [f.strip().lower() for f in args.format.split(",") if f.strip()]
    known = available_formats()
    unknown = [f for f in formats if f != "all" and f not in known]
    if unknown or not formats:
        raise CLIError(
            f"unknown format(s) {unknown or args.format!r}; known: {', '.join(known)}, all"
        )
    if not 0 < args.glb_max_error < 1:
        raise CLIError(f"--glb-max-error must be in (0, 1), got {args.glb_max_error}")
    if args.backend == "onnxruntime" and args.precision != "fp32":
        raise CLIError(
            "--precision bf16 is for the torch backend; onnxruntime runs the exported fp32 graph"
        )
    if 0 < args.window < 1:
        raise CLIError(f"--window {args.window:g}: use 0 (whole clip) or at least 1 second")
    if args.window > 0 and args.overlap >= args.window:
        raise CLIError(f"--overlap {args.overlap:g} must be shorter than --window {args.window:g}")
    heads = [h.strip() for h in args.heads.split(",") if h.strip()] if args.heads else None

    items, bad = collect_inputs(args.audio)
    with profile.stage("load model") if profile else contextlib.nullcontext():
        model = load_runner(args.model, args.backend, args.device, heads)
    if heads is not None:
        missing = [h for h in heads if h not in model.heads]
        if missing:
            raise CLIError(
                f"unknown head(s) {', '.join(missing)}; this model has: {', '.join(model.heads)}"
            )
    model.identity_index(args.identity)  # unknown identity: fail before any work
    text = getattr(args, "text", None)
    beside = getattr(args, "text_beside", False)
    if text is not None or beside:
        if text is not None and len(items) + len(bad) != 1:
            raise CLIError(
                "--text gives the words of one audio file; for several, put each file's "
                "words in a .txt file beside it and use --text-beside"
            )
        if text is not None and not text.strip():
            raise CLIError("--text is empty")
        _check_heads_take_words(model, heads or model.heads)

    failures: list[tuple[str, str]] = list(bad)
    written = 0
    t_start = time.perf_counter()
    files_bar = tqdm(
        total=len(items),
        desc="files",
        unit="file",
        disable=args.quiet or len(items) < 2,
        file=sys.stderr,
    )
    for (path, rel), stem in zip(items, _stems(items), strict=True):
        try:
            words = _words_beside(path) if beside else text
            paths = animate_file(
                model,
                path,
                out / rel,
                stem,
                args,
                heads,
                quiet=args.quiet,
                profile=profile,
                words=words,
            )
            written += 1
            for p in paths:
                tqdm.write(str(p), file=sys.stdout)
        except (ValueError, KeyError, OSError, RuntimeError) as e:
            msg = e.args[0] if isinstance(e, KeyError) and e.args else str(e)
            msg = str(msg).removeprefix(f"{path}: ")  # the path is printed once, in front
            failures.append((str(path), msg))
            tqdm.write(f"failed: {path}: {msg}", file=sys.stderr)
        files_bar.update(1)
    files_bar.close()
    dt = time.perf_counter() - t_start
    print(
        f"{written} of {len(items) + len(bad)} input(s) animated in {dt:.1f} s -> {out}",
        file=sys.stderr,
    )
    if profile is not None:
        print(profile.table(), file=sys.stderr)
    if failures:
        print(f"{len(failures)} failed:", file=sys.stderr)
        for p, msg in failures:
            print(f"  {p}: {msg}", file=sys.stderr)
        return 1
    return 0


def _check_heads_take_words(model: TalkerModel, heads: list[str]) -> None:
    """Refuse ``--text`` before any work when a head cannot take words."""
    from unitalker.cli import CLIError
    from unitalker.inference.transcript import TranscriptError, check_heads

    try:
        check_heads(model, heads)
    except TranscriptError as e:
        raise CLIError(f"--text: {e}; choose the heads with --heads") from e


def _words_beside(path: Path) -> str:
    """The words of ``path`` from the .txt file beside it (``--text-beside``)."""
    txt = path.with_suffix(".txt")
    if not txt.is_file():
        raise FileNotFoundError(f"no words for it: {txt} does not exist (--text-beside)")
    words = txt.read_text(encoding="utf-8", errors="replace").strip()
    if not words:
        raise ValueError(f"no words for it: {txt} is empty (--text-beside)")
    return words


def animate_file(
    model: TalkerModel,
    path: Path,
    out_dir: Path,
    stem: str,
    args: argparse.Namespace,
    heads: list[str] | None,
    *,
    quiet: bool = False,
    profile: Profile | None = None,
    words: str | None = None,
) -> list[Path]:
    """Decode, animate and write one file (all outputs or none). With ``words``, the lips
    close on their bilabials (:func:`unitalker.inference.transcript.with_words`)."""
    from unitalker.audio import load_audio
    from unitalker.export import write_outputs
    from unitalker.inference.animate import animate

    def stage(name: str) -> contextlib.AbstractContextManager:
        return profile.stage(f"{path.name}: {name}") if profile else contextlib.nullcontext()

    with stage("decode audio"):
        wav = load_audio(path, allow_any_container=args.allow_any_container)
    bar = None

    def progress(done: int, total: int) -> None:
        nonlocal bar
        if total < 2 or quiet:
            return
        if bar is None:
            from tqdm import tqdm  # only for long audio (several windows)

            bar = tqdm(
                total=total, desc=path.name[:30], unit="window", leave=False, file=sys.stderr
            )
        bar.update(done - bar.n)

    try:
        with stage("inference"):
            results = animate(
                model,
                wav,
                heads=heads,
                identity=args.identity,
                window=args.window,
                overlap=args.overlap,
                precision=args.precision,
                progress=progress,
                windows=args.windows,
            )
    finally:
        if bar is not None:
            bar.close()
    if words is not None:
        from unitalker.inference.transcript import with_words

        with stage("align words"):
            results = with_words(model, results, wav, words)

    def on_stage(name: str, wall: float, cpu: float) -> None:
        if profile is not None:
            profile.add(f"{path.name}: write {name}", wall, cpu)

    with stage("write outputs (all)"):
        return write_outputs(
            results,
            out_dir,
            stem,
            [f.strip() for f in args.format.split(",")],
            audio=wav,
            overwrite=args.overwrite,
            options={
                "glb": {"max_error": args.glb_max_error, "lossless": args.glb_lossless},
                "mp4": {"idle": getattr(args, "idle", True), "size": args.mp4_size},
            },
            parallel=True,
            on_stage=on_stage,
        )

"""Takes recorded with Epic's Live Link Face app (iOS), read into the manifest format.

A take is a folder (the app names it after the slate and take number) holding:

- a CSV: header ``Timecode,BlendShapeCount,EyeBlinkLeft,...`` then the 52 ARKit
  blendshapes in Live Link order and 9 rotations (``HeadYaw, HeadPitch, HeadRoll``,
  ``LeftEyeYaw ... RightEyeRoll``), 61 channels; one row per captured frame.
  ``Timecode`` is ``HH:MM:SS:FF.mmm``: the time of day of the frame in whole seconds,
  ``FF`` the frame within that second at the take's rate, ``.mmm`` a sub-frame fraction
  (thousandths of a frame). ``BlendShapeCount`` is 61 on every row.
- the reference video (``.mov``, with the microphone's audio track), and possibly a
  ``.wav``; other files (``take.json``, thumbnails, ``frame_log.csv``) are ignored.

:func:`read_take` parses one take: timecodes become frame numbers relative to the first
row (a take across midnight wraps), rows are put on a uniform grid at the take's rate
(dropped frames interpolated, repeated ones averaged away), and the audio comes from
the wav, else from the video's audio track (decoded with PyAV). :func:`write_take` is
the inverse, for tests and the A2F-Synth take generator.

:func:`convert_livelinkface` writes a dataset folder: ``annot/<take>.npy`` in a
registered blendshape convention (channels mapped by ARKit name, e.g. the bundled
model's ``synth_arkit52``), or all 61 channels under a new convention written to
``convention.yaml`` (``channels="all"``), and ``audio/<take>.wav`` at 16 kHz.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from unitalker import conventions
from unitalker.conventions import LIVE_LINK_ORDER, LIVE_LINK_ROTATIONS, arkit_key

log = logging.getLogger(__name__)

CHANNELS: tuple[str, ...] = (*LIVE_LINK_ORDER, *LIVE_LINK_ROTATIONS)
assert len(CHANNELS) == 61
STANDARD_FPS = (24.0, 25.0, 30.0, 48.0, 50.0, 60.0, 120.0)
VIDEO_EXTENSIONS = (".mov", ".mp4", ".m4v")
_TIMECODE = re.compile(r"^\s*(\d+):(\d\d):(\d\d)[:;](\d+)(?:\.(\d+))?\s*$")
DAY = 24 * 3600


class TakeError(ValueError):
    """A take that cannot be read; the message names the file and the problem."""


@dataclass
class Take:
    """One Live Link Face take on a uniform frame grid.

    Attributes:
        name: the take folder's name (or the CSV's stem for a loose CSV).
        csv: the CSV file.
        fps: the take's frame rate.
        channels: ``[T, 61]`` float32, columns in :data:`CHANNELS` order.
        audio: the wav or video file the audio comes from (None: none found).
        start: the first frame's timecode text.
        dropped: frames missing from the CSV and interpolated.
    """

    name: str
    csv: Path
    fps: float
    channels: np.ndarray
    audio: Path | None
    start: str
    dropped: int = 0

    @property
    def seconds(self) -> float:
        return len(self.channels) / self.fps


def parse_timecode(text: str) -> tuple[int, float]:
    """``HH:MM:SS:FF.mmm`` -> ``(whole seconds of the day, frame within the second)``;
    the frame is ``FF + mmm / 1000`` (the sub-frame fraction)."""
    m = _TIMECODE.match(text)
    if not m:
        raise ValueError(f"not a Live Link timecode (HH:MM:SS:FF.mmm): {text!r}")
    hh, mm, ss, ff, sub = m.groups()
    if int(mm) > 59 or int(ss) > 59:
        raise ValueError(f"minutes/seconds out of range in timecode {text!r}")
    frac = int(sub) / 10 ** len(sub) if sub else 0.0
    return int(hh) * 3600 + int(mm) * 60 + int(ss), int(ff) + frac


def _infer_fps(frames_in_second: np.ndarray, csv: Path) -> float:
    top = int(np.floor(frames_in_second.max())) + 1
    for fps in STANDARD_FPS:
        if fps >= top:
            return fps
    raise TakeError(
        f"{csv}: frame numbers reach {top - 1}: cannot infer the frame rate; pass --fps"
    )


def _read_csv(csv: Path) -> tuple[list[str], list[str], np.ndarray]:
    """(header names after the two leading columns, timecodes, values ``[N, C]``)."""
    try:
        lines = csv.read_text(encoding="utf-8-sig").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise TakeError(f"{csv}: cannot read: {e}") from e
    lines = [ln for ln in lines if ln.strip()]
    if not lines:
        raise TakeError(f"{csv}: empty file")
    head = [h.strip() for h in lines[0].split(",")]
    if len(head) < 3 or head[0].lower() != "timecode" or head[1].lower() != "blendshapecount":
        raise TakeError(
            f"{csv}: not a Live Link Face CSV (the header must start with "
            f"Timecode,BlendShapeCount; got {','.join(head[:3])})"
        )
    names = head[2:]
    stamps, rows = [], []
    for i, ln in enumerate(lines[1:], start=2):
        cells = ln.split(",")
        if len(cells) != len(head):
            raise TakeError(f"{csv}:{i}: {len(cells)} fields, the header has {len(head)}")
        try:
            vals = [float(c) for c in cells[2:]]
        except ValueError as e:
            raise TakeError(f"{csv}:{i}: not a number ({e})") from e
        stamps.append(cells[0])
        rows.append(vals)
    if not rows:
        raise TakeError(f"{csv}: header only, no frames")
    values = np.asarray(rows, dtype=np.float64)
    if not np.isfinite(values).all():
        raise TakeError(f"{csv}: non-finite values")
    return names, stamps, values


def read_take(path: str | Path, fps: float | None = None) -> Take:
    """Read one take: a take folder, or a Live Link Face CSV file.

    Args:
        path: the take folder (its CSV is the one whose header starts with
            ``Timecode,BlendShapeCount``) or the CSV itself.
        fps: the take's frame rate; None infers it from the frame numbers (the smallest
            standard rate above the largest ``FF``, exact for takes of a second or more).

    Returns:
        the :class:`Take`, channels in :data:`CHANNELS` order (absent ones 0).

    Raises:
        TakeError: no CSV, a malformed CSV or timecode.
    """
    p = Path(path)
    if p.is_dir():
        csvs = [c for c in sorted(p.glob("*.csv")) if _is_llf_csv(c)]
        if not csvs:
            raise TakeError(
                f"{p}: no Live Link Face CSV (Timecode,BlendShapeCount,...) in the folder"
            )
        if len(csvs) > 1:
            raise TakeError(
                f"{p}: several Live Link Face CSVs ({', '.join(c.name for c in csvs)}); "
                "a take folder holds one"
            )
        csv, name, folder = csvs[0], p.name, p
    elif p.is_file():
        csv, name, folder = p, p.stem, p.parent
    else:
        raise TakeError(f"{p}: no such take folder or CSV")
    names, stamps, values = _read_csv(csv)
    try:
        parsed = [parse_timecode(s) for s in stamps]
    except ValueError as e:
        raise TakeError(f"{csv}: {e}") from e
    secs = np.array([s for s, _ in parsed], np.float64)
    sub = np.array([f for _, f in parsed], np.float64)
    rate = float(fps) if fps else _infer_fps(sub, csv)
    if rate <= 0:
        raise TakeError(f"{csv}: fps must be positive, got {rate}")
    if (sub >= rate).any():
        raise TakeError(f"{csv}: frame number {sub.max():.0f} does not fit {rate:g} fps")
    # a take across midnight: a jump back of more than half a day is the wrap
    secs = np.where(secs < secs[0] - DAY / 2, secs + DAY, secs)
    t = (secs - secs[0]) * rate + sub - sub[0]  # frames since the first row
    if (np.diff(t) < 0).any():
        raise TakeError(
            f"{csv}: timecodes go backwards at row {int(np.argmax(np.diff(t) < 0)) + 3}"
        )
    idx = {arkit_key(n).lower(): i for i, n in enumerate(names)}
    cols = np.zeros((len(values), len(CHANNELS)))
    missing = []
    for j, n in enumerate(CHANNELS):
        i = idx.get(arkit_key(n).lower())
        if i is None:
            missing.append(n)
        else:
            cols[:, j] = values[:, i]
    if len(missing) == len(CHANNELS):
        raise TakeError(f"{csv}: none of the columns is an ARKit / Live Link channel")
    if missing:
        more = f" and {len(missing) - 6} more" if len(missing) > 6 else ""
        log.warning("%s: no column for %s%s: written as 0", csv, ", ".join(missing[:6]), more)
    n = int(round(t[-1])) + 1
    grid = np.arange(n, dtype=np.float64)
    # repeated timestamps: keep their mean, then interpolate the grid
    uniq, inv = np.unique(np.round(t, 6), return_inverse=True)
    sums = np.zeros((len(uniq), cols.shape[1]))
    np.add.at(sums, inv, cols)
    means = sums / np.bincount(inv)[:, None]
    out = np.stack([np.interp(grid, uniq, means[:, j]) for j in range(cols.shape[1])], 1)
    dropped = max(0, n - len(uniq))
    if dropped:
        log.info("%s: %d dropped frame(s) interpolated", csv, dropped)
    return Take(
        name,
        csv,
        rate,
        out.astype(np.float32),
        _find_take_audio(folder, csv.stem),
        stamps[0].strip(),
        dropped,
    )


def _is_llf_csv(path: Path) -> bool:
    try:
        with open(path, encoding="utf-8-sig") as f:
            head = f.readline()
    except (OSError, UnicodeDecodeError):
        return False
    cells = [c.strip().lower() for c in head.split(",")[:2]]
    return cells == ["timecode", "blendshapecount"]


def _find_take_audio(folder: Path, stem: str) -> Path | None:
    """The take's wav (same stem first, then any), else its video (same stem first)."""
    for exts in ((".wav",), VIDEO_EXTENSIONS):
        same = [folder / f"{stem}{e}" for e in exts if (folder / f"{stem}{e}").is_file()]
        if same:
            return same[0]
        # the calibration clip of some app versions has no speech: skip *_cal.*
        other = sorted(
            q
            for q in folder.iterdir()
            if q.suffix.lower() in exts and q.is_file() and not q.stem.lower().endswith("_cal")
        )
        if other:
            return other[0]
    return None


def find_takes(src: str | Path) -> list[Path]:
    """Take folders under ``src`` (``src`` itself when it is one), or loose CSVs."""
    src = Path(src)
    if not src.exists():
        raise TakeError(f"{src}: no such folder")
    if src.is_file():
        return [src]
    if any(_is_llf_csv(c) for c in src.glob("*.csv")):
        loose = [c for c in sorted(src.glob("*.csv")) if _is_llf_csv(c)]
        return [src] if len(loose) == 1 else loose
    takes = sorted({c.parent for c in src.rglob("*.csv") if _is_llf_csv(c)})
    if not takes:
        raise TakeError(
            f"{src}: no Live Link Face take (a CSV with Timecode,BlendShapeCount) found"
        )
    return takes


# --------------------------------------------------------------------------------------
# conversion to the manifest format


def custom_convention(name: str, fps: float) -> conventions.Convention:
    """All 61 Live Link channels as one convention (no rig: trained on the values)."""
    return conventions.Convention(
        name,
        "params",
        len(CHANNELS),
        float(fps),
        1.0,
        channel_names=CHANNELS,
        description="Live Link Face: 52 ARKit blendshapes (Live Link order) + head and eye "
        "rotations (radians)",
    )


def convert_livelinkface(
    src: str | Path,
    dst: str | Path,
    *,
    convention: str | None = None,
    channels: Literal["convention", "all"] = "convention",
    dataset: str = "LLF",
    subject: str | None = None,
    fps: float | None = None,
    split: str | None = None,
    split_by: Literal["subject", "ratio"] = "ratio",
    ratios: tuple[float, float, float] = (0.8, 0.1, 0.1),
    seed: int = 0,
    overwrite: bool = False,
    mode: str = "copy",
) -> object:
    """Live Link Face takes -> one dataset folder in the manifest format.

    Args:
        src: a take folder, a folder of take folders (searched recursively), or a CSV.
        dst: the dataset folder to write.
        convention: a registered blendshape convention whose channel names are ARKit
            names (default ``synth_arkit52``, the bundled model's ARKit head); its
            channels are taken by name (the rotations are dropped). With ``channels="all"``
            the name of the new 61-channel convention (default ``livelinkface61``).
        channels: ``convention`` or ``all`` (every CSV channel, a new convention written
            to ``DST/convention.yaml``: pass it as ``conventions_files`` to train).
        dataset: dataset key in the manifest.
        subject: the performer's name (default: ``src``'s folder name).
        fps: the takes' frame rate (default: inferred per take).
        split: put every take in this split (e.g. ``test`` for a held-out session);
            None splits by ``split_by`` / ``ratios`` / ``seed`` (by take).
        mode: how a take's wav gets into DST (``copy``/``symlink``/``hardlink``); audio
            from a video is always decoded and written as a 16 kHz wav.

    Returns:
        the :class:`~unitalker.data.convert.ConvertReport`.
    """
    from unitalker.audio import SAMPLE_RATE, load_audio, write_wav
    from unitalker.data import convert as C
    from unitalker.data.manifest import TEMPLATE_FILE, write_split_file

    src = Path(src)
    take_paths = find_takes(src)
    if channels not in ("convention", "all"):
        raise ValueError(f"channels must be 'convention' or 'all', got {channels!r}")
    who = subject or (src.name if src.is_dir() else src.parent.name)

    def build(tmp: Path, report: C.ConvertReport) -> None:
        takes = []
        for tp in take_paths:
            take = read_take(tp, fps)
            if take.audio is None:
                report.skipped.append(f"{tp}: no .wav and no video with an audio track")
                continue
            takes.append(take)
        if not takes:
            raise TakeError(f"{src}: no take with audio")
        rates = {t.fps for t in takes}
        if len(rates) > 1:
            raise TakeError(
                f"{src}: takes at several frame rates {sorted(rates)}; convert "
                "each rate into its own dataset"
            )
        rate = rates.pop()
        if channels == "all":
            conv = custom_convention(convention or "livelinkface61", rate)
            _write_convention_yaml(tmp / "convention.yaml", conv)
            cols = np.arange(len(CHANNELS))
        else:
            conv = conventions.get(convention or "synth_arkit52")
            cols = _columns_for(conv)
        (tmp / "annot").mkdir()
        (tmp / "audio").mkdir()
        clips = []
        for take in takes:
            stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", take.name)
            annot = tmp / "annot" / f"{stem}.npy"
            np.save(annot, np.ascontiguousarray(take.channels[:, cols]), allow_pickle=False)
            assert take.audio is not None
            audio = tmp / "audio" / f"{stem}.wav"
            if take.audio.suffix.lower() == ".wav":
                C._place(take.audio, audio, mode)  # type: ignore[arg-type]
            else:  # the video's audio track, decoded once
                write_wav(audio, load_audio(take.audio), SAMPLE_RATE)
            log.info(
                "%s: %.1f s at %g fps, audio from %s",
                take.name,
                take.seconds,
                take.fps,
                take.audio.name,
            )
            clips.append(C._Clip(who, audio, annot, stem))
        if split is not None:
            groups = {split: clips}
        else:
            groups = C.split_clips(clips, by=split_by, ratios=ratios, seed=seed)
        counts = {}
        for name, items in groups.items():
            if not items:
                continue
            data = [
                {
                    "annot_path": f"annot/{c.annot.name}",
                    "audio_path": f"audio/{c.audio.name}",
                    "id": 0,
                    "annot_type": conv.name,
                    "dataset": dataset,
                    "fps": rate,
                }
                for c in items
            ]
            write_split_file(tmp / f"{name}.json", data, [who])
            counts[name] = len(data)
        np.save(tmp / TEMPLATE_FILE, np.zeros((1, conv.dim), np.float32), allow_pickle=False)
        report.counts["."] = counts
        report.subjects["."] = 1

    return C._run(dst, overwrite, build)


def _columns_for(conv: conventions.Convention) -> np.ndarray:
    if conv.kind != "blendshapes" or not conv.channel_names:
        raise ValueError(
            f"{conv.name}: a Live Link take maps onto a blendshape convention with "
            "ARKit channel names; use channels='all' for a new one"
        )
    index = {arkit_key(n).lower(): j for j, n in enumerate(CHANNELS)}
    cols, missing = [], []
    for n in conv.channel_names:
        j = index.get(arkit_key(n).lower())
        (missing.append(n) if j is None else cols.append(j))
    if missing:
        raise ValueError(f"{conv.name}: channels {missing} are not Live Link channels")
    return np.asarray(cols)


def _write_convention_yaml(path: Path, conv: conventions.Convention) -> None:
    import yaml

    d = {
        "name": conv.name,
        "kind": conv.kind,
        "dim": conv.dim,
        "fps": conv.fps,
        "scale": conv.scale,
        "channel_names": list(conv.channel_names or ()),
        "description": conv.description,
    }
    path.write_text(yaml.safe_dump(d, sort_keys=False))


# --------------------------------------------------------------------------------------
# writing takes (tests, the A2F-Synth take generator)


def write_take(
    folder: str | Path,
    channels: np.ndarray,
    fps: float,
    audio: np.ndarray | None = None,
    sr: int = 16000,
    *,
    name: str = "Slate_1_iPhone",
    start: tuple[int, int, int, int] = (14, 3, 21, 0),
    video: str | None = ".mov",
    wav: bool = False,
    drop: Sequence[int] = (),
) -> Path:
    """Write a take folder as the app does: ``NAME.csv`` (+ ``NAME.mov`` whose audio
    track holds ``audio``, and/or ``NAME.wav``).

    Args:
        channels: ``[T, 61]`` in :data:`CHANNELS` order (or ``[T, 52]``: rotations 0).
        fps: frame rate of the rows and of the timecodes.
        audio: mono samples at ``sr`` (None: no audio file).
        start: the first frame's ``(HH, MM, SS, FF)`` time of day.
        video: ``.mov`` / ``.mp4`` (a small grey video with an AAC audio track), or None.
        wav: also write ``NAME.wav``.
        drop: frame indices left out of the CSV (dropped frames).
    """
    from unitalker.export.livelink_csv import _fmt

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    ch = np.asarray(channels, np.float32)
    if ch.shape[1] == len(LIVE_LINK_ORDER):
        ch = np.concatenate([ch, np.zeros((len(ch), len(LIVE_LINK_ROTATIONS)), np.float32)], 1)
    if ch.shape[1] != len(CHANNELS):
        raise ValueError(f"channels must be [T, 61] or [T, 52], got {ch.shape}")
    hh, mm, ss, ff = start
    first = ((hh * 60 + mm) * 60 + ss) * fps + ff
    lines = [",".join(("Timecode", "BlendShapeCount", *CHANNELS))]
    skip = set(drop)
    for i, row in enumerate(ch):
        if i in skip:
            continue
        lines.append(
            f"{_timecode_of(first + i, fps)},{len(CHANNELS)},"
            + ",".join(_fmt(float(v)) for v in row)
        )
    csv = folder / f"{name}.csv"
    csv.write_text("\n".join(lines) + "\n", encoding="utf-8")
    if audio is not None:
        if wav:
            from unitalker.audio import write_wav

            write_wav(folder / f"{name}.wav", np.asarray(audio, np.float32), sr)
        if video:
            write_take_video(folder / f"{name}{video}", np.asarray(audio, np.float32), sr)
    return folder


def _timecode_of(frame: float, fps: float) -> str:
    whole = math.floor(frame / fps + 1e-9)
    ff = frame - whole * fps
    sub = round((ff - math.floor(ff + 1e-9)) * 1000)
    whole %= DAY
    h, rem = divmod(int(whole), 3600)
    m, s = divmod(rem, 60)
    return f"{h:02d}:{m:02d}:{s:02d}:{int(math.floor(ff + 1e-9)):02d}.{min(sub, 999):03d}"


def write_take_video(
    path: Path, audio: np.ndarray, sr: int, fps: int = 10, size: int = 32, audio_rate: int = 48000
) -> Path:
    """A small grey H.264 video with ``audio`` as its AAC track (``.mov`` or ``.mp4``)."""
    import av

    from unitalker.audio import resample

    samples = resample(np.asarray(audio, np.float32), sr, audio_rate)
    n_frames = max(1, math.ceil(len(samples) / audio_rate * fps))
    fmt = "mov" if path.suffix.lower() == ".mov" else "mp4"
    with av.open(str(path), mode="w", format=fmt) as container:
        vs = container.add_stream("libx264", rate=fps)
        vs.width = vs.height = size
        vs.pix_fmt = "yuv420p"
        ast = container.add_stream("aac", rate=audio_rate, layout="mono")
        grey = np.full((size, size, 3), 128, np.uint8)
        sent = 0
        for i in range(n_frames):
            frame = av.VideoFrame.from_ndarray(grey, format="rgb24")
            frame.pts = i
            container.mux(vs.encode(frame))
            upto = min(len(samples), round((i + 1) / fps * audio_rate))
            if upto > sent:
                af = av.AudioFrame.from_ndarray(
                    samples[None, sent:upto].copy(), format="fltp", layout="mono"
                )
                af.sample_rate, af.pts = audio_rate, sent
                container.mux(ast.encode(af))
                sent = upto
        container.mux(vs.encode(None))
        container.mux(ast.encode(None))
    return path

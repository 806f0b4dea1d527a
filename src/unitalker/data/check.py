"""Verify every entry of a manifest and report all problems in one run.

For each split file: the JSON parses, paths stay inside the root, the convention is
registered, fps is supported, ``id_template.npy`` fits; for each clip: the files exist,
the audio decodes, the annotation has the convention's width and only finite values,
the subject has a template, and audio and annotation durations agree within a tolerance.
Problems are collected, never raised, so one run lists them all.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

from unitalker.audio import SAMPLE_RATE, AudioError, load_audio
from unitalker.data.manifest import ManifestError, _peek_dataset_key, load_manifest, read_split_file
from unitalker.progress import StageProgress, track

logger = logging.getLogger(__name__)


@dataclass
class SplitSummary:
    """One row of the summary table: one split file of one dataset."""

    dataset: str
    split: str
    convention: str
    path: Path
    clips: int = 0
    seconds: float = 0.0
    subjects: set[str] = field(default_factory=set)
    fps: set[float] = field(default_factory=set)
    errors: int = 0

    @property
    def hours(self) -> float:
        return self.seconds / 3600.0


@dataclass
class CheckReport:
    rows: list[SplitSummary]
    problems: list[str]

    @property
    def ok(self) -> bool:
        return not self.problems


def check_manifest(
    path: str | Path,
    *,
    split: str = "all",
    tolerance_s: float = 0.25,
    tolerance_frac: float = 0.05,
    decode_audio: bool = True,
    progress: StageProgress | None = None,
) -> CheckReport:
    """Check a manifest (split file, dataset folder or root).

    Args:
        split: a split name, or ``all``.
        tolerance_s, tolerance_frac: audio and annotation durations may differ by
            ``max(tolerance_s, tolerance_frac * longer duration)``.
        decode_audio: decode every audio file (slow, thorough); False reads headers only.
        progress: called as ``progress(stage, done_clips, total_clips)``, one stage per
            split file.

    Returns:
        per-split summary rows and every problem found.
    """
    from unitalker.data.dataset import ClipError, load_annotation, probe_audio_seconds

    manifest = load_manifest(path, strict=False)
    names = manifest.split_names if split == "all" else [split]
    if split != "all" and not manifest.has_split(split):
        return CheckReport(
            [], [f"{manifest.path}: no split {split!r} (has {manifest.split_names})"]
        )
    rows: list[SplitSummary] = []
    problems: list[str] = []
    for folder in manifest.dataset_folders():
        for name in names:
            if name not in folder.split_files:
                continue
            sp = folder.split_files[name]
            local: list[str] = []
            try:
                part = read_split_file(sp, root=manifest.root, strict=False, problems=local)
            except (ManifestError, FileNotFoundError) as e:
                problems.append(str(e))
                rows.append(SplitSummary("?", name, "?", sp, errors=1))
                continue
            key = part.dataset if part.entries else (_peek_dataset_key(folder) or part.dataset)
            row = SplitSummary(key, name, part.convention or "?", sp)
            for e in track(part.entries, f"check {sp.parent.name}/{sp.name}", progress):
                row.clips += 1
                row.subjects.add(e.subject)
                row.fps.add(e.fps)
                annot_s = audio_s = None
                try:
                    motion = load_annotation(e.annot_path, e.convention)
                    annot_s = len(motion) / e.fps
                except ClipError as err:
                    local.append(str(err))
                except (OSError, ValueError) as err:  # e.g. a file name too long for the OS
                    local.append(f"{e.annot_path}: cannot read annotation: {err}")
                try:
                    if decode_audio:
                        audio_s = len(load_audio(e.audio_path)) / SAMPLE_RATE
                    else:
                        audio_s = probe_audio_seconds(e.audio_path)
                    row.seconds += audio_s
                except (AudioError, ClipError) as err:
                    local.append(str(err))
                except (OSError, ValueError) as err:
                    local.append(f"{e.audio_path}: cannot read audio: {err}")
                if annot_s is not None and audio_s is not None:
                    tol = max(tolerance_s, tolerance_frac * max(annot_s, audio_s))
                    if abs(annot_s - audio_s) > tol:
                        local.append(
                            f"{e.annot_path}: annotation lasts {annot_s:.2f} s but its audio "
                            f"{e.audio_path.name} lasts {audio_s:.2f} s (tolerance {tol:.2f} s)"
                        )
            row.errors = len(local)
            problems += local
            rows.append(row)
    problems += [p for p in manifest.problems if p not in problems]
    return CheckReport(rows, problems)


def format_report(report: CheckReport) -> str:
    """The summary table and the problem list as text."""
    w = max([10, *(len(r.dataset) + 1 for r in report.rows)])
    header = f"{'dataset':<{w}} {'split':<8} {'clips':>6} {'hours':>8} {'subj':>5} {'fps':>10} {'errors':>6}  convention"
    lines = [header, "-" * len(header)]
    for r in report.rows:
        fps = ",".join(f"{f:g}" for f in sorted(r.fps)) or "-"
        lines.append(
            f"{r.dataset:<{w}} {r.split:<8} {r.clips:>6} {r.hours:>8.3f} {len(r.subjects):>5} "
            f"{fps:>10} {r.errors:>6}  {r.convention}"
        )
    total_clips = sum(r.clips for r in report.rows)
    total_h = sum(r.hours for r in report.rows)
    lines.append(f"{'total':<{w}} {'':<8} {total_clips:>6} {total_h:>8.3f}")
    if report.problems:
        lines.append("")
        lines.append(f"{len(report.problems)} problem(s):")
        lines += [f"  - {p}" for p in report.problems]
    else:
        lines.append("")
        lines.append("no problems found")
    return "\n".join(lines)

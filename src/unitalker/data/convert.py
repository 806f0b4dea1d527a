"""Converters from community dataset layouts to the manifest format (the release format).

Each converter writes one dataset folder per dataset: ``train.json``, ``val.json``,
``test.json`` (+ extra splits such as BIWI's ``test_b.json``), ``id_template.npy``
(raw units, one row per ``id_list`` subject) and the clip files under relative paths.
Annotations are copied unchanged at their native fps (the loader converts rates and
applies the convention scale), exactly as the original release stores them.

Safety: a non-empty destination is refused unless ``overwrite=True``; then only the
files we write are replaced and nothing else in the folder is deleted. Everything is
first written to a temporary sibling folder and moved into place at the end, so a
failed conversion leaves no half-written dataset.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

from unitalker import conventions
from unitalker.audio import AUDIO_EXTENSIONS
from unitalker.data.manifest import TEMPLATE_FILE, write_split_file
from unitalker.data.safe_pickle import load_templates_pickle

logger = logging.getLogger(__name__)

FileMode = Literal["copy", "symlink", "hardlink"]

BIWI_TRAIN_SUBJECTS = ("F2", "F3", "F4", "M3", "M4", "M5")
BIWI_TEST_B_SUBJECTS = ("F1", "F5", "F6", "F7", "F8", "M1", "M2", "M6")
VOCASET_TRAIN = tuple(
    f"FaceTalk_{s}_TA"
    for s in (
        "170728_03272",
        "170904_00128",
        "170725_00137",
        "170915_00223",
        "170811_03274",
        "170913_03279",
        "170904_03276",
        "170912_03278",
    )
)
VOCASET_VAL = ("FaceTalk_170811_03275_TA", "FaceTalk_170908_03277_TA")
VOCASET_TEST = ("FaceTalk_170809_00138_TA", "FaceTalk_170731_00024_TA")


@dataclass
class ConvertReport:
    """What a conversion wrote: per dataset folder, clips per split; and what it skipped."""

    dst: Path
    counts: dict[str, dict[str, int]] = field(default_factory=dict)
    subjects: dict[str, int] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)


@dataclass
class _Clip:
    subject: str
    audio: Path
    annot: Path
    key: int | str = 0  # sentence number / stem, for splits


class _DatasetWriter:
    """Collects the clips of one dataset folder and writes it in the release format."""

    def __init__(
        self, folder: str, dataset: str, convention: str, fps: float, mode: FileMode
    ) -> None:
        conventions.get(convention)  # unregistered convention: fail before writing
        self.folder, self.dataset, self.convention, self.fps, self.mode = (
            folder,
            dataset,
            convention,
            fps,
            mode,
        )
        self.splits: dict[str, list[tuple[_Clip, str, str]]] = {}

    def add(self, split: str, clip: _Clip, audio_rel: str, annot_rel: str) -> None:
        self.splits.setdefault(split, []).append((clip, audio_rel, annot_rel))

    def write(
        self,
        tmp_root: Path,
        id_list: Sequence[str],
        templates: np.ndarray,
        report: ConvertReport,
        split_id_lists: dict[str, Sequence[str]] | None = None,
    ) -> None:
        base = tmp_root / self.folder
        base.mkdir(parents=True, exist_ok=True)
        np.save(base / TEMPLATE_FILE, np.asarray(templates))
        placed: set[str] = set()
        counts = {}
        for split, items in self.splits.items():
            ids = list((split_id_lists or {}).get(split, id_list))
            index = {s: i for i, s in enumerate(ids)}
            data = []
            for clip, audio_rel, annot_rel in items:
                for src, rel in ((clip.audio, audio_rel), (clip.annot, annot_rel)):
                    if rel not in placed:
                        _place(src, base / rel, self.mode)
                        placed.add(rel)
                data.append(
                    {
                        "annot_path": annot_rel,
                        "audio_path": audio_rel,
                        "id": index[clip.subject],
                        "annot_type": self.convention,
                        "dataset": self.dataset,
                        "fps": self.fps,
                    }
                )
            write_split_file(base / f"{split}.json", data, ids)
            counts[split] = len(data)
        report.counts[self.folder] = counts
        report.subjects[self.folder] = len(id_list)


def _place(src: Path, dst: Path, mode: FileMode) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    if mode == "symlink":
        os.symlink(os.path.abspath(src), dst)
    elif mode == "hardlink":
        try:
            os.link(src, dst)
        except OSError:  # other filesystem: fall back to a copy
            shutil.copy2(src, dst)
    else:
        shutil.copy2(src, dst)


def _prepare_dst(dst: Path, overwrite: bool) -> Path:
    if dst.exists() and not dst.is_dir():
        raise ValueError(f"destination {dst} exists and is not a folder")
    if dst.exists() and any(dst.iterdir()) and not overwrite:
        raise ValueError(f"destination {dst} is not empty; pass --overwrite to write into it")
    dst.parent.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=f".{dst.name}.tmp-", dir=dst.parent))


def _merge_into(tmp: Path, dst: Path) -> None:
    """Move tmp's content into dst, replacing same-named files only."""
    if not dst.exists():
        os.replace(tmp, dst)
        return
    for item in tmp.iterdir():
        target = dst / item.name
        if item.is_dir() and not item.is_symlink() and target.is_dir() and not target.is_symlink():
            _merge_into(item, target)
        else:
            if target.is_dir() and not target.is_symlink():
                raise ValueError(f"cannot replace folder {target} with a file; move it away first")
            os.replace(item, target)
    tmp.rmdir()


def _run(
    dst: str | Path, overwrite: bool, build: Callable[[Path, ConvertReport], None]
) -> ConvertReport:
    dst = Path(dst)
    tmp = _prepare_dst(dst, overwrite)
    report = ConvertReport(dst=dst)
    try:
        build(tmp, report)
        _merge_into(tmp, dst)
    finally:
        if tmp.exists():  # our own temporary folder: safe to remove
            shutil.rmtree(tmp, ignore_errors=True)
    return report


def _find_audio(stem: str, folders: Sequence[Path], exclude: Path | None = None) -> Path | None:
    """The audio file named ``stem`` in the first folder that has one (wav first)."""
    for folder in folders:
        for ext in (".wav", *AUDIO_EXTENSIONS, ".npy"):
            p = folder / f"{stem}{ext}"
            if p != exclude and p.is_file():
                return p
    return None


def _check_width(path: Path, convention: str) -> None:
    from unitalker.data.dataset import check_annotation_header

    check_annotation_header(path, convention)


def _template_array(
    templates: dict[str, np.ndarray], subjects: Sequence[str], convention: str, source: Path
) -> np.ndarray:
    dim = conventions.get(convention).dim
    rows = []
    for s in subjects:
        if s not in templates:
            raise ValueError(
                f"{source}: no template for subject {s!r} (has {sorted(templates)[:6]}...)"
            )
        t = np.asarray(templates[s], dtype=np.float32)
        if t.size != dim:
            raise ValueError(
                f"{source}: template of {s!r} has {t.size} values, {convention} needs {dim}"
            )
        rows.append(t.reshape(-1))
    arr = np.stack(rows)
    if conventions.get(convention).kind == "vertices":
        arr = arr.reshape(len(subjects), -1, 3)
    return arr


def _scan(folder: Path, pattern: str) -> list[tuple[re.Match[str], Path]]:
    if not folder.is_dir():
        raise FileNotFoundError(f"expected folder {folder}")
    rx = re.compile(pattern)
    out = []
    for p in sorted(folder.glob("*.npy")):
        m = rx.match(p.name)
        if m:
            out.append((m, p))
    return out


# --------------------------------------------------------------------------------------
# BIWI (CodeTalker layout)


def convert_biwi(
    src: str | Path,
    dst: str | Path,
    *,
    overwrite: bool = False,
    mode: FileMode = "copy",
    dataset: str = "D0",
    convention: str | None = None,
) -> ConvertReport:
    """BIWI as preprocessed by CodeTalker -> a D0 dataset folder.

    ``SRC/vertices_npy/F2_e01.npy`` ``[T, 70110]`` at 25 fps, ``SRC/wav/F2_e01.wav``,
    ``SRC/templates.pkl``. Splits: train subjects (F2 F3 F4 M3 M4 M5) e01-e32 train,
    e33-e36 val, e37-e40 test (Test-A); unseen subjects e37-e40 in ``test_b.json``.
    ``id_list`` is the 6 training subjects (``test_b.json`` appends the 8 unseen ones,
    whose templates follow in ``id_template.npy``).
    """
    src = Path(src)
    # Another convention in the same layout (e.g. A2F-Synth) is allowed.
    conv = convention or "BIWI_23370_vertices"
    conventions.get(conv)  # fail early on an unregistered name

    def build(tmp: Path, report: ConvertReport) -> None:
        templates = load_templates_pickle(src / "templates.pkl")
        w = _DatasetWriter(".", dataset, conv, 25.0, mode)
        seen: set[str] = set()
        for m, p in _scan(src / "vertices_npy", r"^([FM]\d+)_e(\d+)\.npy$"):
            subject, sent = m.group(1), int(m.group(2))
            if subject in BIWI_TRAIN_SUBJECTS:
                split = (
                    "train"
                    if sent <= 32
                    else "val"
                    if sent <= 36
                    else "test"
                    if sent <= 40
                    else None
                )
            elif subject in BIWI_TEST_B_SUBJECTS:
                split = "test_b" if 37 <= sent <= 40 else None
            else:
                split = None
            if split is None:
                continue
            audio = _find_audio(p.stem, [src / "wav"])
            if audio is None:
                report.skipped.append(f"{p}: no audio in {src / 'wav'}")
                continue
            _check_width(p, conv)
            seen.add(subject)
            w.add(
                split, _Clip(subject, audio, p, sent), f"wav/{audio.name}", f"vertices_npy/{p.name}"
            )
        _require_templates(templates, seen, src / "templates.pkl")
        # The real release has all six training subjects; a smaller set (a subset of BIWI,
        # or data in this layout with fewer speakers) keeps the canonical order.
        train_ids = [s for s in BIWI_TRAIN_SUBJECTS if s in templates]
        present = train_ids + [s for s in BIWI_TEST_B_SUBJECTS if s in templates]
        w.write(
            tmp,
            train_ids,
            _template_array(templates, present, conv, src / "templates.pkl"),
            report,
            {"test_b": present},
        )

    return _run(dst, overwrite, build)


# --------------------------------------------------------------------------------------
# VOCASET (FaceFormer layout)


def convert_vocaset(
    src: str | Path,
    dst: str | Path,
    *,
    overwrite: bool = False,
    mode: FileMode = "copy",
    dataset: str = "D1",
    convention: str | None = None,
) -> ConvertReport:
    """VOCASET as preprocessed by FaceFormer -> a D1 dataset folder.

    ``SRC/vertices_npy/<subject>_sentenceNN.npy`` ``[T, 15069]`` at 60 fps,
    ``SRC/wav/<subject>_sentenceNN.wav``, ``SRC/templates.pkl``. Train subjects
    sentences 1-40, val and test subjects sentences 21-40. ``id_list`` is all 12
    subjects (train, then val, then test), as the release's 12 D1 identities.
    """
    src = Path(src)
    # Another convention in the same layout (e.g. A2F-Synth) is allowed.
    conv = convention or "FLAME_5023_vertices"
    conventions.get(conv)  # fail early on an unregistered name

    def build(tmp: Path, report: ConvertReport) -> None:
        templates = load_templates_pickle(src / "templates.pkl")
        w = _DatasetWriter(".", dataset, conv, 60.0, mode)
        seen: set[str] = set()
        for m, p in _scan(src / "vertices_npy", r"^(.+)_sentence(\d+)\.npy$"):
            subject, sent = m.group(1), int(m.group(2))
            if subject in VOCASET_TRAIN and 1 <= sent <= 40:
                split = "train"
            elif subject in VOCASET_VAL and 21 <= sent <= 40:
                split = "val"
            elif subject in VOCASET_TEST and 21 <= sent <= 40:
                split = "test"
            else:
                continue
            audio = _find_audio(p.stem, [src / "wav"])
            if audio is None:
                report.skipped.append(f"{p}: no audio in {src / 'wav'}")
                continue
            _check_width(p, conv)
            seen.add(subject)
            w.add(
                split, _Clip(subject, audio, p, sent), f"wav/{audio.name}", f"vertices_npy/{p.name}"
            )
        _require_templates(templates, seen, src / "templates.pkl")
        ids = [s for s in VOCASET_TRAIN + VOCASET_VAL + VOCASET_TEST if s in templates]
        w.write(tmp, ids, _template_array(templates, ids, conv, src / "templates.pkl"), report)

    return _run(dst, overwrite, build)


# --------------------------------------------------------------------------------------
# Multiface (FaceDiffuser layout)


def convert_multiface(
    src: str | Path,
    dst: str | Path,
    *,
    overwrite: bool = False,
    mode: FileMode = "copy",
    dataset: str = "D2",
    convention: str | None = None,
) -> ConvertReport:
    """Multiface / MeshTalk as preprocessed by FaceDiffuser -> a D2 dataset folder.

    ``SRC/vertices_npy/{subject:02d}_{sentence:02d}.npy`` ``[T, 18516]`` at 30 fps, audio
    with the same stem in ``SRC/wav/`` (or beside the npy files), ``SRC/templates.pkl``
    keyed by subject (``"01"`` or ``"1"``). Every subject: sentences 1-40 train, 41-45
    val, 46-50 test.
    """
    src = Path(src)
    # Another convention in the same layout (e.g. A2F-Synth) is allowed.
    conv = convention or "meshtalk_6172_vertices"
    conventions.get(conv)  # fail early on an unregistered name

    def build(tmp: Path, report: ConvertReport) -> None:
        raw = load_templates_pickle(src / "templates.pkl")
        templates = dict(raw)
        for k, v in raw.items():  # accept "1" and "01"
            if k.isdigit():
                templates.setdefault(f"{int(k):02d}", v)
        w = _DatasetWriter(".", dataset, conv, 30.0, mode)
        subjects = set()
        for m, p in _scan(src / "vertices_npy", r"^(\d+)_(\d+)\.npy$"):
            subject, sent = f"{int(m.group(1)):02d}", int(m.group(2))
            split = (
                "train"
                if 1 <= sent <= 40
                else "val"
                if sent <= 45
                else "test"
                if sent <= 50
                else None
            )
            if split is None:
                continue
            audio = _find_audio(p.stem, [src / "wav", src / "vertices_npy"], exclude=p)
            if audio is None:
                report.skipped.append(f"{p}: no audio in {src / 'wav'}")
                continue
            _check_width(p, conv)
            subjects.add(subject)
            w.add(
                split, _Clip(subject, audio, p, sent), f"wav/{audio.name}", f"vertices_npy/{p.name}"
            )
        ids = sorted(subjects)
        if not ids:
            raise ValueError(f"{src / 'vertices_npy'}: no clips named like 01_01.npy found")
        w.write(tmp, ids, _template_array(templates, ids, conv, src / "templates.pkl"), report)

    return _run(dst, overwrite, build)


# --------------------------------------------------------------------------------------
# generic splitting for layouts without a standard split


def split_clips(
    clips: Sequence[_Clip],
    *,
    by: Literal["subject", "ratio"] = "ratio",
    ratios: tuple[float, float, float] = (0.8, 0.1, 0.1),
    seed: int = 0,
) -> dict[str, list[_Clip]]:
    """Deterministic train/val/test split of clips, by subject or by clip ratio.

    Assignment uses a hash of (seed, name), so adding a file does not move the others.
    """
    if len(ratios) != 3 or min(ratios) < 0 or sum(ratios) <= 0:
        raise ValueError(f"ratios must be three non-negative numbers, got {ratios}")
    total = sum(ratios)
    cuts = (ratios[0] / total, (ratios[0] + ratios[1]) / total)

    def bucket(name: str) -> str:
        h = int.from_bytes(hashlib.sha1(f"{seed}|{name}".encode()).digest()[:8], "little") / 2**64
        return "train" if h < cuts[0] else "val" if h < cuts[1] else "test"

    out: dict[str, list[_Clip]] = {"train": [], "val": [], "test": []}
    for c in clips:
        out[bucket(c.subject if by == "subject" else f"{c.subject}/{c.annot.stem}")].append(c)
    return out


SPLITS = ("train", "val", "test")
SPLIT_LISTS = tuple(f"{name}.txt" for name in SPLITS)
"""A split the source states: ``<subset>/{train,val,test}.txt``, one clip stem per line."""


def stated_split(folder: Path) -> dict[str, str] | None:
    """clip stem -> split from ``folder/{train,val,test}.txt``, or None when there are none.

    Blank lines and ``#`` comments are ignored; a stem listed in two splits is an error.
    """
    found = {name: folder / f"{name}.txt" for name in SPLITS if (folder / f"{name}.txt").is_file()}
    if not found:
        return None
    out: dict[str, str] = {}
    for name, path in found.items():
        for line in path.read_text().splitlines():
            stem = line.split("#", 1)[0].strip()
            if not stem:
                continue
            stem = Path(stem).stem if stem.endswith((".npy", ".wav")) else stem
            if stem in out and out[stem] != name:
                raise ValueError(f"{path}: clip {stem!r} is also listed in {out[stem]}.txt")
            out[stem] = name
    return out


def _apply_stated_split(
    clips: Sequence[_Clip], stated: dict[str, str], folder: Path, report: ConvertReport
) -> dict[str, list[_Clip]]:
    out: dict[str, list[_Clip]] = {name: [] for name in SPLITS}
    for c in clips:
        split = stated.get(c.annot.stem)
        if split is None:
            report.skipped.append(f"{c.annot}: not listed in the split files of {folder}")
            continue
        out[split].append(c)
    have = {c.annot.stem for c in clips}
    for stem in sorted(set(stated) - have):
        report.skipped.append(f"{folder}: {stated[stem]}.txt lists {stem!r}, which has no clip")
    return out


def _collect_pairs(
    audio_dir: Path, annot_dir: Path, subject_regex: str, report: ConvertReport
) -> list[_Clip]:
    if not annot_dir.is_dir():
        raise FileNotFoundError(f"annotation folder not found: {annot_dir}")
    if not audio_dir.is_dir():
        raise FileNotFoundError(f"audio folder not found: {audio_dir}")
    rx = re.compile(subject_regex)
    clips = []
    for p in sorted(annot_dir.glob("*.npy")):
        audio = _find_audio(p.stem, [audio_dir], exclude=p)
        if audio is None:
            report.skipped.append(f"{p}: no audio named {p.stem}.* in {audio_dir}")
            continue
        m = rx.search(p.stem)
        subject = (m.group(1) if m.groups() else m.group(0)) if m else p.stem
        if not m:
            logger.warning(
                "%s: subject regex %r does not match; using the file stem", p.name, subject_regex
            )
        clips.append(_Clip(subject, audio, p, p.stem))
    return clips


# --------------------------------------------------------------------------------------
# 3D-ETF (EmoTalk)

ETF_SUBSETS = {
    "HDTF": ("D3", "D3_HDTF", r"^(.*?)_?\d*$"),
    "RAVDESS": ("D4", "D4_RAVDESS", r"(\d+)$"),
}


def convert_3detf(
    src: str | Path,
    dst: str | Path,
    *,
    overwrite: bool = False,
    mode: FileMode = "copy",
    subject_regex: str | None = None,
    split_by: Literal["subject", "ratio"] = "ratio",
    ratios: tuple[float, float, float] = (0.8, 0.1, 0.1),
    seed: int = 0,
    convention: str | None = None,
    dataset: str | None = None,
) -> ConvertReport:
    """3D-ETF -> ``DST/D3_HDTF`` and ``DST/D4_RAVDESS`` (the release's ``D3D4_3DETF``).

    Splits: when a subset folder states one (``{train,val,test}.txt`` beside ``audio/``,
    one clip stem per line, as A2F-Synth writes), it is honoured (clips it does not list
    are skipped and reported); ``split_by`` / ``ratios`` / ``seed`` apply only to subsets
    that state none.

    ``convention`` / ``dataset`` replace the convention and the dataset key (for data in
    this layout that is not 3D-ETF itself, e.g. A2F-Synth; ``dataset`` needs one subset).

    ``SRC/{HDTF|RAVDESS}/audio/*.wav`` + ``.../blendshape/*.npy`` ``(T, 52)`` at 30 fps.
    The subject is group 1 of ``subject_regex`` searched in the file stem (default: HDTF
    drops a trailing number, RAVDESS takes the last dash field, the actor). Templates are
    zeros (the neutral weights); ``id_list`` holds every subject.
    """
    src = Path(src)
    # Another convention in the same layout (e.g. A2F-Synth) is allowed.
    conv = convention or "3DETF_blendshape_weight"
    conventions.get(conv)  # fail early on an unregistered name

    def build(tmp: Path, report: ConvertReport) -> None:
        found = False
        subsets = [n for n in ETF_SUBSETS if (src / n).is_dir()]
        if dataset and len(subsets) > 1:
            raise ValueError(
                f"{src}: a dataset key override needs a single subset, found {subsets}"
            )
        for name, (key, folder, default_rx) in ETF_SUBSETS.items():
            base = src / name
            if not base.is_dir():
                continue
            found = True
            key, folder = (dataset, dataset) if dataset else (key, folder)
            clips = _collect_pairs(
                base / "audio", base / "blendshape", subject_regex or default_rx, report
            )
            stated = stated_split(base)
            splits = None if stated is None else _apply_stated_split(clips, stated, base, report)
            if stated is None:
                logger.info("%s states no split: %s split by %s", base, key, split_by)
            _write_generic(
                tmp,
                report,
                clips,
                folder=folder,
                dataset=key,
                convention=conv,
                fps=30.0,
                mode=mode,
                split_by=split_by,
                ratios=ratios,
                seed=seed,
                templates=None,
                audio_sub="audio",
                annot_sub="blendshape",
                splits=splits,
            )
        if not found:
            raise FileNotFoundError(f"{src}: expected HDTF/ and/or RAVDESS/ sub-folders")

    return _run(dst, overwrite, build)


def _require_templates(templates: dict[str, np.ndarray], subjects: set[str], source: Path) -> None:
    missing = sorted(subjects - set(templates))
    if missing:
        raise ValueError(f"{source}: no template for subject(s) {missing} that have clips")


def _write_generic(
    tmp: Path,
    report: ConvertReport,
    clips: list[_Clip],
    *,
    folder: str,
    dataset: str,
    convention: str,
    fps: float,
    mode: FileMode,
    split_by: Literal["subject", "ratio"],
    ratios: tuple[float, float, float],
    seed: int,
    templates: dict[str, np.ndarray] | np.ndarray | None,
    audio_sub: str = "audio",
    annot_sub: str = "annot",
    template_source: Path | None = None,
    splits: dict[str, list[_Clip]] | None = None,
) -> None:
    if splits is not None:  # a split the source states: only the clips it lists
        clips = [c for items in splits.values() for c in items]
    if not clips:
        raise ValueError(f"no (audio, annotation) pairs found for {dataset}")
    for c in clips:
        _check_width(c.annot, convention)
    ids = sorted({c.subject for c in clips})
    dim = conventions.get(convention).dim
    if templates is None:
        tpl = np.zeros((len(ids), dim), dtype=np.float32)
    elif isinstance(templates, np.ndarray):
        arr = np.asarray(templates, dtype=np.float32)
        if arr.size == dim:  # one shared template
            tpl = np.repeat(arr.reshape(1, dim), len(ids), axis=0)
        elif arr.reshape(arr.shape[0], -1).shape == (len(ids), dim):
            tpl = arr.reshape(len(ids), dim)
        else:
            raise ValueError(
                f"{template_source}: templates of shape {arr.shape} fit neither one [{dim}] template "
                f"nor [{len(ids)} subjects, {dim}] (subjects in sorted order: {ids[:5]}...)"
            )
    else:
        tpl = _template_array(
            templates, ids, convention, template_source or Path("templates")
        ).reshape(len(ids), -1)
    if conventions.get(convention).kind == "vertices":
        tpl = tpl.reshape(len(ids), -1, 3)
    w = _DatasetWriter(folder, dataset, convention, fps, mode)
    if splits is None:
        splits = split_clips(clips, by=split_by, ratios=ratios, seed=seed)
    for split, items in splits.items():
        for c in items:
            w.add(split, c, f"{audio_sub}/{c.audio.name}", f"{annot_sub}/{c.annot.name}")
    w.write(tmp, ids, tpl, report)


# --------------------------------------------------------------------------------------
# generic folder


def _load_user_templates(path: Path) -> dict[str, np.ndarray] | np.ndarray:
    if not path.exists():
        raise FileNotFoundError(f"templates file not found: {path}")
    if path.suffix == ".npz":
        with np.load(path, allow_pickle=False) as z:
            return {k: np.asarray(z[k]) for k in z.files}
    if path.suffix == ".pkl":
        return load_templates_pickle(path)
    return np.load(path, allow_pickle=False)


def convert_folder(
    src: str | Path,
    dst: str | Path,
    *,
    convention: str,
    fps: float,
    dataset: str = "custom",
    audio_dir: str = "audio",
    annot_dir: str = "annotations",
    templates: str | Path | None = None,
    subject_regex: str = r"^([^_]+)",
    split_by: Literal["subject", "ratio"] = "ratio",
    ratios: tuple[float, float, float] = (0.8, 0.1, 0.1),
    seed: int = 0,
    overwrite: bool = False,
    mode: FileMode = "copy",
) -> ConvertReport:
    """A folder of audio + a folder of ``.npy`` annotations matched by file stem.

    Args:
        convention: registered convention name of the annotations.
        fps: their native frame rate.
        audio_dir, annot_dir: sub-folders of ``src`` (absolute paths work too).
        templates: ``.npy`` (``[D]`` shared or ``[n_subjects, ...]`` in sorted subject
            order), ``.npz`` / ``.pkl`` keyed by subject; None = zero templates.
        subject_regex: group 1 (or the whole match) of this regex searched in the stem
            is the subject (default: the text before the first underscore).
        split_by, ratios, seed: deterministic train/val/test assignment.
    """
    from unitalker.data.manifest import check_fps

    src = Path(src)
    conventions.get(convention)
    fps = check_fps(fps, source="--fps")
    tpl = _load_user_templates(Path(templates)) if templates is not None else None

    def build(tmp: Path, report: ConvertReport) -> None:
        clips = _collect_pairs(src / audio_dir, src / annot_dir, subject_regex, report)
        _write_generic(
            tmp,
            report,
            clips,
            folder=".",
            dataset=dataset,
            convention=convention,
            fps=fps,
            mode=mode,
            split_by=split_by,
            ratios=ratios,
            seed=seed,
            templates=tpl,
            audio_sub="audio",
            annot_sub="annotations",
            template_source=Path(templates) if templates else None,
        )

    return _run(dst, overwrite, build)


def convert_livelinkface(*args: object, **kwargs: object) -> ConvertReport:
    """Live Link Face takes (:func:`unitalker.data.livelinkface.convert_livelinkface`)."""
    from unitalker.data import livelinkface

    return livelinkface.convert_livelinkface(*args, **kwargs)  # type: ignore[arg-type,return-value]


CONVERTERS: dict[str, Callable[..., ConvertReport]] = {
    "biwi": convert_biwi,
    "vocaset": convert_vocaset,
    "multiface": convert_multiface,
    "3detf": convert_3detf,
    "folder": convert_folder,
    "livelinkface": convert_livelinkface,
}

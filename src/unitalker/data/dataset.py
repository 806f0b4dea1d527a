"""Clips as training / evaluation items: audio, motion, template, identity.

:class:`ClipDataset` reads a manifest split and yields, per clip::

    {"audio": float32 [S] (16 kHz mono), "motion": float32 [T, D] (scaled, at the
     convention's fps), "template": float32 [D] (scaled), "identity": int (global),
     "convention": str, "dataset": str, "fps": float, "name": str}

What it does, in the original's order: load the annotation, convert its frame rate
(:mod:`unitalker.data.framerate`), multiply annotation and template by the convention
scale, decode the audio to 16 kHz, cut both to ``min(audio, annotation, max_seconds)``
and drop clips shorter than ``min_seconds``.

Durations are probed from file headers when the dataset is built (no decoding), so the
length-bucketing sampler and the ``min_seconds`` filter work before any audio is read.
Audio is decoded once per version of a file (:class:`AudioCache`: in memory per process,
plus an optional on-disk cache, both keyed by path, mtime and size). With DataLoader
workers, :meth:`ClipDataset.preload` in the main process first (the trainer does), the
disk cache, or ``persistent_workers=True``: otherwise every epoch's fresh workers decode
again.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np

from unitalker import conventions
from unitalker.audio import SAMPLE_RATE, AudioError, load_audio, metadata_seconds
from unitalker.data.framerate import convert_framerate, converted_length
from unitalker.data.identities import IdentityTable
from unitalker.data.manifest import (
    ClipEntry,
    DatasetSplit,
    Manifest,
    ManifestError,
    check_fps,
    load_manifest,
)
from unitalker.progress import StageProgress, track

logger = logging.getLogger(__name__)


class ClipError(ValueError):
    """A clip that cannot be loaded; the message names the file."""


# --------------------------------------------------------------------------------------
# file-level helpers (also used by ``data check`` and the PCA fit)


def annotation_shape(path: Path) -> tuple[int, ...]:
    """Shape of an ``.npy`` annotation from its header (no data read).

    Raises:
        ClipError: missing, unreadable or truncated file.
    """
    if not path.exists():
        raise ClipError(f"{path}: annotation file not found")
    try:
        arr = np.load(path, mmap_mode="r", allow_pickle=False)
    except Exception as e:  # noqa: BLE001 - truncated / not npy / object arrays
        raise ClipError(
            f"{path}: cannot read annotation npy (truncated or not a .npy?): {e}"
        ) from e
    shape = tuple(arr.shape)
    del arr
    return shape


def load_annotation(path: Path, convention: str) -> np.ndarray:
    """Read an annotation ``[T, ...]`` and return raw float32 ``[T, D]``, checked.

    Raises:
        ClipError: missing / truncated file, wrong width for the convention, no frames,
            NaN or infinite values (the message gives the first bad frame).
    """
    conv = conventions.get(convention)
    if not path.exists():
        raise ClipError(f"{path}: annotation file not found")
    try:
        arr = np.load(path, allow_pickle=False)
    except Exception as e:  # noqa: BLE001
        raise ClipError(
            f"{path}: cannot read annotation npy (truncated or not a .npy?): {e}"
        ) from e
    if arr.ndim < 2 or arr.shape[0] == 0:
        raise ClipError(f"{path}: expected [T, ...] annotation frames, got shape {arr.shape}")
    flat = arr.reshape(arr.shape[0], -1)
    if flat.shape[1] != conv.dim:
        raise ClipError(
            f"{path}: annotation has {flat.shape[1]} values per frame, convention "
            f"{convention} expects {conv.dim}"
        )
    flat = np.asarray(flat, dtype=np.float32)
    finite = np.isfinite(flat).all(axis=1)
    if not finite.all():
        bad = np.flatnonzero(~finite)
        raise ClipError(
            f"{path}: NaN or infinite values in {len(bad)} frame(s), first at frame {bad[0]}"
        )
    return flat


def check_annotation_header(path: Path, convention: str) -> int:
    """Frame count of an annotation, checking its width against the convention from the header."""
    shape = annotation_shape(path)
    conv = conventions.get(convention)
    if len(shape) < 2 or shape[0] == 0:
        raise ClipError(f"{path}: expected [T, ...] annotation frames, got shape {shape}")
    width = int(np.prod(shape[1:]))
    if width != conv.dim:
        raise ClipError(
            f"{path}: annotation has {width} values per frame, convention {convention} expects {conv.dim}"
        )
    return int(shape[0])


def probe_audio_seconds(path: Path) -> float:
    """Audio duration from the file header (``.npy`` = 16 kHz samples), without decoding.

    Raises:
        ClipError: missing, empty or unreadable file.
    """
    if not path.exists():
        raise ClipError(f"{path}: audio file not found")
    if path.stat().st_size == 0:
        raise ClipError(f"{path}: empty audio file")
    suffix = path.suffix.lower()
    try:
        if suffix == ".npy":
            arr = np.load(path, mmap_mode="r", allow_pickle=False)
            n = arr.shape[-1] if arr.ndim == 2 and arr.shape[0] < arr.shape[1] else arr.shape[0]
            return float(n) / SAMPLE_RATE
        try:
            import soundfile as sf

            info = sf.info(str(path))
            return float(info.frames) / float(info.samplerate)
        except Exception:  # noqa: BLE001 - formats libsndfile lacks: ask FFmpeg
            seconds = metadata_seconds(path)
            if seconds is not None:
                return seconds
            # Unknown duration in the header: decode once (rare containers).
            return len(load_audio(path)) / SAMPLE_RATE
    except ClipError:
        raise
    except AudioError as e:  # names the file already
        raise ClipError(str(e)) from e
    except Exception as e:  # noqa: BLE001
        raise ClipError(f"{path}: cannot read audio header: {e}") from e


def audio_cache_key(path: Path) -> str:
    """Hash of absolute path, mtime, size and target rate: the disk-cache file name."""
    st = path.stat()
    text = f"{os.path.abspath(path)}|{st.st_mtime_ns}|{st.st_size}|{SAMPLE_RATE}"
    return hashlib.sha1(text.encode()).hexdigest()


class AudioCache:
    """Decoded 16 kHz audio, decoded once per version of a file.

    A version is the file's absolute path, mtime and size (:func:`audio_cache_key`), so a
    file rewritten in place is decoded again. Arrays are kept in memory (``memory``; the
    DataLoader workers forked after a :meth:`ClipDataset.preload` share them) and, with
    ``cache_dir``, as one ``.npy`` per version on disk (shared by workers and later runs).

    Attributes:
        decoded: files this process decoded (neither cache had them).
    """

    def __init__(self, cache_dir: str | Path | None = None, memory: bool = True) -> None:
        self.cache_dir = Path(cache_dir) if cache_dir is not None else None
        self.memory = memory
        self.decoded = 0
        self._mem: dict[str, tuple[str, np.ndarray]] = {}  # path -> (version key, [S])

    def __len__(self) -> int:
        return len(self._mem)

    def get(self, path: Path) -> np.ndarray:
        """The decoded audio ``[S]`` of ``path`` (from memory, disk, or decoded now).

        Raises:
            ClipError: missing or undecodable file (the message names it).
        """
        if not path.exists():
            raise ClipError(f"{path}: audio file not found")
        key = audio_cache_key(path)
        hit = self._mem.get(str(path))
        if hit is not None and hit[0] == key:
            return hit[1]
        wav = self._read_disk(key)
        if wav is None:
            try:
                wav = load_audio(path)
            except AudioError as e:
                raise ClipError(str(e)) from e
            self.decoded += 1
            self._write_disk(key, wav)
        if self.memory:
            self._mem[str(path)] = (key, wav)  # replaces an older version of the file
        return wav

    def _disk_path(self, key: str) -> Path | None:
        return None if self.cache_dir is None else self.cache_dir / key[:2] / f"{key}.npy"

    def _read_disk(self, key: str) -> np.ndarray | None:
        cp = self._disk_path(key)
        if cp is None or not cp.exists():
            return None
        try:
            return np.load(cp, allow_pickle=False)
        except Exception as e:  # noqa: BLE001 - a damaged cache entry is re-decoded
            logger.warning("ignoring damaged cache file %s: %s", cp, e)
            return None

    def _write_disk(self, key: str, wav: np.ndarray) -> None:
        cp = self._disk_path(key)
        if cp is None:
            return
        cp.parent.mkdir(parents=True, exist_ok=True)
        # Write then rename, so a concurrent reader (another worker) never sees half a file.
        fd, tmp = tempfile.mkstemp(dir=cp.parent, suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as fh:
                np.save(fh, wav)
            os.replace(tmp, cp)
        except OSError:
            Path(tmp).unlink(missing_ok=True)
            raise


# --------------------------------------------------------------------------------------


def select_fraction(
    entries: Sequence[ClipEntry], fraction: float | dict[str, float], seed: int = 0
) -> list[int]:
    """Indices of a deterministic fraction of each dataset's clips (at least one per dataset).

    The same seed gives nested subsets: the 1/4 subset is inside the 1/2 subset, as in
    the paper's "iteratively discard half of the training set".
    """
    by_ds: dict[str, list[int]] = {}
    for i, e in enumerate(entries):
        by_ds.setdefault(e.dataset, []).append(i)
    keep: list[int] = []
    for ds, idx in by_ds.items():
        f = fraction.get(ds, 1.0) if isinstance(fraction, dict) else fraction
        if not 0 < f <= 1:
            raise ValueError(f"data fraction for {ds} must be in (0, 1], got {f}")
        if f >= 1:
            keep += idx
            continue
        # Seed per dataset so adding a dataset does not change another's subset.
        digest = hashlib.sha1(f"{seed}|{ds}".encode()).digest()
        rng = np.random.default_rng(int.from_bytes(digest[:8], "little"))
        order = rng.permutation(len(idx))
        n = max(1, round(len(idx) * f))
        keep += sorted(idx[j] for j in order[:n])
    return sorted(keep)


class ClipDataset:
    """Map-style dataset over one manifest split (a ``torch.utils.data.Dataset``).

    Args:
        manifest: a :class:`Manifest` or a path (split file, dataset folder, root).
        split: split name (``train``, ``val``, ``test``, ...); None = the file's split / train.
        max_seconds: cut each clip to at most this long (training: 20 s like the
            original); None keeps whole sequences (evaluation).
        min_seconds: drop clips shorter than this (after the cut).
        cache_dir: folder for the on-disk decoded-audio cache (None: memory only).
        memory_cache: keep decoded audio in memory (per process).
        identities: the global identity table (a checkpoint's); default: built from
            the manifest with a pivot row.
        unseen_identity: identity of a clip whose subject is not a training identity
            (BIWI Test-B, a dataset the model did not train on): ``"pivot"`` or ``"error"``.
        datasets: keep only these dataset keys.
        fraction: keep this fraction of each dataset (float or dataset -> float).
        fraction_seed: seed of the fraction's selection.
        visemes: give each item ``visemes``, int64 ``[T]`` viseme classes per motion
            frame from the clip's A2F-Synth timeline (:mod:`unitalker.data.visemes`;
            -1 where a clip has none), the target of ``loss.viseme``.
    """

    def __init__(
        self,
        manifest: Manifest | str | Path,
        split: str | None = None,
        *,
        max_seconds: float | None = 20.0,
        min_seconds: float = 0.5,
        cache_dir: str | Path | None = None,
        memory_cache: bool = True,
        identities: IdentityTable | None = None,
        unseen_identity: Literal["pivot", "error"] = "pivot",
        datasets: Sequence[str] | None = None,
        fraction: float | dict[str, float] = 1.0,
        fraction_seed: int = 0,
        visemes: bool = False,
    ) -> None:
        self.manifest = load_manifest(manifest)
        self.split = self.manifest.split(split)
        self.max_seconds = max_seconds
        self.visemes = visemes
        self.min_seconds = min_seconds
        self.audio_cache = AudioCache(cache_dir, memory=memory_cache)
        self.identities = identities or IdentityTable.from_manifest(self.manifest)
        if unseen_identity not in ("pivot", "error"):
            raise ValueError(f"unseen_identity must be 'pivot' or 'error', got {unseen_identity!r}")
        self.unseen_identity = unseen_identity

        parts = self.split.parts
        if datasets is not None:
            wanted = set(datasets)
            unknown = wanted - {p.dataset for p in parts}
            if unknown:
                raise ValueError(
                    f"{self.manifest.path}: split {self.split.name!r} has no dataset(s) "
                    f"{sorted(unknown)}; it has {[p.dataset for p in parts]}"
                )
            parts = [p for p in parts if p.dataset in wanted]
        pairs = [(e, p) for p in parts for e in p.entries]
        if fraction != 1.0:
            keep = select_fraction([e for e, _ in pairs], fraction, fraction_seed)
            pairs = [pairs[i] for i in keep]

        self.entries: list[ClipEntry] = []
        self._parts: list[DatasetSplit] = []
        self.seconds: list[float] = []  # duration after the cut
        self.identity_of: list[int] = []
        dropped = 0
        for e, p in pairs:
            if p.templates is None:
                raise ClipError(f"{p.folder}: dataset {p.dataset} has no id_template.npy")
            seconds = self._probe_seconds(e)
            if seconds < self.min_seconds:
                dropped += 1
                continue
            self.entries.append(e)
            self._parts.append(p)
            self.seconds.append(seconds)
            self.identity_of.append(self._identity(e))
        if dropped:
            logger.info("dropped %d clip(s) shorter than %.2f s", dropped, self.min_seconds)
        if not self.entries:
            raise ManifestError(
                f"{self.manifest.path}: split {self.split.name!r} is empty after dropping "
                f"{dropped} clip(s) shorter than {self.min_seconds} s"
            )

    # metadata ----------------------------------------------------------------------------

    def _probe_seconds(self, e: ClipEntry) -> float:
        n = check_annotation_header(e.annot_path, e.convention)
        check_fps(e.fps, source=e.annot_path)
        seconds = min(probe_audio_seconds(e.audio_path), n / e.fps)
        if self.max_seconds is not None:
            seconds = min(seconds, self.max_seconds)
        return seconds

    def _identity(self, e: ClipEntry) -> int:
        t = self.identities
        if e.dataset in t.datasets and e.local_id < t.n_subjects(e.dataset):
            return t.global_index(e.dataset, e.local_id)
        if self.unseen_identity == "pivot" and t.pivot:
            return t.pivot_index
        raise KeyError(
            f"{e.source}: {e.name} (subject {e.subject!r}) is not a training identity of the "
            f"identity table and the table has no pivot to stand in"
        )

    def __len__(self) -> int:
        return len(self.entries)

    @property
    def conventions(self) -> list[str]:
        """Convention of every clip."""
        return [e.convention for e in self.entries]

    @property
    def dataset_keys(self) -> list[str]:
        return [e.dataset for e in self.entries]

    @property
    def lengths(self) -> list[int]:
        """Estimated motion frames per clip at the convention's fps (for bucketing)."""
        return [
            max(1, round(s * conventions.get(e.convention).fps))
            for s, e in zip(self.seconds, self.entries, strict=True)
        ]

    def template(self, index: int) -> np.ndarray:
        e = self.entries[index]
        return self._parts[index].template(e.local_id)

    # loading -----------------------------------------------------------------------------

    def audio(self, index: int) -> np.ndarray:
        """Decoded 16 kHz audio ``[S]`` of clip ``index`` (cached, see :class:`AudioCache`)."""
        return self.audio_cache.get(self.entries[index].audio_path)

    def preload(self, progress: StageProgress | None = None) -> None:
        """Decode every clip's audio now (fills the caches); ``progress(stage, done, total)``."""
        for i in track(range(len(self)), "decoding audio", progress):
            self.audio(i)

    def motion(self, index: int) -> np.ndarray:
        """Scaled motion ``[T, D]`` at the convention's fps, not yet cut."""
        e = self.entries[index]
        conv = conventions.get(e.convention)
        raw = load_annotation(e.annot_path, e.convention)
        out = convert_framerate(raw, e.fps, conv.fps)
        return np.ascontiguousarray(out * np.float32(conv.scale), dtype=np.float32)

    def __getitem__(self, index: int) -> dict[str, Any]:
        e = self.entries[index]
        conv = conventions.get(e.convention)
        motion = self.motion(index)
        audio = self.audio(index)
        seconds = min(len(audio) / SAMPLE_RATE, len(motion) / conv.fps)
        if self.max_seconds is not None:
            seconds = min(seconds, self.max_seconds)
        n_samples = round(seconds * SAMPLE_RATE)
        n_frames = round(seconds * conv.fps)
        item = {
            "audio": audio[:n_samples],
            "motion": motion[:n_frames],
            "template": self.template(index),
            "identity": self.identity_of[index],
            "convention": e.convention,
            "dataset": e.dataset,
            "fps": float(conv.fps),
            "name": e.name,
        }
        if self.visemes:
            from unitalker.data.visemes import clip_visemes

            item["visemes"] = clip_visemes(e.audio_path, e.dataset, n_frames, conv.fps)
        return item


def expected_frames(n_frames: int, native_fps: float, convention: str) -> int:
    """Frames at the convention's fps of a ``n_frames`` annotation at ``native_fps``."""
    return converted_length(n_frames, native_fps, conventions.get(convention).fps)

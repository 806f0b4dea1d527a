"""The one manifest format: the original UniTalker data release, read natively.

A *split file* is a JSON document (formats.md Sec. 2)::

    {"info": {"id_list": ["F2", "F3", ...]},
     "data": [{"annot_path": "vertices_npy/F2_e01.npy", "audio_path": "wav/F2_e01.wav",
               "id": 0, "annot_type": "BIWI_23370_vertices", "dataset": "D0", "fps": 25}, ...]}

Paths are relative to the JSON's folder. Beside it live ``id_template.npy``
(``[n_subjects, ...]`` neutral templates in raw units, indexed by ``id``) and, for PCA
conventions, ``pca.npz``. A *dataset folder* holds one split file per split
(``train.json``, ``val.json``, ``test.json``, any other ``NAME.json`` is split ``NAME``).
A *root folder* (``unitalker_data_release_V1/``) holds several dataset folders, possibly
nested (``D3D4_3DETF/D3_HDTF``). :func:`load_manifest` accepts any of the three.

Our converters write this same format, so there is exactly one format to read.

Path safety: every path an entry names must stay inside the manifest's data root (the
folder given, or the split file's folder). The check is lexical (``..`` and absolute
paths outside the root are refused) so that a dataset folder may still contain symlinks
to files stored elsewhere.
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from unitalker import conventions

logger = logging.getLogger(__name__)

SPLITS: tuple[str, ...] = ("train", "val", "test")
TEMPLATE_FILE = "id_template.npy"
PCA_FILE = "pca.npz"
MAX_FPS = 1000.0  # anything above is a unit mistake (ms vs s), not a frame rate
_ROOT_SEARCH_DEPTH = 3


class ManifestError(ValueError):
    """A manifest problem; the message names the offending file."""


@dataclass(frozen=True)
class ClipEntry:
    """One clip of a split file: an audio file and its annotation sequence.

    Attributes:
        audio_path: audio file (any format :func:`unitalker.audio.load_audio` reads, or a
            ``.npy`` of 16 kHz samples).
        annot_path: ``.npy`` annotation ``[T, ...]`` in raw units at ``fps``.
        convention: annotation convention name (``annot_type``).
        dataset: dataset key (``D0`` .. ``D7`` or a user key).
        subject: subject name (``info.id_list[local_id]``, or the id as text).
        local_id: row of the dataset's ``id_template.npy``.
        fps: the annotation's native frame rate.
        name: a unique readable name, ``<dataset>/<annotation stem>``.
        source: the split file the entry was read from (for error messages).
    """

    audio_path: Path
    annot_path: Path
    convention: str
    dataset: str
    subject: str
    local_id: int
    fps: float
    name: str
    source: Path | None = None


@dataclass
class DatasetSplit:
    """One split file of one dataset folder.

    Attributes:
        dataset: dataset key of all its entries.
        convention: annotation convention of all its entries.
        split: split name (the file stem).
        path: the split file.
        folder: the dataset folder (the file's parent).
        id_list: subject names, ``info.id_list``.
        entries: the clips.
        templates: ``[n_subjects, D]`` float32 templates multiplied by the convention
            scale (None when ``id_template.npy`` is absent and loading was lenient).
        pca_path: ``pca.npz`` beside the split file, or None.
    """

    dataset: str
    convention: str
    split: str
    path: Path
    folder: Path
    id_list: list[str]
    entries: list[ClipEntry]
    templates: np.ndarray | None
    pca_path: Path | None = None

    def template(self, local_id: int) -> np.ndarray:
        """The scaled, flattened template ``[D]`` of a local subject id."""
        if self.templates is None:
            raise ManifestError(
                f"{self.folder / TEMPLATE_FILE}: no templates for dataset {self.dataset}"
            )
        if not 0 <= local_id < len(self.templates):
            raise ManifestError(
                f"{self.path}: subject id {local_id} out of range for {self.folder / TEMPLATE_FILE} "
                f"({len(self.templates)} templates)"
            )
        return self.templates[local_id]


@dataclass
class Split:
    """One split (e.g. ``train``) across every dataset of a manifest, in dataset order."""

    name: str
    parts: list[DatasetSplit]

    @property
    def entries(self) -> list[ClipEntry]:
        return [e for p in self.parts for e in p.entries]

    @property
    def datasets(self) -> list[str]:
        return [p.dataset for p in self.parts]

    def part(self, dataset: str) -> DatasetSplit:
        for p in self.parts:
            if p.dataset == dataset:
                return p
        raise KeyError(f"split {self.name!r} has no dataset {dataset!r}; it has {self.datasets}")

    @property
    def templates(self) -> dict[str, np.ndarray | None]:
        """Dataset key -> ``[n_subjects, D]`` scaled templates."""
        return {p.dataset: p.templates for p in self.parts}

    def __len__(self) -> int:
        return sum(len(p.entries) for p in self.parts)

    def __iter__(self) -> Iterator[ClipEntry]:
        return iter(self.entries)


@dataclass
class DatasetFolder:
    """A dataset folder and the split files found in it (loaded lazily)."""

    folder: Path
    split_files: dict[str, Path]
    _cache: dict[str, DatasetSplit] = field(default_factory=dict, repr=False)


class Manifest:
    """A manifest: one split file, one dataset folder, or a root of dataset folders.

    Args:
        path: the JSON file or folder.
        strict: raise on the first problem (training) instead of skipping bad entries
            and collecting problems in :attr:`problems` (``data check``).

    Splits are read on first use with :meth:`split`; dataset order is the registry's
    (D0..D7) then the remaining keys alphabetically, so identity offsets are stable.
    """

    def __init__(self, path: str | Path, *, strict: bool = True) -> None:
        self.path = Path(path)
        self.strict = strict
        self.problems: list[str] = []
        if not self.path.exists():
            raise FileNotFoundError(f"manifest not found: {self.path}")
        if self.path.is_file():
            if self.path.suffix.lower() != ".json":
                raise ManifestError(f"{self.path}: a manifest is a split .json file or a folder")
            self.root = self.path.parent
            self.single_split: str | None = self.path.stem
            self._folders = [DatasetFolder(self.root, {self.path.stem: self.path})]
        else:
            self.root = self.path
            self.single_split = None
            self._folders = _find_dataset_folders(self.path)
            if not self._folders:
                raise ManifestError(
                    f"{self.path}: no split files (train.json / val.json / test.json) found "
                    f"here or in sub-folders up to depth {_ROOT_SEARCH_DEPTH}"
                )
        self._ordered: list[DatasetFolder] | None = None

    def __repr__(self) -> str:
        return f"Manifest({str(self.path)!r}, splits={self.split_names})"

    @property
    def split_names(self) -> list[str]:
        """All split names present in any dataset folder (train, val, test first)."""
        names = {n for f in self._folders for n in f.split_files}
        return [s for s in SPLITS if s in names] + sorted(names - set(SPLITS))

    def has_split(self, name: str) -> bool:
        return name in self.split_names

    def _resolve_split_name(self, name: str | None) -> str:
        if self.single_split is not None:
            if name not in (None, self.single_split):
                # A single file is one split; asking it for another would silently give
                # the wrong data, so say so.
                raise ManifestError(
                    f"{self.path}: a single split file ({self.single_split!r}); it has no split {name!r}"
                )
            return self.single_split
        if name is None:
            name = "train"
        return name

    def split(self, name: str | None = None) -> Split:
        """Read one split of every dataset folder.

        Args:
            name: split name (file stem); None means the single file's split, or train.

        Raises:
            ManifestError: no dataset has the split, or (strict) a split file is invalid.
        """
        name = self._resolve_split_name(name)
        parts = []
        for folder in self.dataset_folders():
            if name not in folder.split_files:
                logger.info("%s has no %s split", folder.folder, name)
                continue
            if name not in folder._cache:
                folder._cache[name] = read_split_file(
                    folder.split_files[name],
                    root=self.root,
                    strict=self.strict,
                    problems=self.problems,
                )
            parts.append(folder._cache[name])
        if not parts:
            raise ManifestError(
                f"{self.path}: no dataset has a {name!r} split (splits present: {self.split_names})"
            )
        return Split(name, parts)

    def dataset_folders(self) -> list[DatasetFolder]:
        """Dataset folders in dataset order (registry order D0..D7, then by key)."""
        if self._ordered is None:
            keyed = []
            for f in self._folders:
                key = _peek_dataset_key(f)
                keyed.append((_dataset_order(key, f.folder), f))
            keyed.sort(key=lambda kv: kv[0])
            self._ordered = [f for _, f in keyed]
        return self._ordered

    def identity_split(self, dataset_folder: DatasetFolder) -> DatasetSplit:
        """The split whose ``id_list`` defines the folder's training identities (train first)."""
        names = list(dataset_folder.split_files)
        name = "train" if "train" in names else sorted(names)[0]
        if name not in dataset_folder._cache:
            dataset_folder._cache[name] = read_split_file(
                dataset_folder.split_files[name],
                root=self.root,
                strict=self.strict,
                problems=self.problems,
            )
        return dataset_folder._cache[name]


def load_manifest(path: str | Path | Manifest, *, strict: bool = True) -> Manifest:
    """Open a manifest (a split file, a dataset folder or a root of dataset folders)."""
    if isinstance(path, Manifest):
        return path
    return Manifest(path, strict=strict)


# --------------------------------------------------------------------------------------
# discovery


def _is_split_file(p: Path) -> bool:
    return p.suffix.lower() == ".json" and not p.name.startswith(".")


def _find_dataset_folders(root: Path) -> list[DatasetFolder]:
    found = []

    def visit(folder: Path, depth: int) -> None:
        try:
            children = sorted(folder.iterdir())
        except OSError as e:
            raise ManifestError(f"{folder}: cannot list folder: {e}") from e
        splits = {p.stem: p for p in children if p.is_file() and _is_split_file(p)}
        if splits and (folder / TEMPLATE_FILE).exists() or any(s in splits for s in SPLITS):
            found.append(DatasetFolder(folder, splits))
            return
        if depth >= _ROOT_SEARCH_DEPTH:
            return
        for c in children:
            if c.is_dir() and not c.name.startswith("."):
                visit(c, depth + 1)

    visit(root, 0)
    return found


def _peek_dataset_key(folder: DatasetFolder) -> str | None:
    # Read only the first entry's dataset key for ordering; full parsing happens later.
    # A broken file is reported when it is parsed; here it just gives no key.
    for path in folder.split_files.values():
        try:
            doc = _load_json(path)
        except (ManifestError, FileNotFoundError):
            continue
        data = doc.get("data") if isinstance(doc, dict) else None
        if isinstance(data, list) and data and isinstance(data[0], dict):
            key = data[0].get("dataset")
            if isinstance(key, str) and key:
                return key
    return None


def _dataset_order(key: str | None, folder: Path) -> tuple[int, str, str]:
    order = {d.key: i for i, d in enumerate(conventions.datasets())}
    if key is not None and key in order:
        return (order[key], key, str(folder))
    return (len(order), key or "", str(folder))


# --------------------------------------------------------------------------------------
# parsing


def inside_root(path: Path, root: Path) -> bool:
    """Whether ``path`` (lexically normalised) lies inside ``root``."""
    p = os.path.normpath(os.path.abspath(path))
    r = os.path.normpath(os.path.abspath(root))
    return p == r or p.startswith(r.rstrip(os.sep) + os.sep)


def resolve_entry_path(value: Any, base: Path, root: Path, *, source: Path, what: str) -> Path:
    """Resolve a path from a split file against its folder and refuse escapes from the root."""
    if not isinstance(value, str) or not value:
        raise ManifestError(f"{source}: {what} must be a non-empty string, got {value!r}")
    if "\x00" in value:
        raise ManifestError(f"{source}: {what} {value!r} contains a NUL character")
    p = Path(value)
    full = Path(os.path.normpath(p if p.is_absolute() else base / p))
    if not inside_root(full, root):
        raise ManifestError(f"{source}: {what} {value!r} resolves outside the data root {root}")
    return full


def check_fps(fps: Any, *, source: Path | str) -> float:
    """Validate a native annotation frame rate (positive, finite, at most :data:`MAX_FPS`)."""
    try:
        value = float(fps)
    except (TypeError, ValueError, OverflowError):
        raise ManifestError(f"{source}: unsupported fps {fps!r} (not a number)") from None
    if not math.isfinite(value) or value <= 0 or value > MAX_FPS:
        raise ManifestError(f"{source}: unsupported fps {fps!r} (must be in (0, {MAX_FPS:g}])")
    return value


def load_templates(path: Path, convention: str) -> np.ndarray:
    """Read ``id_template.npy`` and return ``[n, D]`` float32 multiplied by the convention scale."""
    conv = conventions.get(convention)
    if not path.exists():
        raise ManifestError(f"{path}: template file not found")
    try:
        raw = np.load(path, allow_pickle=False)
    except Exception as e:  # noqa: BLE001 - one clear message per file
        raise ManifestError(f"{path}: cannot read templates: {e}") from e
    if raw.ndim < 1 or raw.shape[0] == 0:
        raise ManifestError(f"{path}: expected [n_subjects, ...] templates, got shape {raw.shape}")
    flat = raw.reshape(raw.shape[0], -1)
    if flat.shape[1] != conv.dim:
        raise ManifestError(
            f"{path}: templates have {flat.shape[1]} values per subject, convention "
            f"{convention} has dim {conv.dim}"
        )
    if not np.isfinite(flat).all():
        raise ManifestError(f"{path}: templates contain NaN or infinite values")
    return (flat.astype(np.float32) * np.float32(conv.scale)).astype(np.float32)


def read_split_file(
    path: str | Path,
    *,
    root: str | Path | None = None,
    strict: bool = True,
    problems: list[str] | None = None,
) -> DatasetSplit:
    """Parse one split JSON file (and its folder's ``id_template.npy`` / ``pca.npz``).

    Args:
        path: the split file.
        root: the data root entries must stay inside (default: the file's folder).
        strict: raise on the first problem; otherwise skip bad entries and append a
            message per problem to ``problems``.
        problems: where lenient mode reports.

    Raises:
        ManifestError: malformed JSON, mixed datasets / conventions, unregistered
            convention, path escaping the root, bad fps, bad templates.
    """
    path = Path(path)
    folder = path.parent
    root = Path(root) if root is not None else folder
    problems = problems if problems is not None else []

    def fail(msg: str) -> None:
        if strict:
            raise ManifestError(msg)
        problems.append(msg)

    doc = _read_split_document(path)
    id_list = doc.id_list

    entries: list[ClipEntry] = []
    keys: set[str] = set()
    convs: set[str] = set()
    for i, raw in enumerate(doc.data):
        where = f"{path} entry {i}"
        try:
            item = _validate_entry(raw, where)
            conv_name = item.annot_type
            try:
                conventions.get(conv_name)
            except KeyError as e:
                raise ManifestError(f"{where}: {e.args[0]}") from None
            annot = resolve_entry_path(
                item.annot_path, folder, root, source=path, what="annot_path"
            )
            audio = resolve_entry_path(
                item.audio_path, folder, root, source=path, what="audio_path"
            )
            fps = check_fps(item.fps, source=f"{where} ({annot.name})")
            local_id = item.id
            dataset = item.dataset or folder.name
            subject = id_list[local_id] if local_id < len(id_list) else str(local_id)
        except ManifestError as e:
            fail(str(e))
            continue
        keys.add(dataset)
        convs.add(conv_name)
        entries.append(
            ClipEntry(
                audio_path=audio,
                annot_path=annot,
                convention=conv_name,
                dataset=dataset,
                subject=subject,
                local_id=local_id,
                fps=fps,
                name=f"{dataset}/{annot.stem}",
                source=path,
            )
        )
    if len(keys) > 1 or len(convs) > 1:
        # One id_template.npy per folder only makes sense for one dataset / convention.
        raise ManifestError(
            f"{path}: a split file holds one dataset and one convention; found datasets "
            f"{sorted(keys)} and conventions {sorted(convs)}"
        )
    if not doc.data:
        fail(f"{path}: empty split (no entries)")
    dataset = next(iter(keys)) if keys else folder.name
    convention = next(iter(convs)) if convs else ""

    templates = None
    tpath = folder / TEMPLATE_FILE
    if convention:
        try:
            templates = load_templates(tpath, convention)
        except ManifestError as e:
            fail(str(e))
        if templates is not None:
            for e in entries:
                if e.local_id >= len(templates):
                    fail(
                        f"{path}: {e.name} has subject id {e.local_id} but {tpath} holds "
                        f"{len(templates)} templates"
                    )
    pca = folder / PCA_FILE
    return DatasetSplit(
        dataset=dataset,
        convention=convention,
        split=path.stem,
        path=path,
        folder=folder,
        id_list=id_list,
        entries=entries,
        templates=templates,
        pca_path=pca if pca.exists() else None,
    )


# --------------------------------------------------------------------------------------
# the split file's schema: its shape is checked before any value is used, so a wrong JSON
# type is a ManifestError naming the file and the field, never an AttributeError.

MAX_SPLIT_BYTES = 256 * 1024**2  # a split of a million clips is ~200 MB of JSON
MAX_SUBJECT_ID = 2**31 - 1
MAX_PATH_CHARS = 4096


def _schemas() -> tuple[Any, Any]:
    """The pydantic models of a split document and of one entry (built on first use)."""
    global _SCHEMAS
    if _SCHEMAS is None:
        from typing import Annotated

        from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr

        Path_ = Annotated[StrictStr, Field(min_length=1, max_length=MAX_PATH_CHARS)]
        Name = Annotated[StrictStr, Field(min_length=1, max_length=256)]

        class Info(BaseModel):
            model_config = ConfigDict(extra="allow")
            id_list: list[StrictStr | StrictInt] | None = None

        class Document(BaseModel):
            model_config = ConfigDict(extra="allow")
            info: Info | None = None
            data: list[Any]

        class Entry(BaseModel):
            model_config = ConfigDict(extra="allow")
            annot_path: Path_
            audio_path: Path_
            id: Annotated[StrictInt, Field(ge=0, le=MAX_SUBJECT_ID)]
            annot_type: Name
            # a number (strict: "25" is not a frame rate); its range is check_fps's
            fps: Annotated[float, Field(strict=True, allow_inf_nan=True)] | StrictInt
            dataset: Name | None = None

        _SCHEMAS = (Document, Entry)
    return _SCHEMAS


_SCHEMAS: tuple[Any, Any] | None = None


def _schema_error(where: str, err: Any) -> ManifestError:
    """The first problem of a pydantic ValidationError as ``where: field: problem``."""
    import re

    first = err.errors()[0]
    # drop pydantic's union-branch tags (``fps.float``) so the field reads as in the file
    parts = [p for p in first["loc"] if isinstance(p, int) or p not in _TYPE_TAGS]
    loc = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in parts).lstrip(".")
    msg = re.sub(r" or instance of \w+", "", first["msg"])
    value = first.get("input")
    shown = repr(value)
    if len(shown) > 60:
        shown = shown[:57] + "..."
    field_ = f" {loc}" if loc else ""
    return ManifestError(f"{where}:{field_}: {msg[:1].lower() + msg[1:]} (got {shown})")


_TYPE_TAGS = {"float", "int", "str", "bool", "list", "dict", "none", "constrained-str"}


@dataclass(frozen=True)
class _Document:
    id_list: list[str]
    data: list[Any]


def _load_json(path: Path) -> Any:
    """A split file's JSON (size-bounded; every failure a ManifestError naming the file)."""
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise FileNotFoundError(f"split file not found: {path}") from None
    except OSError as e:
        raise ManifestError(f"{path}: cannot read split file: {e}") from e
    if size > MAX_SPLIT_BYTES:
        raise ManifestError(
            f"{path}: {size / 1024**2:.0f} MB is too large for a split file "
            f"(limit {MAX_SPLIT_BYTES // 1024**2} MB)"
        )
    try:
        with open(path, "rb") as fh:
            doc = json.loads(fh.read().decode("utf-8"))
    except FileNotFoundError:
        raise FileNotFoundError(f"split file not found: {path}") from None
    except UnicodeDecodeError as e:
        raise ManifestError(f"{path}: not a valid JSON split file: not UTF-8 text ({e})") from e
    except RecursionError:
        raise ManifestError(f"{path}: not a valid JSON split file: nested too deeply") from None
    except (OSError, ValueError) as e:
        raise ManifestError(f"{path}: not a valid JSON split file: {e}") from e
    return doc


def _read_split_document(path: Path) -> _Document:
    """Read and shape-check a split file: ``{"info": {"id_list": [...]}, "data": [...]}``."""
    from pydantic import ValidationError

    doc = _load_json(path)
    Document, _ = _schemas()
    if not isinstance(doc, dict):
        raise ManifestError(
            f"{path}: expected {{'info': {{'id_list': [...]}}, 'data': [...]}}, "
            f"got a JSON {type(doc).__name__}"
        )
    try:
        parsed = Document.model_validate(doc)
    except ValidationError as e:
        raise _schema_error(str(path), e) from None
    ids = parsed.info.id_list if parsed.info is not None and parsed.info.id_list else []
    return _Document([str(s) for s in ids], parsed.data)


def _validate_entry(item: Any, where: str) -> Any:
    from pydantic import ValidationError

    _, Entry = _schemas()
    if not isinstance(item, dict):
        raise ManifestError(f"{where}: expected an object, got {type(item).__name__}")
    missing = [k for k in ("annot_path", "audio_path", "id", "annot_type", "fps") if k not in item]
    if missing:
        raise ManifestError(f"{where}: missing keys {missing}")
    try:
        return Entry.model_validate(item)
    except ValidationError as e:
        raise _schema_error(where, e) from None


def write_split_file(
    path: str | Path,
    entries: list[dict[str, Any]],
    id_list: list[str],
) -> None:
    """Write a split file in the release format (entries already hold relative paths)."""
    doc = {"info": {"id_list": list(id_list)}, "data": entries}
    Path(path).write_text(json.dumps(doc, indent=1) + "\n")

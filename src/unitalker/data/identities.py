"""The global identity table: one row per training subject across datasets, plus a pivot.

The original model has one identity embedding row per subject of every training
dataset, datasets concatenated in order (D0's subjects, then D1's, ...), and one extra
*pivot* row at the end when pivot training is on (formats.md Sec. 1). A checkpoint must
carry this table so that evaluation passes the same global index (local id + dataset
offset) the model was trained with.

Names are ``<dataset>:<subject>``, e.g. ``D1:FaceTalk_170725_00137_TA``; the pivot is
``pivot``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    from unitalker.data.manifest import Manifest

PIVOT_NAME = "pivot"
FORMAT_VERSION = 1


@dataclass
class _Block:
    dataset: str
    convention: str
    subjects: list[str]


@dataclass
class IdentityTable:
    """Global identity indices over several datasets.

    Build with :meth:`from_manifest` (training identities of every dataset of a
    manifest) or :meth:`from_datasets`. ``to_dict`` / ``from_dict`` round-trip through
    JSON (checkpoints store it).
    """

    blocks: list[_Block]
    pivot: bool = True
    _templates: dict[str, np.ndarray] = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        seen = set()
        for b in self.blocks:
            if b.dataset in seen:
                raise ValueError(f"dataset {b.dataset!r} appears twice in the identity table")
            seen.add(b.dataset)
        self._index = {}
        i = 0
        for b in self.blocks:
            for s in b.subjects:
                self._index[f"{b.dataset}:{s}"] = i
                i += 1
        if self.pivot:
            self._index[PIVOT_NAME] = i

    # construction ---------------------------------------------------------------------

    @classmethod
    def from_datasets(
        cls,
        datasets: list[tuple[str, str, list[str]]],
        *,
        pivot: bool = True,
        templates: dict[str, np.ndarray] | None = None,
    ) -> IdentityTable:
        """Build from ``[(dataset key, convention, subject names), ...]`` in order.

        Args:
            templates: optional dataset key -> ``[n_subjects, D]`` scaled templates
                (kept in memory for :meth:`template`; not serialised).
        """
        table = cls([_Block(d, c, list(s)) for d, c, s in datasets], pivot=pivot)
        for key, tpl in (templates or {}).items():
            table.set_templates(key, tpl)
        return table

    @classmethod
    def from_manifest(cls, manifest: Manifest | Any, *, pivot: bool = True) -> IdentityTable:
        """Training identities of every dataset of a manifest, in dataset order.

        Each dataset contributes its training split's ``info.id_list`` (the first split
        file when there is no ``train``), as the original ``MixAudioFaceDataset`` did.
        """
        from unitalker.data.manifest import load_manifest

        manifest = load_manifest(manifest)
        specs, templates = [], {}
        for folder in manifest.dataset_folders():
            part = manifest.identity_split(folder)
            ids = part.id_list
            if not ids:
                # No id_list: subjects are the local ids that occur.
                n = max((e.local_id for e in part.entries), default=-1) + 1
                ids = [str(i) for i in range(n)]
            specs.append((part.dataset, part.convention, ids))
            if part.templates is not None:
                templates[part.dataset] = part.templates
        return cls.from_datasets(specs, pivot=pivot, templates=templates)

    # templates --------------------------------------------------------------------------

    def set_templates(self, dataset: str, templates: np.ndarray) -> None:
        """Keep ``[n, D]`` scaled templates of a dataset's subjects (row ``j`` = local id ``j``).

        Templates live in memory only (:meth:`to_dict` does not serialise them).

        Raises:
            KeyError: ``dataset`` is not in the table.
        """
        self._block(dataset)  # a template of a dataset the table lacks is a caller's bug
        self._templates[dataset] = templates

    @property
    def dataset_templates(self) -> dict[str, np.ndarray]:
        """Dataset key -> ``[n, D]`` templates of the datasets that have them, in table order."""
        t = self._templates
        return {b.dataset: t[b.dataset] for b in self.blocks if b.dataset in t}

    # lookup -----------------------------------------------------------------------------

    def __len__(self) -> int:
        """Number of embedding rows (subjects + the pivot)."""
        return sum(len(b.subjects) for b in self.blocks) + int(self.pivot)

    @property
    def names(self) -> list[str]:
        """Every identity name in index order."""
        return list(self._index)

    @property
    def datasets(self) -> list[str]:
        return [b.dataset for b in self.blocks]

    @property
    def pivot_index(self) -> int:
        """The pivot row (``len(self) - 1``)."""
        if not self.pivot:
            raise KeyError("this identity table has no pivot row (trained without pivot identity)")
        return len(self) - 1

    def offset(self, dataset: str) -> int:
        """Global index of the dataset's local subject 0."""
        off = 0
        for b in self.blocks:
            if b.dataset == dataset:
                return off
            off += len(b.subjects)
        raise KeyError(f"dataset {dataset!r} is not in the identity table; it has {self.datasets}")

    def n_subjects(self, dataset: str) -> int:
        return len(self._block(dataset).subjects)

    def _block(self, dataset: str) -> _Block:
        for b in self.blocks:
            if b.dataset == dataset:
                return b
        raise KeyError(f"dataset {dataset!r} is not in the identity table; it has {self.datasets}")

    def global_index(self, dataset: str, local_id: int) -> int:
        """Global index of a dataset's local subject id."""
        n = self.n_subjects(dataset)
        if not 0 <= local_id < n:
            raise KeyError(f"{dataset} has {n} training identities; local id {local_id} is not one")
        return self.offset(dataset) + local_id

    def index(self, name_or_int: str | int) -> int:
        """Index of ``"D1:FaceTalk_..."``, ``"pivot"``, or a checked integer index."""
        if isinstance(name_or_int, (int, np.integer)):
            i = int(name_or_int)
            if not 0 <= i < len(self):
                raise KeyError(f"identity index {i} out of range [0, {len(self)})")
            return i
        try:
            return self._index[name_or_int]
        except KeyError:
            names = self.names
            sample = ", ".join(names[:4] + ([PIVOT_NAME] if self.pivot and len(names) > 4 else []))
            raise KeyError(
                f"unknown identity {name_or_int!r}; {len(names)} known, e.g. {sample}"
            ) from None

    def name(self, index: int) -> str:
        return self.names[self.index(index)]

    def dataset_of(self, index: int) -> str | None:
        """Dataset of a global index (None for the pivot)."""
        i = self.index(index)
        off = 0
        for b in self.blocks:
            if i < off + len(b.subjects):
                return b.dataset
            off += len(b.subjects)
        return None

    def convention_of(self, index: int) -> str | None:
        ds = self.dataset_of(index)
        return None if ds is None else self._block(ds).convention

    def template(self, name_or_int: str | int) -> np.ndarray:
        """Scaled, flattened template ``[D]`` of one identity (in its dataset's convention).

        Raises:
            KeyError: the pivot (it has no template), or templates were not loaded.
        """
        i = self.index(name_or_int)
        ds = self.dataset_of(i)
        if ds is None:
            raise KeyError("the pivot identity has no template; pick a dataset subject's template")
        if ds not in self._templates:
            raise KeyError(
                f"no templates loaded for dataset {ds!r} (build the table from a manifest)"
            )
        return self._templates[ds][i - self.offset(ds)]

    def templates_for(self, convention: str) -> dict[str, np.ndarray]:
        """Identity name -> ``[D]`` template for every loaded subject of a convention."""
        out = {}
        for b in self.blocks:
            if b.convention != convention or b.dataset not in self._templates:
                continue
            tpl = self._templates[b.dataset]
            for j, s in enumerate(b.subjects):
                if j < len(tpl):
                    out[f"{b.dataset}:{s}"] = tpl[j]
        return out

    # serialisation ------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": FORMAT_VERSION,
            "pivot": self.pivot,
            "datasets": [
                {"key": b.dataset, "convention": b.convention, "subjects": list(b.subjects)}
                for b in self.blocks
            ],
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> IdentityTable:
        version = d.get("version", FORMAT_VERSION)
        if version > FORMAT_VERSION:
            raise ValueError(
                f"identity table format {version} is newer than this unitalker ({FORMAT_VERSION})"
            )
        try:
            blocks = [
                _Block(str(b["key"]), str(b["convention"]), [str(s) for s in b["subjects"]])
                for b in d["datasets"]
            ]
        except (KeyError, TypeError) as e:
            raise ValueError(f"malformed identity table: {e}") from e
        return cls(blocks, pivot=bool(d.get("pivot", True)))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, IdentityTable) and self.to_dict() == other.to_dict()

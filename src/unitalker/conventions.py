"""The one registry of annotation conventions and datasets.

Every part of unitalker that needs to know about an annotation convention (heads,
losses, metrics, exporters, the renderer, the data loaders) looks it up here, by name.

A *convention* is a way of writing facial motion down: mesh vertices of one topology,
blendshape weights in one channel order, or a parameter vector. A *dataset* (D0..D7 in
the paper) is a collection of clips annotated in one convention.

The eight original conventions and datasets are registered at import time with the
values of the original release (names, dimensions, scales, fps, subject counts); the
A2F-Synth ones are data shipped with the package (:data:`SHIPPED_FILES`), registered the
first time the registry is read. A user adds a convention from a YAML/JSON file with
:func:`register_from_file`, which is how a new dataset "plugs in a new head" without
code changes. How a convention's motion becomes vertices is :mod:`unitalker.geometry`
(a rig chosen by the convention's kind and resources).

Resources (lip / upper-face vertex indices, a blendshape rig basis, render faces, a
neutral mesh) are arrays that live in ``.npz`` / ``.npy`` files; they are loaded lazily
and cached, so registering a convention is cheap and importing this module reads no file.
"""

from __future__ import annotations

import dataclasses
import functools
import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

Kind = Literal["vertices", "blendshapes", "params"]
KINDS: tuple[str, ...] = ("vertices", "blendshapes", "params")

# ARKit 52-channel order used by EmoTalk / 3D-ETF (alphabetical).
ARKIT52_EMOTALK: tuple[str, ...] = (
    "browDownLeft",
    "browDownRight",
    "browInnerUp",
    "browOuterUpLeft",
    "browOuterUpRight",
    "cheekPuff",
    "cheekSquintLeft",
    "cheekSquintRight",
    "eyeBlinkLeft",
    "eyeBlinkRight",
    "eyeLookDownLeft",
    "eyeLookDownRight",
    "eyeLookInLeft",
    "eyeLookInRight",
    "eyeLookOutLeft",
    "eyeLookOutRight",
    "eyeLookUpLeft",
    "eyeLookUpRight",
    "eyeSquintLeft",
    "eyeSquintRight",
    "eyeWideLeft",
    "eyeWideRight",
    "jawForward",
    "jawLeft",
    "jawOpen",
    "jawRight",
    "mouthClose",
    "mouthDimpleLeft",
    "mouthDimpleRight",
    "mouthFrownLeft",
    "mouthFrownRight",
    "mouthFunnel",
    "mouthLeft",
    "mouthLowerDownLeft",
    "mouthLowerDownRight",
    "mouthPressLeft",
    "mouthPressRight",
    "mouthPucker",
    "mouthRight",
    "mouthRollLower",
    "mouthRollUpper",
    "mouthShrugLower",
    "mouthShrugUpper",
    "mouthSmileLeft",
    "mouthSmileRight",
    "mouthStretchLeft",
    "mouthStretchRight",
    "mouthUpperUpLeft",
    "mouthUpperUpRight",
    "noseSneerLeft",
    "noseSneerRight",
    "tongueOut",
)

# UniTalker in-house 51-channel order (D6/D7). The first 24 names are confirmed by the
# original authors; the rest come from a third party (UNVERIFIED): change them here only.
INHOUSE51: tuple[str, ...] = (
    "EyeBlinkLeft",
    "EyeBlinkRight",
    "EyeSquintLeft",
    "EyeSquintRight",
    "EyeLookDownLeft",
    "EyeLookDownRight",
    "EyeLookInLeft",
    "EyeLookInRight",
    "EyeWideLeft",
    "EyeWideRight",
    "EyeLookOutLeft",
    "EyeLookOutRight",
    "EyeLookUpLeft",
    "EyeLookUpRight",
    "BrowDownLeft",
    "BrowDownRight",
    "BrowInnerUp",
    "BrowOuterUpLeft",
    "BrowOuterUpRight",
    "JawOpen",
    "MouthClose",
    "JawLeft",
    "JawRight",
    "JawForward",
    "MouthUpperUpLeft",
    "MouthUpperUpRight",
    "MouthLowerDownLeft",
    "MouthLowerDownRight",
    "MouthRollUpper",
    "MouthRollLower",
    "MouthSmileLeft",
    "MouthSmileRight",
    "MouthDimpleLeft",
    "MouthDimpleRight",
    "MouthStretchLeft",
    "MouthStretchRight",
    "MouthFrownLeft",
    "MouthFrownRight",
    "MouthPressLeft",
    "MouthPressRight",
    "MouthPucker",
    "MouthFunnel",
    "MouthLeft",
    "MouthRight",
    "MouthShrugLower",
    "MouthShrugUpper",
    "NoseSneerLeft",
    "NoseSneerRight",
    "CheekPuff",
    "CheekSquintLeft",
    "CheekSquintRight",
)

# Live Link Face CSV name order (Unreal's Live Link Face app).
LIVE_LINK_ORDER: tuple[str, ...] = (
    "EyeBlinkLeft",
    "EyeLookDownLeft",
    "EyeLookInLeft",
    "EyeLookOutLeft",
    "EyeLookUpLeft",
    "EyeSquintLeft",
    "EyeWideLeft",
    "EyeBlinkRight",
    "EyeLookDownRight",
    "EyeLookInRight",
    "EyeLookOutRight",
    "EyeLookUpRight",
    "EyeSquintRight",
    "EyeWideRight",
    "JawForward",
    "JawRight",
    "JawLeft",
    "JawOpen",
    "MouthClose",
    "MouthFunnel",
    "MouthPucker",
    "MouthRight",
    "MouthLeft",
    "MouthSmileLeft",
    "MouthSmileRight",
    "MouthFrownLeft",
    "MouthFrownRight",
    "MouthDimpleLeft",
    "MouthDimpleRight",
    "MouthStretchLeft",
    "MouthStretchRight",
    "MouthRollLower",
    "MouthRollUpper",
    "MouthShrugLower",
    "MouthShrugUpper",
    "MouthPressLeft",
    "MouthPressRight",
    "MouthLowerDownLeft",
    "MouthLowerDownRight",
    "MouthUpperUpLeft",
    "MouthUpperUpRight",
    "BrowDownLeft",
    "BrowDownRight",
    "BrowInnerUp",
    "BrowOuterUpLeft",
    "BrowOuterUpRight",
    "CheekPuff",
    "CheekSquintLeft",
    "CheekSquintRight",
    "NoseSneerLeft",
    "NoseSneerRight",
    "TongueOut",
)
LIVE_LINK_ROTATIONS: tuple[str, ...] = (
    "HeadYaw",
    "HeadPitch",
    "HeadRoll",
    "LeftEyeYaw",
    "LeftEyePitch",
    "LeftEyeRoll",
    "RightEyeYaw",
    "RightEyePitch",
    "RightEyeRoll",
)


def arkit_key(name: str) -> str:
    """Case-insensitive key of an ARKit channel name (``jawOpen`` == ``JawOpen``)."""
    return name[:1].lower() + name[1:]


# Resource keys a convention may carry, and what they are.
RESOURCE_KEYS: dict[str, str] = {
    "lip_indices": "int [L] vertex indices of the lip region (LVE)",
    "upper_face_indices": "int [U] vertex indices of the upper face (UFVE, FDD)",
    "faces": "int [F, 3] triangles for rendering / mesh export",
    "rig_meanshape": "float [V, 3] neutral mesh of the blendshape rig (blendshapes only)",
    "rig_basis": "float [C, V, 3] per-channel vertex offsets (blendshapes only)",
    "neutral": "float [V, 3] a neutral mesh to render vertex outputs on",
    "lbs_template": "float [V, 3] rest mesh of a parameter convention's jaw-skinning model",
    "lbs_exprdirs": "float [E, V, 3] its linear expression basis, for params[3:3+E]",
    "lbs_jaw_weights": "float [V] its jaw skinning weight per vertex (params[0:3]: jaw axis-angle)",
    "lbs_jaw_pivot": "float [3] its jaw pivot",
}
RIG_KEYS: tuple[str, ...] = ("rig_meanshape", "rig_basis")
"""The resources that make a blendshape convention's linear rig."""
LBS_KEYS: tuple[str, ...] = ("lbs_template", "lbs_exprdirs", "lbs_jaw_weights", "lbs_jaw_pivot")
"""The resources that make a parameter convention's jaw-skinning model
(:meth:`unitalker.geometry.rigs.LBSRig.jaw_model`)."""


@dataclass(frozen=True)
class Convention:
    """One annotation convention, i.e. one output head of the model.

    Attributes:
        name: unique key (``annot_type`` in the original code), e.g. ``FLAME_5023_vertices``.
        kind: ``vertices`` (flattened ``V*3``), ``blendshapes`` (weights) or ``params``.
        dim: flattened output dimension (``V*3`` for vertices).
        fps: native output frame rate used at inference.
        scale: factor applied to raw annotations and templates when loading data.
        pca: whether the head predicts PCA coefficients (vertex conventions).
        channel_names: channel names for blendshapes / params (length ``dim``) or None.
        resources: resource key -> file path (``.npy`` or ``name.npz:key``); see
            :data:`RESOURCE_KEYS`. Loaded lazily by :meth:`resource`.
        description: a line for humans.
    """

    name: str
    kind: Kind
    dim: int
    fps: float
    scale: float = 1.0
    pca: bool = False
    channel_names: tuple[str, ...] | None = None
    resources: tuple[tuple[str, str], ...] = ()
    description: str = ""

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(
                f"convention {self.name!r}: kind must be one of {KINDS}, got {self.kind!r}"
            )
        if self.dim <= 0:
            raise ValueError(f"convention {self.name!r}: dim must be positive, got {self.dim}")
        if self.kind == "vertices" and self.dim % 3:
            raise ValueError(
                f"convention {self.name!r}: vertex dim {self.dim} is not a multiple of 3"
            )
        if self.fps <= 0:
            raise ValueError(f"convention {self.name!r}: fps must be positive, got {self.fps}")
        if self.channel_names is not None and len(self.channel_names) != self.dim:
            raise ValueError(
                f"convention {self.name!r}: {len(self.channel_names)} channel names for dim {self.dim}"
            )
        if self.pca and self.kind != "vertices":
            raise ValueError(f"convention {self.name!r}: PCA heads are for vertex conventions")
        for key, _ in self.resources:
            if key not in RESOURCE_KEYS:
                raise ValueError(
                    f"convention {self.name!r}: unknown resource {key!r}; known: {sorted(RESOURCE_KEYS)}"
                )

    @property
    def n_vertices(self) -> int | None:
        """Vertex count for vertex conventions, else the rig's vertex count if any, else None."""
        if self.kind == "vertices":
            return self.dim // 3
        mean = self.resource("rig_meanshape")
        return None if mean is None else int(mean.shape[0])

    def has_resource(self, key: str) -> bool:
        return key in dict(self.resources)

    def resource(self, key: str) -> np.ndarray | None:
        """Load (and cache) a resource array, or None when the convention has none."""
        path = dict(self.resources).get(key)
        return None if path is None else _load_array(path)

    def with_resources(self, **paths: str | Path) -> Convention:
        """A copy with extra / replaced resource files (key=path)."""
        merged = dict(self.resources)
        merged.update({k: str(v) for k, v in paths.items()})
        return dataclasses.replace(self, resources=tuple(sorted(merged.items())))

    @property
    def has_mesh(self) -> bool:
        """Whether outputs can be turned into a mesh (:func:`unitalker.geometry.vertices`):
        vertices, blendshapes with a rig (:data:`RIG_KEYS`), or parameters with a skinning
        model (:data:`LBS_KEYS`)."""
        if self.kind == "vertices":
            return True
        keys = RIG_KEYS if self.kind == "blendshapes" else LBS_KEYS
        return all(self.has_resource(k) for k in keys)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["channel_names"] = list(self.channel_names) if self.channel_names else None
        d["resources"] = dict(self.resources)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any], base_dir: str | Path | None = None) -> Convention:
        """Build from a plain dict (YAML/JSON); relative resource paths resolve against base_dir."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(
                f"convention {d.get('name')!r}: unknown keys {sorted(unknown)}; known: {sorted(known)}"
            )
        missing = {"name", "kind", "dim", "fps"} - set(d)
        if missing:
            raise ValueError(f"convention {d.get('name')!r}: missing keys {sorted(missing)}")
        d = dict(d)
        if d.get("channel_names") is not None:
            d["channel_names"] = tuple(d["channel_names"])
        res = d.get("resources") or {}
        if isinstance(res, (list, tuple)):
            res = dict(res)
        if base_dir is not None:
            res = {k: _resolve_resource(v, Path(base_dir)) for k, v in res.items()}
        d["resources"] = tuple(sorted((k, str(v)) for k, v in res.items()))
        d["dim"] = int(d["dim"])
        d["fps"] = float(d["fps"])
        d["scale"] = float(d.get("scale", 1.0))
        return cls(**d)


def _resolve_resource(value: str, base: Path) -> str:
    if str(value).startswith(PACKAGE_PREFIX):
        return str(value)
    path, _, key = str(value).partition(":")
    p = Path(path)
    if not p.is_absolute():
        p = base / p
    return f"{p}:{key}" if key else str(p)


PACKAGE_PREFIX = "unitalker:"
"""Resource paths starting with this are relative to the installed package, so that a
checkpoint naming a shipped asset stays valid on every machine."""


def package_resource(path: str | Path) -> str:
    """``path`` as a portable spec when it lies inside the package, else unchanged."""
    root = Path(__file__).resolve().parent
    try:
        return PACKAGE_PREFIX + Path(path).resolve().relative_to(root).as_posix()
    except ValueError:
        return str(path)


def _resource_file(path: str) -> Path:
    if path.startswith(PACKAGE_PREFIX):
        return Path(__file__).resolve().parent / path[len(PACKAGE_PREFIX) :]
    return Path(path)


@functools.lru_cache(maxsize=64)
def _load_array(spec: str) -> np.ndarray:
    # "file.npz:key" names one array of an npz; anything else is a single-array file.
    path, key = spec.rsplit(":", 1) if ".npz:" in spec else (spec, "")
    p = _resource_file(path)
    if not p.exists():
        raise FileNotFoundError(f"convention resource not found: {p}")
    try:
        if p.suffix == ".npz":
            with np.load(p, allow_pickle=False) as z:
                if not key:
                    raise ValueError(f"{p}: name the array as '{p}:KEY' (keys: {list(z.keys())})")
                return np.asarray(z[key])
        if p.suffix == ".txt":  # BIWI region files: comma(+space) separated indices
            text = p.read_text().replace(",", " ").split()
            return np.asarray([int(float(t)) for t in text], dtype=np.int64)
        return np.load(p, allow_pickle=False)
    except (OSError, ValueError, KeyError) as e:
        raise ValueError(f"cannot read convention resource {spec}: {e}") from e


@dataclass(frozen=True)
class DatasetInfo:
    """One dataset of A2F-Bench (or a user's / a synthetic one).

    Attributes:
        key: short key, ``D0`` .. ``D7`` for the paper's datasets.
        name: human name, e.g. ``BIWI``.
        convention: name of the annotation convention (head) it trains.
        n_subjects: number of subjects in its identity table (training identities).
        native_fps: the rate the annotations are distributed at.
        demo_template_id: the local subject whose template the original demo uses.
        folder: folder name in the original data release.
        repeat: default repetition factor in multi-dataset training (``duplicate_list``).
    """

    key: str
    name: str
    convention: str
    n_subjects: int
    native_fps: float
    demo_template_id: int = 0
    folder: str = ""
    repeat: int = 1
    language: str = ""
    domain: str = "speech"


_CONVENTIONS: dict[str, Convention] = {}
_DATASETS: dict[str, DatasetInfo] = {}


def register(conv: Convention, *, overwrite: bool = False) -> Convention:
    """Add a convention to the registry. Re-registering an identical one is a no-op."""
    old = _CONVENTIONS.get(conv.name)
    if old is not None and old != conv and not overwrite:
        raise ValueError(f"convention {conv.name!r} is already registered with other values")
    _CONVENTIONS[conv.name] = conv
    return conv


def register_dataset(ds: DatasetInfo, *, overwrite: bool = False) -> DatasetInfo:
    old = _DATASETS.get(ds.key)
    if old is not None and old != ds and not overwrite:
        raise ValueError(f"dataset {ds.key!r} is already registered with other values")
    _DATASETS[ds.key] = ds
    return ds


def get(name: str) -> Convention:
    """Look a convention up by name; the error lists what is registered."""
    _ensure_shipped()
    try:
        return _CONVENTIONS[name]
    except KeyError:
        raise KeyError(
            f"unknown convention {name!r}; registered: {', '.join(sorted(_CONVENTIONS))}"
        ) from None


def names() -> list[str]:
    _ensure_shipped()
    return list(_CONVENTIONS)


def all_conventions() -> list[Convention]:
    _ensure_shipped()
    return list(_CONVENTIONS.values())


def get_dataset(key: str) -> DatasetInfo:
    _ensure_shipped()
    try:
        return _DATASETS[key]
    except KeyError:
        raise KeyError(
            f"unknown dataset {key!r}; registered: {', '.join(sorted(_DATASETS))}"
        ) from None


def datasets() -> list[DatasetInfo]:
    _ensure_shipped()
    return list(_DATASETS.values())


def register_from_file(path: str | Path, *, overwrite: bool = False) -> list[Convention]:
    """Register conventions (and optionally datasets) from a YAML or JSON file.

    The file holds either one convention mapping or ``{"conventions": [...], "datasets": [...]}``.
    Relative resource paths are resolved against the file's folder.
    """
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"convention file not found: {p}")
    try:
        if p.suffix.lower() in (".yaml", ".yml"):
            from unitalker.config import read_yaml_file

            data = read_yaml_file(p)  # plain data only, bounded (no tags, no alias bombs)
        else:
            data = json.loads(p.read_text())
    except Exception as e:  # noqa: BLE001 - re-raised with the file name
        raise ValueError(
            f"{p}: not valid {'YAML' if p.suffix in ('.yaml', '.yml') else 'JSON'}: {e}"
        ) from e
    if not isinstance(data, dict):
        raise ValueError(f"{p}: expected a mapping at top level")
    items = data.get("conventions", [data] if "name" in data else [])
    out = []
    try:
        for item in items:
            out.append(register(Convention.from_dict(item, base_dir=p.parent), overwrite=overwrite))
        for item in data.get("datasets", []):
            register_dataset(DatasetInfo(**item), overwrite=overwrite)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{p}: {e}") from e
    return out


def ensure_registered(convs: Iterable[Convention], source: str = "checkpoint") -> None:
    """Register conventions that travel inside a checkpoint.

    A name the registry already knows keeps its registered definition when the two agree
    on everything but resource file locations (a checkpoint trained on another machine);
    a real disagreement (kind, dim, fps, scale, PCA, channels) is an error.
    """
    _ensure_shipped()  # the built-in definitions win over copies in checkpoints
    for c in convs:
        old = _CONVENTIONS.get(c.name)
        if old is None:
            register(c)
            continue
        strip = {"resources": (), "description": ""}
        if dataclasses.replace(old, **strip) != dataclasses.replace(c, **strip):
            raise ValueError(
                f"{source}: convention {c.name!r} differs from the registered one "
                f"(registered: kind={old.kind} dim={old.dim} fps={old.fps} scale={old.scale} "
                f"pca={old.pca}; {source}: kind={c.kind} dim={c.dim} fps={c.fps} "
                f"scale={c.scale} pca={c.pca})"
            )


# --------------------------------------------------------------------------------------
# The original eight datasets / six conventions (formats.md Sec. 2).

register(
    Convention(
        "BIWI_23370_vertices",
        "vertices",
        23370 * 3,
        25.0,
        0.2,
        pca=True,
        description="BIWI 4D scans, 23370 vertices (D0)",
    )
)
register(
    Convention(
        "FLAME_5023_vertices",
        "vertices",
        5023 * 3,
        30.0,
        1.0,
        pca=True,
        description="FLAME topology vertices, VOCASET (D1)",
    )
)
register(
    Convention(
        "meshtalk_6172_vertices",
        "vertices",
        6172 * 3,
        30.0,
        0.001,
        pca=True,
        description="Multiface / MeshTalk topology, 6172 vertices (D2)",
    )
)
register(
    Convention(
        "3DETF_blendshape_weight",
        "blendshapes",
        52,
        30.0,
        1.0,
        channel_names=ARKIT52_EMOTALK,
        description="ARKit 52 blendshape weights, EmoTalk order (D3, D4)",
    )
)
register(
    Convention(
        "flame_params_from_dadhead",
        "params",
        413,
        30.0,
        1.0,
        description="FLAME parameters: 400 betas, jaw, rotation, translation, scale (D5)",
    )
)
register(
    Convention(
        "inhouse_blendshape_weight",
        "blendshapes",
        51,
        30.0,
        1.0,
        channel_names=INHOUSE51,
        description="UniTalker in-house ARKit-like 51 weights (D6, D7)",
    )
)

register_dataset(DatasetInfo("D0", "BIWI", "BIWI_23370_vertices", 6, 25.0, 3, "D0_BIWI", 10, "en"))
register_dataset(
    DatasetInfo("D1", "VOCASET", "FLAME_5023_vertices", 12, 60.0, 3, "D1_vocaset", 5, "en")
)
register_dataset(
    DatasetInfo("D2", "Multiface", "meshtalk_6172_vertices", 13, 30.0, 0, "D2_meshtalk", 4, "en")
)
register_dataset(
    DatasetInfo(
        "D3", "3D-ETF HDTF", "3DETF_blendshape_weight", 141, 30.0, 0, "D3D4_3DETF/D3_HDTF", 1, "en"
    )
)
register_dataset(
    DatasetInfo(
        "D4",
        "3D-ETF RAVDESS",
        "3DETF_blendshape_weight",
        24,
        30.0,
        0,
        "D3D4_3DETF/D4_RAVDESS",
        1,
        "en",
    )
)
register_dataset(
    DatasetInfo(
        "D5",
        "FaceForensics++ (FLAME)",
        "flame_params_from_dadhead",
        719,
        30.0,
        0,
        "D5_unitalker_faceforensics++",
        1,
        "multi",
    )
)
register_dataset(
    DatasetInfo(
        "D6",
        "Chinese speech",
        "inhouse_blendshape_weight",
        8,
        60.0,
        4,
        "D6_unitalker_Chinese_speech",
        1,
        "zh",
    )
)
register_dataset(
    DatasetInfo(
        "D7",
        "Songs",
        "inhouse_blendshape_weight",
        11,
        60.0,
        0,
        "D7_unitalker_song",
        1,
        "multi",
        "song",
    )
)

ORIGINAL_DATASETS: tuple[str, ...] = ("D0", "D1", "D2", "D3", "D4", "D5", "D6", "D7")


# --------------------------------------------------------------------------------------
# Lip and upper-face regions read from the user's own downloads.
#
# The region files of the field are licensed with their datasets (BIWI, FLAME, Multiface,
# the UniTalker release), so none is shipped. Each convention declares here where such a
# file lies in a download and how to read it; :func:`find_region` looks in the folders the
# user names (``unitalker evaluate --regions DIR``, ``UNITALKER_REGIONS``). The sources
# and their layouts are documented in docs/formats.md.

REGIONS: dict[str, str] = {"lip": "lip_indices", "upper_face": "upper_face_indices"}
"""Region name -> the resource key a convention may register it under directly."""

REGIONS_ENV = "UNITALKER_REGIONS"
"""Environment variable: folders (``os.pathsep``-separated) searched for region files."""


@dataclass(frozen=True)
class RegionFile:
    """Where one region of a convention is found in a user's download, and how to read it.

    Attributes:
        region: ``lip`` or ``upper_face``.
        paths: candidate paths relative to a searched folder. When the folder itself is
            named like a path's first component (case-insensitive), the rest is tried too,
            so both ``--regions data`` and ``--regions data/BIWI`` find ``BIWI/regions/lve.txt``.
            Generic names (``regions/lve.txt`` exists for several datasets) are always
            qualified by the dataset folder, so one dataset's file never serves another.
        read: ``indices`` (``.npy`` of indices, or a ``.txt`` of comma / space separated
            indices), ``pickle:KEY[+KEY...]`` (a pickled dict of index arrays such as
            ``FLAME_masks.pkl``, the keys concatenated in order, read without executing
            code), or ``weights>X`` (a ``.txt`` of one weight per vertex; vertices with a
            weight above X).
        source: who defines the region (shown in evaluation reports).
        on_release_rig: the indices address the release's blendshape rig mesh
            (``EmoTalk.npz`` / ``inhouse_arkit.npz``), so they apply only when that rig is
            the one turning weights into vertices.
    """

    region: str
    paths: tuple[str, ...]
    read: str = "indices"
    source: str = ""
    on_release_rig: bool = False


@dataclass(frozen=True)
class Region:
    """Vertex indices of one region, and where they came from."""

    indices: np.ndarray
    path: str
    source: str


_REGION_FILES: dict[str, list[RegionFile]] = {}
_NO_REGION: dict[tuple[str, str], str] = {}


def register_region_file(convention: str, region_file: RegionFile) -> None:
    """Declare a file of a user's download that holds a region of ``convention``."""
    if region_file.region not in REGIONS:
        raise ValueError(f"region must be one of {sorted(REGIONS)}, got {region_file.region!r}")
    files = _REGION_FILES.setdefault(convention, [])
    if region_file not in files:
        files.append(region_file)


def region_files(convention: str) -> list[RegionFile]:
    """The region files declared for ``convention`` (in the order they are tried)."""
    _ensure_shipped()
    return list(_REGION_FILES.get(convention, ()))


def declare_no_region(convention: str, region: str, reason: str) -> None:
    """Record why a convention has no ``region`` (shown instead of a silent fallback)."""
    _NO_REGION[(convention, region)] = reason


def no_region_reason(convention: str, region: str) -> str:
    """Why ``convention`` has no ``region`` here: a declared reason, or what was looked for."""
    _ensure_shipped()
    if (convention, region) in _NO_REGION:
        return _NO_REGION[(convention, region)]
    files = _REGION_FILES.get(convention, [])
    wanted = [f for f in files if f.region == region]
    if not wanted:
        return f"no {region} region is registered or declared for {convention}"
    names = sorted({p.rsplit("/", 1)[-1] for f in wanted for p in f.paths})
    return (
        f"no {region} region file found (looked for {', '.join(names)} in the --regions "
        f"folders / {REGIONS_ENV})"
    )


def region_search_dirs(extra: Iterable[str | Path] = ()) -> list[Path]:
    """The folders searched for region files: ``extra``, then ``$UNITALKER_REGIONS``."""
    import os

    dirs = [Path(d).expanduser() for d in extra if str(d)]
    env = os.environ.get(REGIONS_ENV, "")
    dirs += [Path(d).expanduser() for d in env.split(os.pathsep) if d]
    return list(dict.fromkeys(dirs))


def _candidates(root: Path, rel: str) -> list[Path]:
    first, _, rest = rel.partition("/")
    out = [root / rel]
    if rest and root.name.lower() == first.lower():
        out.append(root / rest)
    if first != first.lower():
        out.append(root / first.lower() / rest if rest else root / rel.lower())
    return out


def read_region_file(path: str | Path, read: str = "indices") -> np.ndarray:
    """Read one region file (see :class:`RegionFile` for ``read``) as int64 indices ``[R]``."""
    p = Path(path)
    try:
        if read.startswith("pickle:"):
            from unitalker.data.safe_pickle import load_array_pickle

            masks = load_array_pickle(p)
            if not isinstance(masks, dict):
                raise ValueError(f"expected a dict of index arrays, got {type(masks).__name__}")
            keys = read.split(":", 1)[1].split("+")
            masks = {(k.decode() if isinstance(k, bytes) else str(k)): v for k, v in masks.items()}
            missing = [k for k in keys if k not in masks]
            if missing:
                raise ValueError(f"no key(s) {missing}; keys: {sorted(masks)}")
            idx = np.concatenate([np.asarray(masks[k]).reshape(-1) for k in keys])
        elif read.startswith("weights>"):
            threshold = float(read.split(">", 1)[1])
            weights = np.asarray([float(x) for x in p.read_text().split()], dtype=np.float64)
            idx = np.flatnonzero(weights > threshold)
        elif read == "indices":
            if p.suffix == ".npy":
                idx = np.load(p, allow_pickle=False).reshape(-1)
            else:
                text = p.read_text().replace(",", " ").split()
                idx = np.asarray([int(float(t)) for t in text])
        else:
            raise ValueError(f"unknown reader {read!r}")
    except (OSError, ValueError, TypeError) as e:
        raise ValueError(f"cannot read region file {p}: {e}") from e
    idx = np.asarray(idx)
    if idx.size == 0:
        raise ValueError(f"region file {p} holds no indices")
    if not np.issubdtype(idx.dtype, np.integer) and not np.all(idx == np.round(idx)):
        raise ValueError(f"region file {p}: indices are not integers")
    return idx.astype(np.int64)


def find_region(
    convention: str,
    region: str,
    search: Iterable[str | Path] = (),
    *,
    n_vertices: int | None = None,
    release_rig: bool = False,
) -> Region | None:
    """The ``lip`` / ``upper_face`` vertex indices of a convention's mesh, or None.

    A region registered on the convention itself (``lip_indices`` / ``upper_face_indices``
    resources) wins; otherwise the declared :class:`RegionFile` s are tried, in order, in
    every folder of :func:`region_search_dirs` ``(search)``.

    Args:
        convention: registered convention name.
        region: ``lip`` or ``upper_face``.
        search: folders to look in (before ``$UNITALKER_REGIONS``).
        n_vertices: vertex count of the mesh the indices address; a file with an index
            out of range is an error naming it (a region of another topology).
        release_rig: whether the convention's vertices come from the release's rig (then
            its rig-mesh region files apply).

    Raises:
        ValueError: a region file that exists but is unreadable or out of range.
    """
    if region not in REGIONS:
        raise ValueError(f"region must be one of {sorted(REGIONS)}, got {region!r}")
    conv = get(convention)
    key = REGIONS[region]
    if conv.has_resource(key) and not release_rig:
        idx = np.asarray(conv.resource(key)).astype(np.int64).reshape(-1)
        return Region(idx, dict(conv.resources)[key], f"{convention} resource {key}")
    dirs = region_search_dirs(search)
    for rf in region_files(convention):
        if rf.region != region or (rf.on_release_rig and not release_rig):
            continue
        if not rf.on_release_rig and conv.kind == "blendshapes":
            continue
        for root in dirs:
            for rel in rf.paths:
                for path in _candidates(root, rel):
                    if not path.is_file():
                        continue
                    idx = read_region_file(path, rf.read)
                    if n_vertices is not None and (idx.min() < 0 or idx.max() >= n_vertices):
                        raise ValueError(
                            f"region file {path}: indices span {idx.min()}..{idx.max()}, but "
                            f"{convention}'s mesh has {n_vertices} vertices (another topology?)"
                        )
                    return Region(idx, str(path), rf.source)
    return None


# Blendshape rigs of the original release (turn weights into vertices for evaluation).
_RELEASE_RIGS: dict[str, tuple[str, ...]] = {}


def register_release_rig(convention: str, paths: tuple[str, ...]) -> None:
    """Declare where a blendshape convention's rig (``.npz`` with ``meanshape`` and
    ``blendshape``) lies in the original release's resources."""
    _RELEASE_RIGS[convention] = tuple(paths)


def find_release_rig(
    convention: str, search: Iterable[str | Path] = ()
) -> tuple[np.ndarray, np.ndarray, str] | None:
    """``(meanshape [V, 3], basis [C, V, 3], path)`` of the release rig, or None."""
    _ensure_shipped()
    conv = get(convention)
    for root in region_search_dirs(search):
        for rel in _RELEASE_RIGS.get(convention, ()):
            for path in _candidates(root, rel):
                if not path.is_file():
                    continue
                try:
                    with np.load(path, allow_pickle=False) as z:
                        mean = np.asarray(z["meanshape"], np.float32).reshape(-1, 3)
                        basis = np.asarray(z["blendshape"], np.float32)
                except (OSError, ValueError, KeyError) as e:
                    raise ValueError(f"cannot read rig {path}: {e}") from e
                basis = basis.reshape(len(basis), -1, 3)
                if basis.shape[1] != mean.shape[0] or len(basis) < conv.dim:
                    raise ValueError(
                        f"rig {path}: basis {basis.shape} does not fit mean shape {mean.shape} "
                        f"and {conv.dim} channels of {convention}"
                    )
                return mean, basis[: conv.dim], str(path)
    return None


_RES = "resources/binary_resources"
_FACEFORMER = "FaceFormer / CodeTalker BIWI preprocessing (regions/lve.txt, regions/fdd.txt)"
_FLAME_MASKS = (
    "FLAME_masks.pkl of the FLAME download (MPI-IS), keys as CodeTalker / SelfTalk use them"
)
_UNITALKER = "UniTalker release resources (the authors' mouth indices, used by their loss/metric)"
_FACEDIFFUSER_MF = "FaceDiffuser Multiface preprocessing (mouth weights > 0.1, forehead > 0.4)"

for _name in ("BIWI_23370_vertices",):
    register_region_file(
        _name,
        RegionFile(
            "lip",
            (
                f"{_RES}/04_BIWI_mouth_idx.npy",
                "binary_resources/04_BIWI_mouth_idx.npy",
                "04_BIWI_mouth_idx.npy",
            ),
            source=_UNITALKER,
        ),
    )
    register_region_file(_name, RegionFile("lip", ("BIWI/regions/lve.txt",), source=_FACEFORMER))
    register_region_file(
        _name, RegionFile("upper_face", ("BIWI/regions/fdd.txt",), source=_FACEFORMER)
    )
for _name in ("FLAME_5023_vertices", "flame_params_from_dadhead"):
    register_region_file(
        _name,
        RegionFile(
            "lip",
            (
                f"{_RES}/02_flame_mouth_idx.npy",
                "binary_resources/02_flame_mouth_idx.npy",
                "02_flame_mouth_idx.npy",
            ),
            source=_UNITALKER,
        ),
    )
    _masks = ("FLAME_masks.pkl", "FLAME_masks/FLAME_masks.pkl", "vocaset/FLAME_masks.pkl")
    register_region_file(_name, RegionFile("lip", _masks, "pickle:lips", _FLAME_MASKS))
    register_region_file(
        _name, RegionFile("upper_face", _masks, "pickle:eye_region+forehead", _FLAME_MASKS)
    )
for _name in ("meshtalk_6172_vertices",):
    register_region_file(
        _name,
        RegionFile(
            "lip",
            (
                f"{_RES}/06_mesh_talk_mouth_idx.npy",
                "binary_resources/06_mesh_talk_mouth_idx.npy",
                "06_mesh_talk_mouth_idx.npy",
            ),
            source=_UNITALKER,
        ),
    )
    register_region_file(
        _name,
        RegionFile(
            "lip", ("multiface/regions/weighted_mouth_mask.txt",), "weights>0.1", _FACEDIFFUSER_MF
        ),
    )
    register_region_file(
        _name,
        RegionFile(
            "upper_face", ("multiface/regions/forehead_mask.txt",), "weights>0.4", _FACEDIFFUSER_MF
        ),
    )
register_release_rig(
    "3DETF_blendshape_weight",
    (f"{_RES}/EmoTalk.npz", "binary_resources/EmoTalk.npz", "EmoTalk.npz"),
)
register_region_file(
    "3DETF_blendshape_weight",
    RegionFile(
        "lip",
        (
            f"{_RES}/03_emo_talk_mouth_idx.npy",
            "binary_resources/03_emo_talk_mouth_idx.npy",
            "03_emo_talk_mouth_idx.npy",
        ),
        source=_UNITALKER,
        on_release_rig=True,
    ),
)
register_release_rig(
    "inhouse_blendshape_weight",
    (f"{_RES}/inhouse_arkit.npz", "binary_resources/inhouse_arkit.npz", "inhouse_arkit.npz"),
)
register_region_file(
    "inhouse_blendshape_weight",
    RegionFile(
        "lip",
        (
            f"{_RES}/05_inhouse_arkit_mouth_idx.npy",
            "binary_resources/05_inhouse_arkit_mouth_idx.npy",
            "05_inhouse_arkit_mouth_idx.npy",
        ),
        source=_UNITALKER,
        on_release_rig=True,
    ),
)
for _name in ("3DETF_blendshape_weight", "inhouse_blendshape_weight"):
    declare_no_region(
        _name, "upper_face", "the release defines no upper-face region on its blendshape rigs"
    )
del _name, _masks

SHIPPED_FILES: tuple[str, ...] = ("assets/synth/conventions.json",)
"""Convention files inside the package, registered the first time the registry is read:
the A2F-Synth conventions and datasets (data, so the registry imports no generator)."""

_SHIPPED_LOADED = False


def _ensure_shipped() -> None:
    """Register the conventions shipped as data files (:data:`SHIPPED_FILES`), once.

    Lazily, so that importing this module reads no file.
    """
    global _SHIPPED_LOADED
    if _SHIPPED_LOADED:
        return
    _SHIPPED_LOADED = True
    for rel in SHIPPED_FILES:
        register_from_file(_resource_file(PACKAGE_PREFIX + rel))

"""``npz``: every head's array in one NumPy archive, readable without pickle.

Layout (``np.load(path, allow_pickle=False)``):

- ``<convention>``: float32 ``[T, C]``, the head's data in the convention's units;
- ``<convention>__fps``: float64 scalar;
- ``__meta__``: a JSON string ``{"format": "unitalker-animation", "version": 1,
  "heads": {convention: {"fps", "identity", "kind", "meta", "definition"}}}`` where
  ``definition`` is the convention's registry entry, so a file made with a user's own
  convention still loads where that convention is not registered.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from unitalker import conventions
from unitalker.animation import Animation
from unitalker.export.base import ExportError, Writer, register_writer

FORMAT = "unitalker-animation"
VERSION = 1
META_KEY = "__meta__"


@register_writer
class NpzWriter(Writer):
    name = "npz"
    extension = "npz"
    layout = "combined"
    description = "all heads in one NumPy archive (reload with unitalker.export.load_npz)"

    def fits(self, animation: Animation) -> bool:
        return True

    def write_all(
        self, results: Mapping[str, Animation], path: Path, audio: np.ndarray | None
    ) -> None:
        arrays: dict[str, np.ndarray] = {}
        heads = {}
        for key, anim in results.items():
            # asanyarray: a memory-mapped result stays a np.memmap, so write_npz can release
            # its pages as it goes (ascontiguousarray would return a plain view of the map)
            arrays[key] = np.asanyarray(anim.data, dtype=np.float32)
            arrays[f"{key}__fps"] = np.asarray(float(anim.fps), dtype=np.float64)
            heads[key] = {
                "convention": anim.convention,
                "fps": float(anim.fps),
                "identity": anim.identity,
                "kind": anim.conv.kind,
                "meta": anim.meta,
                "definition": anim.conv.to_dict(),
            }
        meta = {"format": FORMAT, "version": VERSION, "heads": heads}
        arrays[META_KEY] = np.asarray(json.dumps(meta, default=str))
        write_npz(path, arrays)


# Entries above this size are stored, not deflated: model output is float32 noise in its
# low mantissa bits, which zlib shrinks by ~10 % at ~20x the time of writing it (measured
# in `unitalker bench`), and stored entries can be memory-mapped by readers.
COMPRESS_MAX_BYTES = 8 * 2**20


def write_npz(
    path: str | Path, arrays: Mapping[str, np.ndarray], compress_max: int = COMPRESS_MAX_BYTES
) -> None:
    """Write an ``.npz`` entry by entry, each array streamed in row blocks.

    Readable by ``np.load`` like ``np.savez``'s output. No array is copied whole: a
    memory-mapped array (a long result) is read and written block by block, its pages
    released as it goes (:func:`~unitalker.export.base.iter_rows`). Entries up to
    ``compress_max`` bytes are deflated, larger ones stored.
    """
    import zipfile

    from unitalker.export.base import iter_rows

    with zipfile.ZipFile(path, "w", allowZip64=True) as zf:
        for key, arr in arrays.items():
            arr = np.asanyarray(arr)
            if not (arr.flags.c_contiguous or arr.ndim == 0):
                arr = np.ascontiguousarray(arr)
            small = arr.nbytes <= compress_max
            info = zipfile.ZipInfo(f"{key}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED if small else zipfile.ZIP_STORED
            with zf.open(info, "w", force_zip64=arr.nbytes > 2**31) as f:
                np.lib.format.write_array_header_1_0(
                    f, np.lib.format.header_data_from_array_1_0(arr)
                )
                if arr.ndim == 0 or arr.size == 0:
                    f.write(arr.tobytes())
                else:
                    for block in iter_rows(arr.reshape(len(arr), -1)):
                        f.write(np.ascontiguousarray(block).data)


def load_npz(path: str | Path) -> dict[str, Animation]:
    """Read a file written by the ``npz`` writer back into ``{convention: Animation}``.

    Conventions that are not registered here are registered from the definition stored
    in the file. Files without ``__meta__`` (plain ``{name: [T, C]}`` archives) load too
    when their keys are registered conventions; their fps is ``<name>__fps`` or the
    convention's own.

    Raises:
        FileNotFoundError: no such file.
        ExportError: not an npz, or an array for an unknown convention.
    """
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"{p}: no such file")
    try:
        z = np.load(p, allow_pickle=False)
    except Exception as e:  # noqa: BLE001 - any reader failure becomes one clear error
        raise ExportError(f"{p}: not a readable npz file ({e})") from e
    with z:
        if not isinstance(z, np.lib.npyio.NpzFile):
            raise ExportError(f"{p}: expected an npz archive of arrays, got a single array")
        heads_meta: dict = {}
        if META_KEY in z.files:
            meta = json.loads(str(z[META_KEY]))
            if meta.get("format") != FORMAT:
                raise ExportError(f"{p}: __meta__ is not a {FORMAT} header")
            if int(meta.get("version", 0)) > VERSION:
                raise ExportError(
                    f"{p}: written by a newer unitalker (format version {meta['version']})"
                )
            heads_meta = meta.get("heads", {})
        out: dict[str, Animation] = {}
        for key in z.files:
            if key.startswith("__") or key.endswith("__fps"):
                continue
            info = heads_meta.get(key, {})
            name = info.get("convention", key)
            if name not in conventions.names():
                definition = info.get("definition")
                if definition is None:
                    raise ExportError(
                        f"{p}: array {key!r} is not a registered convention and the file "
                        "carries no definition for it"
                    )
                conventions.register(conventions.Convention.from_dict(definition))
            conv = conventions.get(name)
            data = np.asarray(z[key], dtype=np.float32)
            if data.ndim != 2 or data.shape[1] != conv.dim:
                raise ExportError(f"{p}: {key!r} has shape {data.shape}, expected [T, {conv.dim}]")
            fps_key = f"{key}__fps"
            fps = float(z[fps_key]) if fps_key in z.files else float(info.get("fps", conv.fps))
            out[key] = Animation(
                name, fps, data, identity=info.get("identity", "pivot"), meta=info.get("meta", {})
            )
    if not out:
        raise ExportError(f"{p}: no animation arrays in this file")
    return out

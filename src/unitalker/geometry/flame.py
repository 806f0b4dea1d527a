"""Reading a FLAME model file safely, and where the D5 vector keeps FLAME's inputs.

The FLAME 2020 ``generic_model.pkl`` is a pickle that needs chumpy (and scipy.sparse) to
unpickle as-is. :func:`load_flame_model` reads it with a restricted unpickler: numpy
arrays and plain containers are rebuilt; chumpy ``Ch`` objects and scipy sparse matrices
are replaced by inert stand-ins that only keep their pickled *state* (arrays), which we
then read. Nothing the file names is ever called, so a malicious pickle cannot run code.
An ``.npz`` with the same keys is read with ``allow_pickle=False``.
"""

from __future__ import annotations

import io
import pickle
from pathlib import Path
from typing import Any

import numpy as np

FLAME_PARAMS = "flame_params_from_dadhead"
"""The D5 convention: FLAME parameters, skinned with a user's FLAME file (``--flame-model``)."""

FLAME_FILE_LAYOUTS: dict[str, tuple[int, int]] = {FLAME_PARAMS: (400, 403)}
"""Parameter conventions a FLAME file skins -> ``(start, stop)`` of the jaw axis-angle in
their vector; the betas (shape + expression) are the first ``S`` channels, ``S`` the
file's ``shapedirs`` count. D5 is ``[0:400]`` betas, ``[400:403]`` jaw, then rotation,
translation and scale (zero in the skinning, as the original)."""

FLAME_JAW_JOINT = 2
"""Index of the jaw joint in FLAME's kinematic tree."""

FLAME_KEYS = ("v_template", "shapedirs", "posedirs", "J_regressor", "weights", "kintree_table")


class UnsafeFlameFileError(ValueError):
    """The FLAME file names a callable outside the allow-list."""


class _Inert:
    """Stand-in for chumpy / scipy objects: keeps the pickled state, runs nothing."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.args = args
        self.state: Any = None

    def __setstate__(self, state: Any) -> None:
        self.state = state


def _inert_reconstructor(cls: Any, base: Any, state: Any) -> Any:
    # copyreg._reconstructor(cls, object, None): build the stand-in, nothing else.
    if not (isinstance(cls, type) and issubclass(cls, _Inert)):
        raise UnsafeFlameFileError(f"refusing to reconstruct {cls!r}")
    return cls()


def _allowed() -> dict[tuple[str, str], Any]:
    try:
        from numpy._core import multiarray, numeric
    except ImportError:  # numpy < 2
        from numpy.core import multiarray, numeric  # type: ignore[no-redef]
    out: dict[tuple[str, str], Any] = {
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
        ("_codecs", "encode"): __import__("codecs").encode,
        ("copy_reg", "_reconstructor"): _inert_reconstructor,
        ("copyreg", "_reconstructor"): _inert_reconstructor,
    }
    for mod in ("numpy.core", "numpy._core"):
        out[(f"{mod}.multiarray", "_reconstruct")] = multiarray._reconstruct
        out[(f"{mod}.multiarray", "scalar")] = multiarray.scalar
        out[(f"{mod}.numeric", "_frombuffer")] = numeric._frombuffer
    # chumpy arrays and scipy sparse matrices: inert classes, read through their state
    for mod, name in (
        ("chumpy.ch", "Ch"),
        ("chumpy.reordering", "Select"),
        ("chumpy.reordering", "transpose"),
        ("scipy.sparse.csc", "csc_matrix"),
        ("scipy.sparse._csc", "csc_matrix"),
        ("scipy.sparse.csr", "csr_matrix"),
        ("scipy.sparse._csr", "csr_matrix"),
    ):
        out[(mod, name)] = type(name, (_Inert,), {"module": mod})
    return out


class _FlameUnpickler(pickle.Unpickler):
    def __init__(self, file: Any, source: str) -> None:
        super().__init__(file, encoding="latin1")
        self.source = source
        self.allowed = _allowed()

    def find_class(self, module: str, name: str) -> Any:
        obj = self.allowed.get((module, name))
        if obj is None:
            raise UnsafeFlameFileError(
                f"{self.source}: refusing to unpickle {module}.{name} "
                "(a FLAME model file holds only arrays; nothing in it is executed)"
            )
        return obj

    def persistent_load(self, pid: Any) -> Any:
        raise UnsafeFlameFileError(f"{self.source}: persistent references are not allowed")


def _to_array(value: Any, key: str, source: str) -> np.ndarray:
    if isinstance(value, np.ndarray):
        return value
    if isinstance(value, _Inert):
        st = value.state
        if isinstance(st, dict) and "x" in st:  # chumpy Ch: its value lives in state["x"]
            return np.asarray(st["x"])
        if isinstance(st, dict) and {"data", "indices", "indptr"} <= set(st):  # scipy sparse
            shape = st.get("_shape") or st.get("shape")
            fmt = getattr(type(value), "__name__", "")
            data, indices, indptr = (np.asarray(st[k]) for k in ("data", "indices", "indptr"))
            dense = np.zeros(shape, dtype=np.float64)
            if fmt.startswith("csc"):
                for j in range(shape[1]):
                    rows = indices[indptr[j] : indptr[j + 1]]
                    dense[rows, j] = data[indptr[j] : indptr[j + 1]]
            else:
                for i in range(shape[0]):
                    cols = indices[indptr[i] : indptr[i + 1]]
                    dense[i, cols] = data[indptr[i] : indptr[i + 1]]
            return dense
    try:
        return np.asarray(value)
    except Exception as e:  # noqa: BLE001
        raise ValueError(
            f"{source}: FLAME key {key!r} is not an array ({type(value).__name__})"
        ) from e


def load_flame_model(path: str | Path) -> dict[str, np.ndarray]:
    """Read a FLAME model (``.npz`` or the original pickle) into plain arrays.

    Returns:
        ``v_template [V,3]``, ``shapedirs [V,3,S]``, ``posedirs [V,3,P]``,
        ``J_regressor [J,V]``, ``weights [V,J]``, ``kintree_table [2,J]`` (and ``f``).

    Raises:
        FileNotFoundError, UnsafeFlameFileError, ValueError (missing keys / bad file).
    """
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"FLAME model not found: {p}")
    if p.suffix == ".npz":
        with np.load(p, allow_pickle=False) as z:
            raw: dict[str, Any] = {k: z[k] for k in z.files}
    else:
        try:
            raw = _FlameUnpickler(io.BytesIO(p.read_bytes()), str(p)).load()
        except UnsafeFlameFileError:
            raise
        except Exception as e:  # noqa: BLE001
            raise ValueError(f"{p}: cannot read FLAME pickle: {type(e).__name__}: {e}") from e
        if not isinstance(raw, dict):
            raise ValueError(f"{p}: expected a dict of arrays, got {type(raw).__name__}")
    missing = [k for k in FLAME_KEYS if k not in raw]
    if missing:
        raise ValueError(f"{p}: FLAME model lacks {missing} (has {sorted(raw)})")
    out = {k: _to_array(raw[k], k, str(p)) for k in (*FLAME_KEYS, "f") if k in raw}
    v = out["v_template"].shape[0]
    if out["shapedirs"].shape[:2] != (v, 3) or out["weights"].shape[0] != v:
        raise ValueError(
            f"{p}: inconsistent FLAME shapes { ({k: a.shape for k, a in out.items()}) }"
        )
    return out

"""Read pickles of numpy arrays (``templates.pkl``) without executing arbitrary code.

Community dataset layouts ship neutral templates as a pickled ``dict[str, ndarray]``.
``pickle.load`` would run whatever callable the file names; this unpickler resolves
only the handful of globals numpy uses to rebuild arrays and refuses everything else.
"""

from __future__ import annotations

import io
import pickle
from pathlib import Path
from typing import Any

import numpy as np

# (module, name) -> object. numpy >= 2 moved numpy.core to numpy._core; files written by
# either (or by Python 2 via latin1) name one or the other.
_ALLOWED: dict[tuple[str, str], Any] = {
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("_codecs", "encode"): __import__("codecs").encode,  # py3 protocol<3 bytes
    ("collections", "OrderedDict"): __import__("collections").OrderedDict,
}


def _numpy_core_globals() -> None:
    from numpy.lib import format as _fmt  # noqa: F401 - ensure numpy fully imported

    try:
        from numpy._core import multiarray, numeric
    except ImportError:  # numpy < 2
        from numpy.core import multiarray, numeric  # type: ignore[no-redef]
    for mod in ("numpy.core", "numpy._core"):
        _ALLOWED[(f"{mod}.multiarray", "_reconstruct")] = multiarray._reconstruct
        _ALLOWED[(f"{mod}.multiarray", "scalar")] = multiarray.scalar
        _ALLOWED[(f"{mod}.numeric", "_frombuffer")] = numeric._frombuffer


_numpy_core_globals()


class UnsafePickleError(ValueError):
    """The pickle names a global outside the numpy-array allow-list."""


class _ArrayUnpickler(pickle.Unpickler):
    def __init__(self, file: Any, source: str) -> None:
        super().__init__(file, encoding="latin1")  # latin1: Python 2 numpy pickles
        self.source = source

    def find_class(self, module: str, name: str) -> Any:
        obj = _ALLOWED.get((module, name))
        if obj is None:
            raise UnsafePickleError(
                f"{self.source}: refusing to unpickle {module}.{name} (only numpy arrays "
                f"and plain containers are allowed in a templates file)"
            )
        return obj

    def persistent_load(self, pid: Any) -> Any:
        raise UnsafePickleError(f"{self.source}: persistent references are not allowed")


def load_array_pickle(path: str | Path) -> Any:
    """Unpickle a file that holds numpy arrays in dicts / lists / tuples only.

    Raises:
        FileNotFoundError: no such file.
        UnsafePickleError: the file references any other callable or class.
        ValueError: not a pickle.
    """
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"pickle file not found: {p}")
    data = p.read_bytes()
    try:
        return _ArrayUnpickler(io.BytesIO(data), str(p)).load()
    except UnsafePickleError:
        raise
    except Exception as e:  # noqa: BLE001
        raise ValueError(f"{p}: cannot read pickle: {type(e).__name__}: {e}") from e


def load_templates_pickle(path: str | Path) -> dict[str, np.ndarray]:
    """A ``templates.pkl``: ``{subject: array}`` with string keys and array values."""
    obj = load_array_pickle(path)
    if not isinstance(obj, dict):
        raise ValueError(f"{path}: expected a dict subject -> array, got {type(obj).__name__}")
    out = {}
    for k, v in obj.items():
        key = k.decode() if isinstance(k, bytes) else str(k)
        if not isinstance(v, np.ndarray):
            raise ValueError(f"{path}: template {key!r} is a {type(v).__name__}, not an array")
        out[key] = v
    return out

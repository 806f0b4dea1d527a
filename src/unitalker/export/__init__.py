"""Writers for inference results, chosen by name (``npz``, ``csv``, ``json``, ``glb``, ``usd``, ``obj``, ``ply``, ``mp4``).

Example::

    from unitalker.export import write_outputs, formats_for
    write_outputs(results, "out/", "speech", ["npz", "csv", "glb"], audio=wav)
    write_outputs(results, "out/", "speech", "all", audio=wav)  # everything that fits

See :mod:`unitalker.export.base` for the all-or-nothing write, and one module per format.
"""

from __future__ import annotations

from unitalker.export.base import (
    ExportError,
    OutputExistsError,
    Writer,
    available_formats,
    formats_for,
    get_writer,
    write_outputs,
)
from unitalker.export.npz import load_npz

__all__ = [
    "ExportError",
    "OutputExistsError",
    "Writer",
    "available_formats",
    "formats_for",
    "get_writer",
    "load_npz",
    "write_outputs",
]

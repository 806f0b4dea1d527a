"""How a convention's motion becomes mesh vertices: one rig per convention.

The registry says what a convention carries (:mod:`unitalker.conventions`); this package
turns that into a rig (:mod:`unitalker.geometry.rigs`), chosen by the convention's kind
and resources (a FLAME file, which no convention ships, by a table of vector layouts):

==========================================  ===================================
convention                                  rig
==========================================  ===================================
``vertices``                                :class:`~.rigs.VertexRig` (reshape)
``blendshapes`` with ``rig_meanshape`` +    :class:`~.rigs.BlendshapeRig`
``rig_basis``
``params`` with ``lbs_*`` resources         :class:`~.rigs.LBSRig` (jaw model)
``params`` named in ``FLAME_FILE_LAYOUTS``  :class:`~.rigs.LBSRig` from the user's
+ a FLAME file                              FLAME file (``--flame-model``)
==========================================  ===================================

Losses and metrics call :func:`rig_for` (a torch module, on any device); exporters, the
renderer and the server call :func:`vertices` (numpy in and out, one cached rig each).
This module imports no torch until a rig is asked for.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from unitalker import conventions

if TYPE_CHECKING:
    import torch

    from unitalker.geometry.rigs import Rig


def rig_for(
    convention: str | conventions.Convention,
    *,
    flame_model: str | Path | None = None,
    flame_face_indices: str | Path | None = None,
    dtype: torch.dtype | None = None,
) -> Rig | None:
    """A new rig (an ``nn.Module``, CPU) for a convention, or None when it has no mesh.

    Each call builds a new module (cheap: the arrays are the registry's cached resources),
    so a caller may move it to its device without touching anyone else's.

    Args:
        convention: a registered name or a :class:`~unitalker.conventions.Convention`.
        flame_model: a FLAME model file, for the parameter conventions of
            :data:`unitalker.geometry.flame.FLAME_FILE_LAYOUTS` (D5).
        flame_face_indices: ``.npy`` vertex subset returned by that FLAME rig.
        dtype: ``torch.float32`` (default) or ``torch.float64``.

    Raises:
        UnsafeFlameFileError, ValueError, FileNotFoundError: a bad FLAME file.
    """
    import torch

    from unitalker.geometry import rigs
    from unitalker.geometry.flame import FLAME_FILE_LAYOUTS, FLAME_JAW_JOINT, load_flame_model

    conv = conventions.get(convention) if isinstance(convention, str) else convention
    dtype = dtype or torch.float32
    if conv.kind == "vertices":
        neutral = conv.resource("neutral") if conv.has_resource("neutral") else None
        return rigs.VertexRig(conv.dim // 3, neutral)
    if conv.kind == "blendshapes" and _has(conv, conventions.RIG_KEYS):
        mean, basis = conv.resource("rig_meanshape"), conv.resource("rig_basis")
        return rigs.BlendshapeRig(mean, basis, dtype=dtype)
    if conv.kind == "params" and _has(conv, conventions.LBS_KEYS):
        arrays = [conv.resource(k) for k in conventions.LBS_KEYS]
        return rigs.LBSRig.jaw_model(*arrays, dtype=dtype)
    if conv.kind == "params" and flame_model is not None and conv.name in FLAME_FILE_LAYOUTS:
        idx = None
        if flame_face_indices:
            idx = np.load(flame_face_indices, allow_pickle=False).astype(np.int64).reshape(-1)
        return rigs.LBSRig.from_flame(
            load_flame_model(flame_model),
            jaw=FLAME_FILE_LAYOUTS[conv.name],
            jaw_joint=FLAME_JAW_JOINT,
            face_indices=idx,
            dtype=dtype,
        )
    return None


def vertices(convention: str | conventions.Convention, data: np.ndarray) -> np.ndarray | None:
    """A convention's ``[T, dim]`` data -> ``[T, V, 3]`` float32 vertices, or None when it
    has no mesh (numpy in and out; vertex data are reshaped, not copied).

    A linear rig runs in float32, a skinning rig in float64 (its rotations), through one
    cached CPU rig per convention.
    """
    conv = conventions.get(convention) if isinstance(convention, str) else convention
    if not conv.has_mesh:
        return None
    return _numpy_rig(conv).numpy(data)


@functools.lru_cache(maxsize=32)
def _numpy_rig(conv: conventions.Convention) -> Rig:
    # keyed on the frozen convention itself: re-registering it (new resources) is a new key
    import torch

    rig = rig_for(conv, dtype=torch.float64 if conv.kind == "params" else torch.float32)
    assert rig is not None
    return rig


def _has(conv: conventions.Convention, keys: tuple[str, ...]) -> bool:
    return all(conv.has_resource(k) for k in keys)

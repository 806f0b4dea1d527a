"""The result type: one convention's motion over time.

Inference returns ``dict[str, Animation]`` keyed by convention name; exporters, the
renderer and the server all consume this one type.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from unitalker import conventions


@dataclass
class Animation:
    """Facial motion of one convention.

    Attributes:
        convention: registered convention name.
        fps: frame rate of ``data``.
        data: ``[T, C]`` float32, in the convention's (scaled) units, template included.
        identity: the identity the model was conditioned on (``pivot`` by default).
        meta: free-form extra metadata carried into exports.
    """

    convention: str
    fps: float
    data: np.ndarray
    identity: str = "pivot"
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # asanyarray: a memory-mapped result (long audio) stays a np.memmap, not a copy
        self.data = np.asanyarray(self.data, dtype=np.float32)
        if self.data.ndim != 2:
            raise ValueError(
                f"Animation {self.convention}: data must be [T, C], got {self.data.shape}"
            )

    @property
    def conv(self) -> conventions.Convention:
        return conventions.get(self.convention)

    @property
    def n_frames(self) -> int:
        return int(self.data.shape[0])

    @property
    def duration(self) -> float:
        return self.n_frames / self.fps

    @property
    def channel_names(self) -> tuple[str, ...] | None:
        return self.conv.channel_names

    def vertices(self) -> np.ndarray | None:
        """``[T, V, 3]`` vertex positions, or None when the convention has no mesh.

        Vertex conventions reshape their data; conventions with a registered vertex function
        (:func:`unitalker.conventions.register_vertex_fn`) apply it; blendshape conventions
        with a rig apply ``meanshape + weights @ basis``.
        """
        conv = self.conv
        if conv.kind == "vertices":
            return self.data.reshape(self.n_frames, -1, 3)
        fn = conventions.vertex_fn(conv.name)
        if fn is not None:
            return np.asarray(fn(self.data), dtype=np.float32)
        if conv.kind == "blendshapes" and conv.has_mesh:
            return rig_vertices(conv, self.data)
        return None

    def faces(self) -> np.ndarray | None:
        """``[F, 3]`` triangles of the mesh, or None."""
        return self.conv.resource("faces") if self.conv.has_resource("faces") else None


def rig_vertices(conv: conventions.Convention, weights: np.ndarray) -> np.ndarray:
    """Blendshape weights ``[T, C]`` -> vertices ``[T, V, 3]`` through the convention's rig."""
    mean = conv.resource("rig_meanshape")
    basis = conv.resource("rig_basis")
    if mean is None or basis is None:
        raise ValueError(f"convention {conv.name!r} has no blendshape rig")
    c, v, _ = basis.shape
    flat = np.asarray(weights, dtype=np.float32) @ basis.reshape(c, v * 3).astype(np.float32)
    return flat.reshape(len(weights), v, 3) + mean[None].astype(np.float32)

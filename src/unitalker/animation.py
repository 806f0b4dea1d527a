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
    # vertices evaluated once by with_vertices(); never set on a result the caller holds
    _vertices: np.ndarray | None = field(default=None, init=False, repr=False, compare=False)

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

        Through the convention's rig (:func:`unitalker.geometry.vertices`): vertex data are
        reshaped, blendshape weights go through the linear rig, parameters through their
        skinning model.
        """
        if self._vertices is not None:
            return self._vertices
        from unitalker import geometry

        return geometry.vertices(self.conv, self.data)

    def with_vertices(self) -> Animation:
        """A copy (same data, not copied) whose :meth:`vertices` are the rig's output,
        evaluated once now, for several readers of one result (the export writers); the
        data must not change while the copy is in use."""
        out = Animation(self.convention, self.fps, self.data, self.identity, self.meta)
        out._vertices = self.vertices()
        return out

    def faces(self) -> np.ndarray | None:
        """``[F, 3]`` triangles of the mesh, or None."""
        return self.conv.resource("faces") if self.conv.has_resource("faces") else None

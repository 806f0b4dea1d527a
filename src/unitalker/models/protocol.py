"""What inference and the server need from a model: :class:`TalkerModel`.

Both the torch model (:class:`unitalker.models.unitalker.UniTalker`) and the onnxruntime
runner (:class:`unitalker.inference.onnx.OnnxUniTalker`) satisfy it, so
:func:`unitalker.inference.animate.animate`, the :class:`~unitalker.inference.streaming.Streamer`,
the bench and the service take either. Code that needs more (the encoder's steps for
incremental streaming, a bf16 twin) checks for it and says so.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    import numpy as np
    import torch

    from unitalker.animation import Animation
    from unitalker.models.unitalker import HeadOutput


@runtime_checkable
class TalkerModel(Protocol):
    """A one-pass multi-head model: audio in, one motion per head out.

    Attributes:
        heads: the model's head (convention) names.
        identities: identity names in table order (the last is ``pivot`` for pivot models).
        device: where inputs go.
    """

    @property
    def heads(self) -> list[str]: ...

    @property
    def identities(self) -> Sequence[str]: ...

    @property
    def device(self) -> torch.device: ...

    def identity_index(self, identity: int | str | None) -> int:
        """``None`` / ``"pivot"`` / an index / a name -> the identity's index."""
        ...

    def __call__(
        self,
        audio: torch.Tensor,
        heads: Sequence[str] | None = None,
        identity: torch.Tensor | int | None = None,
        fps: dict[str, float] | None = None,
    ) -> dict[str, HeadOutput]:
        """``audio [1, S]`` (16 kHz) -> ``{head: HeadOutput(motion [1, T_head, D])}``."""
        ...

    def animate(
        self,
        audio: str | Path | np.ndarray | torch.Tensor,
        sr: int | None = None,
        heads: Sequence[str] | None = None,
        identity: int | str | None = None,
        **kwargs: Any,
    ) -> dict[str, Animation]:
        """One clip, long audio in cross-faded windows: ``{convention: Animation}``."""
        ...

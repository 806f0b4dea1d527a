"""Typed configuration of a UniTalker network. It stops at :func:`build_model`.

A :class:`ModelConfig` is stored inside every checkpoint, so a checkpoint describes itself.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from unitalker.config import check_range

PIVOT = "pivot"


@dataclass(frozen=True)
class EncoderConfig:
    """Audio encoder. ``family``: ``builtin`` | ``wavlm`` | ``wav2vec2`` | ``hubert``.

    HF families are built from ``hf_config`` (a transformers config dict; random weights)
    or take the architecture (and, when training from scratch, the weights) of
    ``name_or_path`` (hub id or local folder). The built-in encoder uses the size fields.
    """

    family: str = "builtin"
    name_or_path: str | None = None
    hf_config: dict[str, Any] | None = None
    do_normalize: bool | None = None
    hidden_size: int = 256
    n_layers: int = 4
    n_heads: int = 4
    n_mels: int = 80
    dropout: float = 0.1

    def __post_init__(self) -> None:
        check_range("hidden_size", self.hidden_size, 1)
        check_range("n_layers", self.n_layers, 1)
        check_range("n_heads", self.n_heads, 1)
        check_range("n_mels", self.n_mels, 1)
        check_range("dropout", self.dropout, 0, 1)


@dataclass(frozen=True)
class DecoderConfig:
    """Motion decoder. ``kind``: ``tcn`` (default) | ``transformer``.

    ``id_dim`` and ``kernel_size`` are the TCN's; the transformer's identity embedding is
    ``hidden``-dimensional and its feed-forward ``ff_dim`` (default ``2 * hidden``), as the
    original.
    """

    kind: str = "tcn"
    hidden: int = 256
    id_dim: int = 64
    n_layers: int | None = None  # tcn: 3 blocks; transformer: 1 layer
    kernel_size: int = 3
    dropout: float = 0.1
    n_heads: int = 4
    ff_dim: int | None = None
    period: int = 30

    def __post_init__(self) -> None:
        check_range("hidden", self.hidden, 1)
        check_range("id_dim", self.id_dim, 1)
        check_range("n_layers", self.n_layers, 1)
        check_range("kernel_size", self.kernel_size, 1)
        check_range("dropout", self.dropout, 0, 1)
        check_range("n_heads", self.n_heads, 1)
        check_range("ff_dim", self.ff_dim, 1)
        check_range("period", self.period, 1)


@dataclass(frozen=True)
class HeadConfig:
    """One output head. ``pca_components`` > 0 makes it a PCA head with that many outputs."""

    convention: str
    pca_components: int = 0
    layers: int = 1

    def __post_init__(self) -> None:
        check_range("pca_components", self.pca_components, 0)
        check_range("layers", self.layers, 1)


@dataclass(frozen=True)
class ModelConfig:
    """The whole network.

    Attributes:
        encoder / decoder: see their classes.
        heads: one per convention.
        identities: identity names in table order; the last is ``pivot`` when ``pivot``.
        pivot: whether the last identity is the pivot identity.
        adaptor_position: 0 before the encoder transformer, 1 after the encoder, 2 after
            the decoder.
    """

    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    decoder: DecoderConfig = field(default_factory=DecoderConfig)
    heads: tuple[HeadConfig, ...] = ()
    identities: tuple[str, ...] = (PIVOT,)
    pivot: bool = True
    adaptor_position: int = 1

    def __post_init__(self) -> None:
        if self.adaptor_position not in (0, 1, 2):
            raise ValueError(f"adaptor_position must be 0, 1 or 2, got {self.adaptor_position}")
        if self.pivot and (not self.identities or self.identities[-1] != PIVOT):
            raise ValueError("with pivot=True the last identity must be 'pivot'")
        names = [h.convention for h in self.heads]
        if len(set(names)) != len(names):
            raise ValueError(f"duplicate heads in {names}")

    @property
    def n_identities(self) -> int:
        return len(self.identities)

    @property
    def head_names(self) -> list[str]:
        return [h.convention for h in self.heads]

    def head(self, name: str) -> HeadConfig:
        for h in self.heads:
            if h.convention == name:
                return h
        raise KeyError(f"model has no head {name!r}; heads: {', '.join(self.head_names)}")

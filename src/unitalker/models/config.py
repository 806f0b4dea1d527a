"""Typed configuration of a UniTalker network. It stops at :func:`build_model`.

A :class:`ModelConfig` is stored inside every checkpoint, so a checkpoint describes itself.
"""

from __future__ import annotations

from collections.abc import Sequence
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

    ``stream_window`` (built-in encoder only): ``(left, right)`` frames of the transformer's
    input (50 Hz) that a frame may attend to in a *windowed* pass, which also drops the
    positional conv's taps beyond ``right``; a windowed stream
    (``Streamer(..., windowed=True)``) then sees per frame what the offline windowed run
    sees. Runs use full attention unless asked. A model is trained for both with
    ``data.augment.p_stream_window``. None: no windowed mode (all released models).
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
    stream_window: tuple[int, int] | None = None

    def __post_init__(self) -> None:
        if self.stream_window is not None:
            if len(self.stream_window) != 2 or min(self.stream_window) < 0:
                raise ValueError(
                    f"stream_window must be two frame counts >= 0 (left, right), "
                    f"got {list(self.stream_window)}"
                )
            if self.family != "builtin":
                raise ValueError("stream_window applies to the built-in encoder only")
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
        visemes: class names of an optional viseme classifier on the encoder's output
            (empty: none). It is what a phonetic auxiliary loss trains (``loss.viseme``);
            :meth:`~unitalker.models.unitalker.UniTalker.forward` returns its logits when
            asked.
    """

    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    decoder: DecoderConfig = field(default_factory=DecoderConfig)
    heads: tuple[HeadConfig, ...] = ()
    identities: tuple[str, ...] = (PIVOT,)
    pivot: bool = True
    adaptor_position: int = 1
    visemes: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if len(set(self.visemes)) != len(self.visemes):
            raise ValueError(f"duplicate viseme classes in {list(self.visemes)}")
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


# ---------------------------------------------------------------------------------------
# The debug model: what the tests and ``unitalker bench --size tiny`` build (as audiocraft's
# ``get_debug_*``): seconds to build and run on a CPU, nothing downloaded.

DEBUG_HEADS: tuple[str, ...] = (
    "FLAME_5023_vertices",
    "3DETF_blendshape_weight",
    "BIWI_23370_vertices",
)


def debug_hf_config(family: str = "wavlm") -> dict[str, Any]:
    """A tiny transformers config dict (2 layers of 32 channels) for an HF encoder family."""
    cfg: dict[str, Any] = {
        "hidden_size": 32,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "intermediate_size": 64,
        "conv_dim": (16, 16, 16, 16, 16, 16, 16),
        "num_conv_pos_embeddings": 16,
        "num_conv_pos_embedding_groups": 2,
        "mask_time_prob": 0.0,
        "layerdrop": 0.0,
    }
    if family == "wavlm":
        cfg["num_buckets"] = 32
        cfg["max_bucket_distance"] = 100
    return cfg


def debug_config(
    family: str = "builtin",
    heads: Sequence[str] | None = None,
    position: int = 1,
    decoder: str = "tcn",
    n_ids: int = 4,
    pca_components: int = 16,
) -> ModelConfig:
    """A tiny :class:`ModelConfig` of any encoder family and decoder kind.

    Args:
        family: ``builtin`` (32 channels, one layer) or an HF family (:func:`debug_hf_config`).
        heads: conventions (default :data:`DEBUG_HEADS`); PCA conventions get
            ``pca_components`` components.
        position: the adaptor position.
        decoder: ``tcn`` or ``transformer`` (24 channels).
        n_ids: identities, the last the pivot (``T:0 .. T:{n_ids - 2}``, ``pivot``).
    """
    from unitalker.models.unitalker import default_heads

    if family == "builtin":
        enc = EncoderConfig(family="builtin", hidden_size=32, n_layers=1, n_heads=2, n_mels=20)
    else:
        enc = EncoderConfig(family=family, hf_config=debug_hf_config(family))
    ids = tuple(f"T:{i}" for i in range(n_ids - 1)) + (PIVOT,)
    return ModelConfig(
        encoder=enc,
        decoder=DecoderConfig(kind=decoder, hidden=24, id_dim=8),
        heads=default_heads(list(heads or DEBUG_HEADS), pca_components),
        identities=ids,
        adaptor_position=position,
    )

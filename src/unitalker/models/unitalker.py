"""The assembled UniTalker: audio encoder -> frequency adaptor -> motion decoder -> heads.

One call runs the encoder once and returns every requested head, with each head at its
own frame rate (the original demo ran the whole model once per head).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from unitalker import conventions
from unitalker.audio import SAMPLE_RATE, frame_count
from unitalker.models.adaptor import adapt
from unitalker.models.config import PIVOT, DecoderConfig, EncoderConfig, HeadConfig, ModelConfig
from unitalker.models.decoders import TCNDecoder, TransformerDecoder
from unitalker.models.encoders import AudioEncoder, build_encoder
from unitalker.models.heads import PCALayer, make_head

log = logging.getLogger(__name__)

VISEME_OUTPUT = "visemes"  # the key of the viseme classifier's logits in forward()'s output


def resolve_identity(
    identity: int | str | None, identities: Sequence[str], pivot: bool = False
) -> int:
    """``None`` / ``"pivot"`` (the last row, with ``pivot``), an index ``0 <= i < n`` (int or
    digits) or a name of ``identities`` -> its index.

    Negative indices are refused: ``--identity -1`` is almost surely a mistake, not "the
    last row" (ask for the pivot by name). The torch model and the ONNX runner both resolve
    identities here.

    Raises:
        ValueError: an index out of range, or the pivot of a model without one.
        KeyError: an unknown name.
    """
    if identity is None or identity == PIVOT:
        if not pivot:
            raise ValueError("this model was trained without a pivot identity; name an identity")
        return len(identities) - 1
    n = len(identities)
    if isinstance(identity, (int, np.integer)) or (
        isinstance(identity, str) and identity.strip().lstrip("+-").isdigit()
    ):
        i = int(identity)
        if not 0 <= i < n:
            raise ValueError(
                f"identity index {i} out of range: the model has {n} identities (0 to {n - 1}, "
                f"or a name, or 'pivot')"
            )
        return i
    try:
        return list(identities).index(identity)
    except ValueError:
        sample = ", ".join(identities[:5])
        raise KeyError(
            f"unknown identity {identity!r}; the model has {n} identities, e.g. {sample}"
        ) from None


@dataclass
class HeadOutput:
    """What one head returns.

    Attributes:
        motion: ``[B, T, D]`` in the convention's (scaled) units, template included.
        coeffs: ``[B, T, K]`` PCA coefficients for PCA heads, else None.
        lengths: valid frames per sample.
        fps: frame rate.
    """

    motion: torch.Tensor
    coeffs: torch.Tensor | None
    lengths: list[int]
    fps: float


class UniTalker(nn.Module):
    """The unified multi-head model.

    Args:
        config: the network description (see :class:`ModelConfig`).
        encoder: a built encoder (default: built from ``config.encoder``).

    Submodule names follow the released checkpoints: ``audio_encoder``, ``decoder``,
    ``out_head_dict``, ``pca_layer_dict``; ``viseme_head`` (a linear classifier on the
    encoder's output) only where ``config.visemes`` names classes.
    """

    def __init__(self, config: ModelConfig, encoder: AudioEncoder | None = None):
        super().__init__()
        self.config = config
        self.audio_encoder = (
            encoder if encoder is not None else build_encoder(_encoder_dict(config.encoder))
        )
        self.decoder = build_decoder(
            config.decoder, self.audio_encoder.hidden_size, config.n_identities
        )
        self.out_head_dict = nn.ModuleDict()
        self.pca_layer_dict = nn.ModuleDict()
        self.templates = nn.Module()  # one buffer per head: its default template [D]
        for h in config.heads:
            conv = conventions.get(h.convention)
            out_dim = h.pca_components if h.pca_components > 0 else conv.dim
            self.out_head_dict[h.convention] = make_head(config.decoder.hidden, out_dim, h.layers)
            if h.pca_components > 0:
                self.pca_layer_dict[h.convention] = PCALayer(h.pca_components, conv.dim)
            self.templates.register_buffer(h.convention, torch.zeros(conv.dim))
        if config.visemes:
            self.viseme_head = nn.Linear(self.audio_encoder.hidden_size, len(config.visemes))
        self.meta: dict[str, Any] = {}

    # ------------------------------------------------------------------------------------
    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    @property
    def templates_dtype(self) -> torch.dtype:
        """The model's compute dtype (that of its stored templates)."""
        return next(iter(self.templates.buffers())).dtype if self.config.heads else torch.float32

    @property
    def heads(self) -> list[str]:
        return self.config.head_names

    @property
    def identities(self) -> tuple[str, ...]:
        return self.config.identities

    @property
    def pivot_index(self) -> int:
        if not self.config.pivot:
            raise ValueError("this model was trained without a pivot identity; name an identity")
        return self.config.n_identities - 1

    def identity_index(self, identity: int | str | None) -> int:
        """Resolve ``None`` / ``"pivot"`` / an index / a name like ``D1:FaceTalk_..`` to an index."""
        return resolve_identity(identity, self.config.identities, self.config.pivot)

    def template(self, head: str) -> torch.Tensor:
        """The default template ``[D]`` of a head."""
        return getattr(self.templates, head)

    def set_template(self, head: str, template: np.ndarray | torch.Tensor) -> None:
        t = torch.as_tensor(np.asarray(template, dtype=np.float32)).reshape(-1)
        self.template(head).copy_(t)

    # ------------------------------------------------------------------------------------
    def forward(
        self,
        audio: torch.Tensor,
        heads: Sequence[str] | None = None,
        identity: torch.Tensor | int | None = None,
        templates: dict[str, torch.Tensor] | None = None,
        lengths: Sequence[int] | torch.Tensor | None = None,
        frames: dict[str, Sequence[int]] | None = None,
        fps: dict[str, float] | None = None,
        features: torch.Tensor | None = None,
        windowed: bool = False,
        visemes: bool = False,
    ) -> dict[str, HeadOutput]:
        """Run the encoder and decoder once and every requested head.

        Args:
            audio: ``[B, S]`` 16 kHz waveforms, zero-padded (raw; normalisation is internal).
            heads: head names (default: all heads).
            identity: ``[B]`` identity indices, one int for all, or None for the pivot.
            templates: per head, ``[B, D]`` or ``[D]`` templates to add (default: the
                head's stored template).
            lengths: valid samples per waveform (default: all ``S``).
            frames: per head, the wanted frame count per sample (default:
                ``round(seconds * fps)``, as the original).
            fps: per head, an output rate other than the convention's.
            features: ``[B, T50, F]`` the encoder's :meth:`extract` output for ``audio``,
                computed elsewhere (incremental streaming caches it); skips normalisation
                and extraction.
            windowed: run the encoder's transformer in its ``stream_window`` (what a
                windowed stream does; see :class:`~unitalker.models.config.EncoderConfig`).
            visemes: also return the viseme classifier's logits (a model with
                ``config.visemes``) under :data:`VISEME_OUTPUT`: a :class:`HeadOutput`
                whose ``motion`` is ``[B, T, C]`` logits at the first head's frames, from
                the encoder's output there (before the identity-conditioned decoder).

        Returns:
            ``{head: HeadOutput}`` with ``motion [B, T_head, D]``.
        """
        heads = list(heads) if heads is not None else self.heads
        if visemes and not self.config.visemes:
            raise ValueError("this model has no viseme classifier (config.visemes is empty)")
        for h in heads:
            if h not in self.out_head_dict:
                raise KeyError(f"model has no head {h!r}; heads: {', '.join(self.heads)}")
        b, s = audio.shape
        # Traced (ONNX export): one unpadded clip whose frame counts are graph values, so
        # that the exported graph serves every clip length.
        tracing = torch.jit.is_tracing()
        if tracing and (b != 1 or lengths is not None or frames is not None):
            raise ValueError("a traced forward takes one clip [1, S], without lengths or frames")
        lens = [s] * b if lengths is None else [int(x) for x in lengths]
        idx = self._identity_tensor(identity, b, audio.device)

        # Frame counts per head; heads that share rate and counts share decoder output.
        rates = {h: float((fps or {}).get(h, conventions.get(h).fps)) for h in heads}
        if tracing:
            counts: dict[str, list[Any]] = {h: [_graph_frame_count(audio, rates[h])] for h in heads}
            keys: dict[str, Any] = rates  # same rate, same count
        else:
            counts = {
                h: [int(n) for n in frames[h]]
                if frames and h in frames
                else [frame_count(n, rates[h]) for n in lens]
                for h in heads
            }
            keys = {h: tuple(counts[h]) for h in heads}
        groups: dict[Any, list[str]] = {}
        for h in heads:
            groups.setdefault(keys[h], []).append(h)
        n_out = {key: counts[names[0]] for key, names in groups.items()}

        enc = self.audio_encoder
        # Normalise in the input's precision, then round once to the model's dtype (a
        # bf16 / fp16 twin, see unitalker.inference.precision, takes fp32 audio).
        if features is None:
            x = enc.normalize(audio, lens).to(self.templates_dtype)
            feats = enc.extract(x, lens)  # [B, T50, F]
        else:
            feats = features.to(self.templates_dtype)
        if tracing:
            in_lens = [feats.shape[1]]
        else:
            in_lens = [min(n, feats.shape[1]) for n in enc.output_lengths(lens)]
        pos = self.config.adaptor_position

        hidden: dict[Any, torch.Tensor] = {}
        first = keys[heads[0]] if heads else None
        encoded = None  # the encoder's output at the first head's frames (visemes)
        if pos == 0:
            for key, n in n_out.items():
                f = adapt(feats, in_lens, n)
                m = _mask(n, f)
                c = enc.contextualize(f, m, windowed=windowed)
                encoded = c if key == first else encoded
                hidden[key] = self.decoder(c, idx, m)
        else:
            ctx = enc.contextualize(feats, _mask(in_lens, feats), windowed=windowed)
            if pos == 1:
                for key, n in n_out.items():
                    c = adapt(ctx, in_lens, n)
                    encoded = c if key == first else encoded
                    hidden[key] = self.decoder(c, idx, _mask(n, c))
            else:
                d50 = self.decoder(ctx, idx, _mask(in_lens, ctx))
                if max(in_lens) < d50.shape[1]:
                    d50 = d50[:, : max(in_lens)]
                for key, n in n_out.items():
                    hidden[key] = adapt(d50, in_lens, n)
                if visemes and first is not None:
                    encoded = adapt(ctx, in_lens, n_out[first])

        out: dict[str, HeadOutput] = {}
        for key, names in groups.items():
            hs = hidden[key]
            for h in names:
                raw = self.out_head_dict[h](hs)
                coeffs = None
                tpl = (templates or {}).get(h)
                tpl = self.template(h) if tpl is None else tpl.to(raw.dtype)
                tpl = tpl[None] if tpl.dim() == 1 else tpl  # [B or 1, D]
                if h in self.pca_layer_dict:
                    # PCA mean and template added inside the one GEMM (the decode is the
                    # largest product of the model: BIWI is [T, 512] x [512, 70110]).
                    coeffs = raw
                    motion = self.pca_layer_dict[h].decode(raw, offset=tpl[:, None, :])
                else:
                    motion = raw + tpl[:, None, :]
                m = _mask(n_out[key], motion)
                if m is not None:  # zero the padding so callers never see garbage
                    m = m[..., None]
                    motion = motion * m
                    coeffs = None if coeffs is None else coeffs * m
                n_valid = [motion.shape[1]] if tracing else list(n_out[key])
                out[h] = HeadOutput(motion, coeffs, n_valid, rates[h])
        if visemes and encoded is not None:
            h0 = heads[0]
            n_valid = [encoded.shape[1]] if tracing else list(n_out[first])
            out[VISEME_OUTPUT] = HeadOutput(self.viseme_head(encoded), None, n_valid, rates[h0])
        return out

    def _identity_tensor(
        self, identity: torch.Tensor | int | str | None, b: int, device: torch.device
    ) -> torch.Tensor:
        if isinstance(identity, torch.Tensor):
            return (
                identity.to(device=device, dtype=torch.long).reshape(-1).expand(b)
                if identity.numel() == 1
                else identity.to(device, torch.long)
            )
        return torch.full((b,), self.identity_index(identity), dtype=torch.long, device=device)

    # ------------------------------------------------------------------------------------
    def animate(
        self,
        audio: str | Path | np.ndarray | torch.Tensor,
        sr: int | None = None,
        heads: Sequence[str] | None = None,
        identity: int | str | None = None,
        **kwargs: Any,
    ) -> dict[str, Any]:
        """Animate one clip: a path (any format) or a waveform at ``sr`` (default 16 kHz).

        Long audio runs in cross-faded windows (see :func:`unitalker.inference.animate.animate`,
        which takes the remaining keyword arguments).

        Returns:
            ``{convention: Animation}``.
        """
        from unitalker.inference.animate import animate

        return animate(self, audio, sr=sr, heads=heads, identity=identity, **kwargs)

    @classmethod
    def from_pretrained(
        cls,
        name_or_path: str | Path,
        *,
        device: Any = "cpu",
        revision: str | None = None,
        cache_dir: str | Path | None = None,
        force_download: bool = False,
        local_files_only: bool = False,
        token: str | bool | None = None,
    ) -> UniTalker:
        """Load a bundled name, a local folder or a Hugging Face Hub repo id (``owner/name``).

        Hub models are fetched through huggingface_hub's cache (``HF_HOME``;
        ``HF_HUB_OFFLINE=1`` reads only the cache), as ``PyTorchModelHubMixin`` models are;
        see :mod:`unitalker.models.checkpoint`. Either config layout loads.

        Args:
            name_or_path: bundled name, folder, ``.safetensors`` file or repo id.
            device: where the model goes (CPU by default, as in huggingface_hub).
            revision, cache_dir, force_download, local_files_only, token: as in
                ``huggingface_hub.snapshot_download``.

        Returns:
            The model in eval mode.
        """
        from unitalker.models.checkpoint import load_model

        return load_model(
            name_or_path,
            device=device,
            revision=revision,
            cache_dir=cache_dir,
            force_download=force_download,
            local_files_only=local_files_only,
            token=token,
        )

    def save_pretrained(
        self, save_directory: str | Path, *, extra: dict[str, Any] | None = None
    ) -> Path:
        """Write a hub-style folder (``model.safetensors``, ``unitalker.json``, ``README.md``).

        Upload it with ``huggingface-cli upload OWNER/NAME FOLDER``; see
        :func:`unitalker.models.checkpoint.save_pretrained`.
        """
        from unitalker.models.checkpoint import save_pretrained

        return save_pretrained(self, save_directory, extra=extra)

    def describe(self) -> dict[str, Any]:
        return {
            "heads": {
                h: {"fps": conventions.get(h).fps, "dim": conventions.get(h).dim}
                for h in self.heads
            },
            "n_identities": self.config.n_identities,
            "encoder": self.config.encoder.family,
            "decoder": self.config.decoder.kind,
            "parameters": sum(p.numel() for p in self.parameters()),
        }


def _mask(lengths: Sequence[int], like: torch.Tensor) -> torch.Tensor | None:
    """``[B, T]`` True on the first ``lengths[b]`` frames of ``like [B, T, ..]``.

    None when every sample fills all ``T`` frames: modules then take their unmasked path,
    which is what the original (batch size 1) ran.
    """
    t = like.shape[1]
    if torch.jit.is_tracing() or all(int(n) >= t for n in lengths):
        return None  # (a traced forward is one unpadded clip)
    return (
        torch.arange(t, device=like.device)[None, :]
        < torch.tensor(list(lengths), device=like.device)[:, None]
    )


def _graph_frame_count(audio: torch.Tensor, fps: float) -> torch.Tensor:
    """:func:`unitalker.audio.frame_count` of ``audio [1, S]`` as a 0-d int64 graph value.

    Same expression and order, ``max(1, round(S / 16000 * fps))`` in float64 with ties to
    even as Python's ``round``; traced, it follows the input's length.
    """
    n = torch._shape_as_tensor(audio)[1].to(torch.float64)
    return torch.clamp(torch.round(n / float(SAMPLE_RATE) * fps), min=1.0).to(torch.int64)


def _encoder_dict(cfg: EncoderConfig) -> dict[str, Any]:
    return {k: v for k, v in asdict(cfg).items() if v is not None}


def build_decoder(cfg: DecoderConfig, in_dim: int, n_identities: int) -> nn.Module:
    """Build the motion decoder from its config."""
    if cfg.kind == "tcn":
        return TCNDecoder(
            in_dim,
            n_identities,
            cfg.hidden,
            cfg.id_dim,
            cfg.n_layers or 3,
            cfg.kernel_size,
            cfg.dropout,
        )
    if cfg.kind == "transformer":
        return TransformerDecoder(
            in_dim,
            n_identities,
            hidden=cfg.hidden,
            n_layers=cfg.n_layers or 1,
            n_heads=cfg.n_heads,
            ff_dim=cfg.ff_dim,
            period=cfg.period,
            dropout=cfg.dropout,
        )
    raise ValueError(f"unknown decoder kind {cfg.kind!r}; known: tcn, transformer")


def build_model(config: ModelConfig, *, pretrained_encoder: bool = False) -> UniTalker:
    """Build a UniTalker from its config.

    Args:
        config: the network.
        pretrained_encoder: load the HF encoder's weights from ``encoder.name_or_path``
            (training from a pre-trained encoder); else random / to be loaded.
    """
    encoder = build_encoder(_encoder_dict(config.encoder), pretrained=pretrained_encoder)
    return UniTalker(config, encoder)


def default_heads(
    names: Sequence[str], pca_components: int | dict[str, int] = 512
) -> tuple[HeadConfig, ...]:
    """Head configs for conventions: PCA heads (``min(512, dim, K)``) for PCA conventions."""
    out = []
    for n in names:
        conv = conventions.get(n)
        k = pca_components.get(n, 0) if isinstance(pca_components, dict) else pca_components
        out.append(HeadConfig(n, min(k, conv.dim) if conv.pca and k else 0))
    return tuple(out)

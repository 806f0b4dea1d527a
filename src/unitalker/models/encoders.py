"""Audio encoders: HF WavLM / wav2vec 2.0 / HuBERT, and a small built-in encoder.

Every encoder exposes the same three steps so that the frequency adaptor can sit between
any two of them (formats.md Sec. 1):

1. :meth:`AudioEncoder.normalize` — the encoder's own input normalisation;
2. :meth:`AudioEncoder.extract` — local features at 50 Hz (HF: the conv feature encoder);
3. :meth:`AudioEncoder.contextualize` — the sequence model (HF: feature projection,
   SpecAugment-style masking in training, transformer).

The HF wrapper composes the HF model's own submodules; it does not copy HF's ``forward``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from unitalker.audio import HOP_LENGTH, SAMPLE_RATE

log = logging.getLogger(__name__)

# family -> (transformers config class, model class) names; resolved lazily.
HF_FAMILIES: dict[str, tuple[str, str]] = {
    "wavlm": ("WavLMConfig", "WavLMModel"),
    "wav2vec2": ("Wav2Vec2Config", "Wav2Vec2Model"),
    "hubert": ("HubertConfig", "HubertModel"),
}
ENCODER_FAMILIES: tuple[str, ...] = (*HF_FAMILIES, "builtin")

# Well-known encoders of the paper (hub ids); any other id or local folder works too.
KNOWN_ENCODERS: dict[str, str] = {
    "microsoft/wavlm-base-plus": "wavlm",
    "microsoft/wavlm-base": "wavlm",
    "facebook/wav2vec2-large-xlsr-53": "wav2vec2",
    "facebook/wav2vec2-base-960h": "wav2vec2",
    "facebook/hubert-base-ls960": "hubert",
}


class AudioEncoder(nn.Module):
    """Interface of every audio encoder. ``hidden_size`` is the output channel count."""

    hidden_size: int
    feature_size: int  # channels of :meth:`extract` (the adaptor's position-0 input)
    normalizes: bool = False  # whether :meth:`normalize` standardises the waveform

    def normalize(self, audio: torch.Tensor, lengths: list[int]) -> torch.Tensor:
        """Input normalisation ``[B, S] -> [B, S]`` over each sample's valid part."""
        return audio

    def extract(self, audio: torch.Tensor, lengths: list[int] | None = None) -> torch.Tensor:
        """Local features ``[B, S] -> [B, T50, F]``; ``lengths`` are valid samples per item."""
        raise NotImplementedError

    def output_lengths(self, n_samples: list[int]) -> list[int]:
        """Number of :meth:`extract` frames for each input length."""
        raise NotImplementedError

    stream_window: tuple[int, int] | None = None  # see BuiltinAudioEncoder

    def contextualize(
        self, feats: torch.Tensor, mask: torch.Tensor | None = None, *, windowed: bool = False
    ) -> torch.Tensor:
        """Sequence model ``[B, T, F] -> [B, T, H]``; ``mask`` [B, T] is True on valid frames;
        ``windowed``: attend only within :attr:`stream_window` (encoders that have one)."""
        raise NotImplementedError

    def freeze(self, part: str) -> None:
        """Freeze ``"all"``, ``"features"`` (the local feature extractor) or ``"none"``."""
        for p in self.parameters():
            p.requires_grad_(part == "none")
        if part == "features":
            for p in self.parameters():
                p.requires_grad_(True)
            for p in self.feature_parameters():
                p.requires_grad_(False)

    def feature_parameters(self) -> list[nn.Parameter]:
        """Parameters of the local feature extractor (frozen after warm-up, as the original)."""
        return []

    def feature_edge(self) -> int | None:
        """Frames at each end of an :meth:`extract` call that differ from the same frames
        extracted from a longer signal (conv zero padding), when frame ``i`` otherwise
        depends only on samples ``[320 i, 320 i + 400)``; None when :meth:`extract` is not
        local (e.g. a group norm over time), so it cannot run incrementally."""
        return None

    def config_dict(self) -> dict[str, Any]:
        """What :func:`build_encoder` needs to rebuild this encoder without a download."""
        raise NotImplementedError


def _masked_standardize(audio: torch.Tensor, lengths: list[int], eps: float = 1e-7) -> torch.Tensor:
    # Same formula as HF's Wav2Vec2FeatureExtractor.zero_mean_unit_var_norm (per sample).
    if len(lengths) == 1 and lengths[0] >= audio.shape[1]:
        # One unpadded clip: the same ops without the scatter into zeros (traceable).
        x = audio[0]
        return ((x - x.mean()) / torch.sqrt(x.var(unbiased=False) + eps))[None]
    out = torch.zeros_like(audio)
    for i, n in enumerate(lengths):
        x = audio[i, :n]
        out[i, :n] = (x - x.mean()) / torch.sqrt(x.var(unbiased=False) + eps)
    return out


class HFAudioEncoder(AudioEncoder):
    """A transformers WavLM / Wav2Vec2 / HuBERT model, split into the three steps.

    Args:
        model: the HF base model (``WavLMModel``, ``Wav2Vec2Model`` or ``HubertModel``).
        family: ``wavlm`` | ``wav2vec2`` | ``hubert``.
        do_normalize: zero-mean / unit-variance input normalisation (the feature extractor's
            ``do_normalize``).
        name_or_path: where it came from (recorded in checkpoints, informational).
    """

    def __init__(
        self, model: nn.Module, family: str, do_normalize: bool, name_or_path: str | None = None
    ):
        super().__init__()
        if family not in HF_FAMILIES:
            raise ValueError(f"unknown HF encoder family {family!r}; known: {list(HF_FAMILIES)}")
        self.model = model
        self.family = family
        self.do_normalize = bool(do_normalize)
        self.normalizes = self.do_normalize
        self.name_or_path = name_or_path
        self.hidden_size = int(model.config.hidden_size)
        self.feature_size = int(model.config.conv_dim[-1])
        if family == "wavlm":
            # Same math as HF's attention, one fused SDPA call (models/fused_attention.py).
            from unitalker.models.fused_attention import fuse_wavlm_attention

            fuse_wavlm_attention(self.model)

    # -- construction ------------------------------------------------------------------
    @classmethod
    def from_pretrained(
        cls, name_or_path: str, family: str | None = None, **kwargs: Any
    ) -> HFAudioEncoder:
        """Load weights and settings from a hub id or a local folder (``save_pretrained`` layout)."""
        import transformers

        config = transformers.AutoConfig.from_pretrained(name_or_path)
        family = family or _family_of(config.model_type, name_or_path)
        model_cls = getattr(transformers, HF_FAMILIES[family][1])
        model = model_cls.from_pretrained(name_or_path, **kwargs)
        return cls(model, family, _do_normalize_of(name_or_path, family), name_or_path)

    @classmethod
    def from_config(
        cls,
        family: str,
        config: dict[str, Any],
        do_normalize: bool | None = None,
        name_or_path: str | None = None,
    ) -> HFAudioEncoder:
        """Build with random weights from an HF config dict (no download)."""
        import transformers

        if family not in HF_FAMILIES:
            raise ValueError(f"unknown HF encoder family {family!r}; known: {list(HF_FAMILIES)}")
        cfg_cls = getattr(transformers, HF_FAMILIES[family][0])
        model_cls = getattr(transformers, HF_FAMILIES[family][1])
        cfg = cfg_cls(
            **{
                k: v
                for k, v in config.items()
                if k not in ("model_type", "transformers_version", "architectures")
            }
        )
        model = model_cls(cfg)
        if do_normalize is None:
            do_normalize = family != "wavlm"
        return cls(model, family, do_normalize, name_or_path)

    @classmethod
    def from_name_or_config(cls, name_or_path: str, family: str | None = None) -> HFAudioEncoder:
        """Only the architecture of ``name_or_path`` (config + normalisation), random weights.

        Used when the weights come from a UniTalker checkpoint anyway.
        """
        import transformers

        config = transformers.AutoConfig.from_pretrained(name_or_path)
        family = family or _family_of(config.model_type, name_or_path)
        return cls.from_config(
            family, config.to_dict(), _do_normalize_of(name_or_path, family), name_or_path
        )

    def config_dict(self) -> dict[str, Any]:
        cfg = self.model.config.to_dict()
        for k in ("transformers_version", "architectures", "_name_or_path"):
            cfg.pop(k, None)
        return {
            "family": self.family,
            "hf_config": cfg,
            "do_normalize": self.do_normalize,
            "name_or_path": self.name_or_path,
        }

    # -- the three steps -----------------------------------------------------------------
    def normalize(self, audio: torch.Tensor, lengths: list[int]) -> torch.Tensor:
        return _masked_standardize(audio, lengths) if self.do_normalize else audio

    def extract(self, audio: torch.Tensor, lengths: list[int] | None = None) -> torch.Tensor:
        # HF's conv stack sees the zero padding as the original did with padded batches.
        return self.model.feature_extractor(audio).transpose(1, 2)

    def output_lengths(self, n_samples: list[int]) -> list[int]:
        lengths = self.model._get_feat_extract_output_lengths(torch.tensor(n_samples))
        return [int(x) for x in lengths]

    def contextualize(
        self, feats: torch.Tensor, mask: torch.Tensor | None = None, *, windowed: bool = False
    ) -> torch.Tensor:
        if windowed:
            raise ValueError("windowed attention (stream_window) needs the built-in encoder")
        projected = self.model.feature_projection(feats)
        # wav2vec2 / WavLM return (hidden, normed features); HuBERT returns hidden only.
        hidden = projected[0] if isinstance(projected, tuple) else projected
        attention_mask = None if mask is None else mask.long()
        hidden = self.model._mask_hidden_states(hidden, attention_mask=attention_mask)
        return self.model.encoder(hidden, attention_mask=attention_mask).last_hidden_state

    def feature_parameters(self) -> list[nn.Parameter]:
        return list(self.model.feature_extractor.parameters())

    def feature_edge(self) -> int | None:
        # Valid (unpadded) convs: exact on any sample range, unless the first conv's
        # group norm normalises over time (WavLM / wav2vec2 base: "group").
        return 0 if getattr(self.model.config, "feat_extract_norm", "group") == "layer" else None


def _family_of(model_type: str, name: str) -> str:
    mapping = {"wavlm": "wavlm", "wav2vec2": "wav2vec2", "hubert": "hubert"}
    if model_type in mapping:
        return mapping[model_type]
    raise ValueError(
        f"{name}: model_type {model_type!r} is not a supported audio encoder ({list(HF_FAMILIES)})"
    )


def _do_normalize_of(name_or_path: str, family: str) -> bool:
    """The feature extractor's ``do_normalize``; defaults per family when it has none."""
    try:
        from transformers import Wav2Vec2FeatureExtractor

        fe = Wav2Vec2FeatureExtractor.from_pretrained(name_or_path)
        return bool(fe.do_normalize)
    except (OSError, ValueError):
        default = family != "wavlm"
        log.info(
            "%s: no preprocessor_config.json; do_normalize=%s (family default)",
            name_or_path,
            default,
        )
        return default


# ---------------------------------------------------------------------------------------
# The built-in encoder: small enough to train from scratch on a CPU in minutes.


def mel_filterbank(
    n_mels: int, n_fft: int, sr: int, fmin: float = 0.0, fmax: float | None = None
) -> torch.Tensor:
    """HTK-style triangular mel filters ``[n_mels, n_fft // 2 + 1]``."""
    # Kept over a library: torchaudio has no build for our torch pin and librosa would pull
    # numba into the core install; equal to librosa.filters.mel(htk=True, norm=None) (tested).
    fmax = fmax or sr / 2

    def hz_to_mel(f: torch.Tensor) -> torch.Tensor:
        return 2595.0 * torch.log10(1.0 + f / 700.0)

    def mel_to_hz(m: torch.Tensor) -> torch.Tensor:
        return 700.0 * (10 ** (m / 2595.0) - 1.0)

    freqs = torch.linspace(0, sr / 2, n_fft // 2 + 1)
    mels = torch.linspace(hz_to_mel(torch.tensor(fmin)), hz_to_mel(torch.tensor(fmax)), n_mels + 2)
    hz = mel_to_hz(mels)
    lower, center, upper = hz[:-2, None], hz[1:-1, None], hz[2:, None]
    up = (freqs[None] - lower) / (center - lower)
    down = (upper - freqs[None]) / (upper - center)
    return torch.clamp(torch.minimum(up, down), min=0.0)


class BuiltinAudioEncoder(AudioEncoder):
    """Log-mel features + a conv stem + a light transformer, at 50 Hz like the HF encoders.

    The STFT uses a 400-sample window and a 320-sample hop without centring, which gives the
    same frame count as the HF conv stack (receptive field 400, stride 320).

    Args:
        hidden_size: channel count of the output.
        n_layers: transformer layers.
        n_heads: attention heads.
        n_mels: mel bands.
        dropout: dropout in the transformer.
        stream_window: ``(left, right)``: in a windowed pass (``contextualize(...,
            windowed=True)``, what a windowed stream runs) frame ``t`` attends to frames
            ``t - left .. t + right`` only, in every layer, and the positional conv drops
            its taps beyond ``+right``. The same weights run both ways; training draws
            windowed passes with chance :attr:`stream_window_p` so that both work.
    """

    N_FFT = 400
    normalizes = True

    def __init__(
        self,
        hidden_size: int = 256,
        n_layers: int = 4,
        n_heads: int = 4,
        n_mels: int = 80,
        dropout: float = 0.1,
        stream_window: tuple[int, int] | None = None,
    ):
        super().__init__()
        self.hidden_size = hidden_size
        self.stream_window = None if stream_window is None else tuple(map(int, stream_window))
        # Training only (set by the training builder from data.augment.p_stream_window):
        # the chance that a training pass is windowed; drawn from torch's global RNG.
        self.stream_window_p = 0.0
        self.feature_size = hidden_size
        self.n_layers, self.n_heads, self.n_mels, self.dropout = n_layers, n_heads, n_mels, dropout
        # Computed on the CPU, then moved: on the meta device (the checkpoint loader's shape
        # check) these ops run Python meta kernels that import torch._dynamo and sympy
        # (~1 s of every `unitalker animate`).
        with torch.device("cpu"):
            window = torch.hann_window(self.N_FFT)
            mel = mel_filterbank(n_mels, self.N_FFT, SAMPLE_RATE)
        device = torch.get_default_device()
        self.register_buffer("window", window.to(device), persistent=False)
        self.register_buffer("mel", mel.to(device), persistent=False)
        self.stem = nn.ModuleList(
            [
                nn.Conv1d(n_mels, hidden_size, 3, padding=1),
                nn.Conv1d(hidden_size, hidden_size, 3, padding=1),
            ]
        )
        self.pos_conv = nn.Conv1d(hidden_size, hidden_size, 31, padding=15, groups=16)
        layer = nn.TransformerEncoderLayer(
            hidden_size,
            n_heads,
            4 * hidden_size,
            dropout,
            activation="gelu",
            batch_first=True,
            norm_first=True,
        )
        self.transformer = nn.TransformerEncoder(layer, n_layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(hidden_size)
        # Training-time masks on the log-mel features ([B, M, T], valid frames per item ->
        # [B, M, T]), set by the training builder (data.augment.spec_*); not part of the
        # model or its checkpoint.
        self.feature_augment: Callable[[torch.Tensor, list[int] | None], torch.Tensor] | None = None

    def normalize(self, audio: torch.Tensor, lengths: list[int]) -> torch.Tensor:
        return _masked_standardize(audio, lengths)

    def extract(self, audio: torch.Tensor, lengths: list[int] | None = None) -> torch.Tensor:
        if torch.jit.is_tracing():
            spec = self._power_spectrum_graph(audio.float())
        else:
            if audio.shape[1] < self.N_FFT:  # shorter than one window: pad to one frame
                audio = nn.functional.pad(audio, (0, self.N_FFT - audio.shape[1]))
            spec = (
                torch.stft(
                    audio.float(),
                    self.N_FFT,
                    HOP_LENGTH,
                    window=self.window,
                    center=False,
                    return_complex=True,
                )
                .abs()
                .pow(2)
            )  # [B, F, T]
        x = torch.log(torch.clamp(self.mel @ spec, min=1e-6)).to(audio.dtype)  # [B, M, T]
        if self.training and self.feature_augment is not None:
            n_valid = None if lengths is None else self.output_lengths(lengths)
            x = self.feature_augment(x, n_valid)
        # Zero the frames past each item's end before every conv, so a padded batch gives
        # the same features as items run alone (whose conv padding is zeros too).
        m = None
        if lengths is not None and len(set(lengths)) > 1:
            t = torch.arange(x.shape[2], device=x.device)
            m = (t[None] < torch.tensor(self.output_lengths(lengths), device=x.device)[:, None])[
                :, None
            ].to(x.dtype)
        for conv in self.stem:
            x = nn.functional.gelu(conv(x if m is None else x * m))
        return (x if m is None else x * m).transpose(1, 2)  # [B, T, H]

    def _power_spectrum_graph(self, audio: torch.Tensor) -> torch.Tensor:
        """``|STFT|^2`` ``[B, S] -> [B, F, T]`` as a strided conv with the windowed DFT basis.

        For a traced forward (ONNX export): complex tensors do not export and the short-clip
        padding must follow the input's length. Equal to the ``torch.stft`` path up to
        float rounding.
        """
        n = self.N_FFT
        # pad to at least one window: append a window of zeros, keep max(S, N) samples
        s = torch._shape_as_tensor(audio)[1]
        keep = torch.arange(torch.clamp(s, min=n))  # type: ignore[call-overload]
        x = torch.cat([audio, audio.new_zeros(audio.shape[0], n)], dim=1)[:, keep]
        k = torch.arange(n // 2 + 1, dtype=torch.float64)[:, None]
        t = torch.arange(n, dtype=torch.float64)[None, :]
        ang = 2.0 * torch.pi * k * t / n  # [F, N]
        win = self.window.to(torch.float64)
        basis = torch.cat([torch.cos(ang) * win, -torch.sin(ang) * win])  # [2F, N]
        y = nn.functional.conv1d(x[:, None], basis.to(audio.dtype)[:, None], stride=HOP_LENGTH)
        re, im = y.chunk(2, dim=1)  # [B, F, T] each
        return re * re + im * im

    def output_lengths(self, n_samples: list[int]) -> list[int]:
        return [max(1, (max(n, self.N_FFT) - self.N_FFT) // HOP_LENGTH + 1) for n in n_samples]

    def contextualize(
        self, feats: torch.Tensor, mask: torch.Tensor | None = None, *, windowed: bool = False
    ) -> torch.Tensor:
        if windowed and self.stream_window is None:
            raise ValueError("this encoder has no stream_window: it cannot run windowed")
        if (
            not windowed
            and self.training
            and self.stream_window is not None
            and self.stream_window_p > 0
        ):
            windowed = bool(torch.rand(()) < self.stream_window_p)
        if mask is not None:
            feats = feats * mask[..., None].to(feats.dtype)
        if not windowed:
            x = feats + self.pos_conv(feats.transpose(1, 2)).transpose(1, 2)
            pad = None if mask is None else ~mask
            return self.norm(self.transformer(x, src_key_padding_mask=pad))
        left, right = self.stream_window
        w = self.pos_conv.weight  # [H, H / groups, K]: tap k looks k - K // 2 frames ahead
        k = w.shape[-1]
        taps = (torch.arange(k, device=w.device) - k // 2 <= right).to(w.dtype)
        pos = nn.functional.conv1d(
            feats.transpose(1, 2),
            w * taps,
            self.pos_conv.bias,
            padding=k // 2,
            groups=self.pos_conv.groups,
        )
        x = feats + pos.transpose(1, 2)
        return self.norm(self.transformer(x, mask=self._window_mask(x, mask, left, right)))

    def _window_mask(
        self, x: torch.Tensor, mask: torch.Tensor | None, left: int, right: int
    ) -> torch.Tensor:
        """``[B * heads, T, T]`` bool, True where query ``i`` may *not* see key ``j``: keys
        outside ``i - left .. i + right`` and padding. A padded query whose window holds
        only padding sees every valid key (its output is discarded; a row with no key at
        all would be NaN, and NaN survives the decoder's masking)."""
        b, t = x.shape[:2]
        i = torch.arange(t, device=x.device)
        d = i[None, :] - i[:, None]  # key - query
        blocked = ((d > right) | (d < -left))[None].expand(b, t, t)
        if mask is not None:
            invalid = ~mask[:, None, :]  # [B, 1, T] padded keys
            blocked = blocked | invalid
            empty = blocked.all(dim=-1, keepdim=True)
            blocked = torch.where(empty, invalid.expand(b, t, t), blocked)
        return blocked.repeat_interleave(self.n_heads, dim=0)

    def feature_parameters(self) -> list[nn.Parameter]:
        return list(self.stem.parameters())

    def feature_edge(self) -> int | None:
        return len(self.stem)  # each kernel-3 stem conv reaches one frame further

    def config_dict(self) -> dict[str, Any]:
        return {
            "family": "builtin",
            "hidden_size": self.hidden_size,
            "n_layers": self.n_layers,
            "n_heads": self.n_heads,
            "n_mels": self.n_mels,
            "dropout": self.dropout,
            "stream_window": None if self.stream_window is None else list(self.stream_window),
        }


def build_encoder(config: dict[str, Any], *, pretrained: bool = False) -> AudioEncoder:
    """Build an encoder from :meth:`AudioEncoder.config_dict` output or a user config.

    Args:
        config: ``{"family": ..., ...}``. HF families take ``hf_config`` (a config dict,
            random weights) or ``name_or_path`` (hub id / folder).
        pretrained: with ``name_or_path``, load its weights (else only its architecture).
    """
    family = config.get("family", "builtin")
    if family == "builtin":
        kw = {
            k: config[k]
            for k in ("hidden_size", "n_layers", "n_heads", "n_mels", "dropout", "stream_window")
            if k in config
        }
        return BuiltinAudioEncoder(**kw)
    if family not in HF_FAMILIES:
        raise ValueError(f"unknown encoder family {family!r}; known: {ENCODER_FAMILIES}")
    name = config.get("name_or_path")
    if config.get("hf_config") is not None:
        return HFAudioEncoder.from_config(
            family, config["hf_config"], config.get("do_normalize"), name
        )
    if not name:
        raise ValueError(f"encoder family {family!r} needs 'hf_config' or 'name_or_path'")
    if pretrained:
        return HFAudioEncoder.from_pretrained(name, family)
    return HFAudioEncoder.from_name_or_config(name, family)


def encoder_family_for(name_or_path: str) -> str | None:
    """Family of a known hub id, or of a local folder's config.json; None if unknown."""
    if name_or_path in KNOWN_ENCODERS:
        return KNOWN_ENCODERS[name_or_path]
    cfg = Path(name_or_path) / "config.json"
    if cfg.exists():
        import json

        return _family_of(json.loads(cfg.read_text()).get("model_type", ""), name_or_path)
    return None


__all__ = [
    "AudioEncoder",
    "BuiltinAudioEncoder",
    "HFAudioEncoder",
    "build_encoder",
    "ENCODER_FAMILIES",
]

"""Motion decoders: the TCN decoder (default) and the transformer decoder.

Both map adapted audio features ``[B, T, C_enc]`` and an identity index ``[B]`` to motion
hidden states ``[B, T, H]``. The identity embedding has one row per training subject
across all datasets plus, when pivot training is on, a last *pivot* row.

Module names follow the released checkpoints' keys (``decoder.learnable_style_emb``,
``decoder.audio_feature_map``, ``decoder.tcn.first_net.conv_layers.N.{conv,norm,
residual_layer.0}``) so that the original weights load without renaming.
"""

from __future__ import annotations

import math

import torch
from torch import nn


class TCNBlock(nn.Module):
    """``Conv1d(k, pad=k//2) -> LayerNorm(channels) -> + residual -> ReLU``.

    The residual is the identity when channel counts match, else a Conv1d of the same
    kernel (``residual_layer.0`` in the original keys).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3):
        super().__init__()
        self.conv = nn.Conv1d(
            in_channels, out_channels, kernel_size, stride=1, padding=kernel_size // 2
        )
        self.norm = nn.LayerNorm(out_channels)
        self.residual_layer = (
            nn.Sequential(
                nn.Conv1d(in_channels, out_channels, kernel_size, padding=kernel_size // 2)
            )
            if in_channels != out_channels
            else None
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, C_in, T] -> [B, C_out, T]``."""
        y = self.norm(self.conv(x).transpose(1, 2)).transpose(1, 2)
        res = x if self.residual_layer is None else self.residual_layer(x)
        return torch.relu(y + res)


class _TCNStack(nn.Module):
    def __init__(self, in_channels: int, hidden: int, n_layers: int, kernel_size: int):
        super().__init__()
        chans = [in_channels] + [hidden] * n_layers
        self.conv_layers = nn.ModuleList(
            TCNBlock(chans[i], chans[i + 1], kernel_size) for i in range(n_layers)
        )

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        for layer in self.conv_layers:
            if mask is not None:  # keep padding from leaking into valid frames
                x = x * mask[:, None, :]
            x = layer(x)
        return x


class _TCNWrapper(nn.Module):
    # Exists only so the parameter names match the released checkpoints (tcn.first_net.*).
    def __init__(self, in_channels: int, hidden: int, n_layers: int, kernel_size: int):
        super().__init__()
        self.first_net = _TCNStack(in_channels, hidden, n_layers, kernel_size)


class TCNDecoder(nn.Module):
    """The default motion decoder of UniTalker.

    Args:
        in_dim: encoder channels.
        n_identities: rows of the identity embedding (pivot included).
        hidden: decoder channels (256 in the released models).
        id_dim: identity embedding size (64).
        n_layers: residual blocks (3).
        kernel_size: temporal kernel (3).
        dropout: dropout on the decoder input (0.1).
    """

    def __init__(
        self,
        in_dim: int,
        n_identities: int,
        hidden: int = 256,
        id_dim: int = 64,
        n_layers: int = 3,
        kernel_size: int = 3,
        dropout: float = 0.1,
    ):
        super().__init__()
        self.hidden = hidden
        self.dropout = nn.Dropout(dropout)
        self.audio_feature_map = nn.Linear(in_dim, hidden)
        self.learnable_style_emb = nn.Embedding(n_identities, id_dim)
        self.tcn = _TCNWrapper(hidden + id_dim, hidden, n_layers, kernel_size)

    @property
    def n_identities(self) -> int:
        return self.learnable_style_emb.num_embeddings

    def forward(
        self, x: torch.Tensor, identity: torch.Tensor, mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Decode motion hidden states.

        Args:
            x: ``[B, T, C_enc]`` adapted audio features.
            identity: ``[B]`` identity indices.
            mask: ``[B, T]`` True on valid frames, or None.

        Returns:
            ``[B, T, H]``.
        """
        h = self.dropout(self.audio_feature_map(x))  # [B, T, H]; dropout as the original TCN input
        style = self.learnable_style_emb(identity)[:, None, :].expand(-1, h.shape[1], -1)
        y = torch.cat([h, style], dim=-1).transpose(1, 2)  # [B, H + id, T]
        m = None if mask is None else mask.to(y.dtype)
        return self.tcn.first_net(y, m).transpose(1, 2)


class PeriodicPositionalEncoding(nn.Module):
    """Sinusoidal encoding repeating every ``period`` frames (FaceFormer's PPE)."""

    def __init__(self, d_model: int, period: int = 30, max_len: int = 6000):
        super().__init__()
        pe = torch.zeros(period, d_model)
        pos = torch.arange(period, dtype=torch.float32)[:, None]
        div = torch.exp(
            torch.arange(0, d_model, 2, dtype=torch.float32) * (-math.log(10000.0) / d_model)
        )
        pe[:, 0::2] = torch.sin(pos * div)
        pe[:, 1::2] = torch.cos(pos * div)
        reps = max_len // period + 1
        self.register_buffer("pe", pe.repeat(reps, 1)[None], persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, T, D] -> [B, T, D]``."""
        if x.shape[1] > self.pe.shape[1]:
            raise ValueError(
                f"sequence of {x.shape[1]} frames exceeds the positional table ({self.pe.shape[1]})"
            )
        return x + self.pe[:, : x.shape[1]]


def alibi_causal_bias(
    n_heads: int, t: int, period: int, device: torch.device | None = None
) -> torch.Tensor:
    """FaceFormer's biased causal mask ``[n_heads, T, T]``: -inf above the diagonal, a
    per-head linear penalty growing every ``period`` frames into the past."""

    def slopes(n: int) -> list[float]:
        def pow2(n: int) -> list[float]:
            start = 2 ** (-(2 ** -(math.log2(n) - 3)))
            return [start * start**i for i in range(n)]

        if math.log2(n).is_integer():
            return pow2(n)
        closest = 2 ** math.floor(math.log2(n))
        return pow2(closest) + slopes(2 * closest)[0::2][: n - closest]

    s = torch.tensor(slopes(n_heads), device=device)
    i = torch.arange(t, device=device)
    dist = (i[:, None] - i[None, :]).clamp(min=0) // period  # [T, T]
    bias = -s[:, None, None] * dist[None].float()
    causal = torch.triu(torch.ones(t, t, dtype=torch.bool, device=device), diagonal=1)
    return bias.masked_fill(causal[None], float("-inf"))


class TransformerDecoder(nn.Module):
    """Non-autoregressive transformer motion decoder (the paper's alternative to TCN).

    As the original: the query is the identity embedding (``hidden``-dimensional) repeated
    over time with periodic positional encoding; the adapted audio is the memory, reached
    only through the alignment mask (frame t attends to audio frame t); self-attention uses
    FaceFormer's biased causal mask. One layer, 4 heads, feed-forward ``2 * hidden``.
    """

    def __init__(
        self,
        in_dim: int,
        n_identities: int,
        hidden: int = 256,
        n_layers: int = 1,
        n_heads: int = 4,
        ff_dim: int | None = None,
        period: int = 30,
        dropout: float = 0.1,
    ):
        super().__init__()
        self.hidden, self.n_heads, self.period = hidden, n_heads, period
        self.learnable_style_emb = nn.Embedding(n_identities, hidden)
        self.audio_feature_map = nn.Linear(in_dim, hidden)
        self.ppe = PeriodicPositionalEncoding(hidden, period)
        self.ppe_dropout = nn.Dropout(dropout)
        layer = nn.TransformerDecoderLayer(
            hidden, n_heads, ff_dim or 2 * hidden, dropout, batch_first=True
        )
        self.transformer_decoder = nn.TransformerDecoder(layer, n_layers)

    @property
    def n_identities(self) -> int:
        return self.learnable_style_emb.num_embeddings

    def forward(
        self, x: torch.Tensor, identity: torch.Tensor, mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """``x [B, T, C_enc]``, ``identity [B]``, ``mask [B, T]`` -> ``[B, T, H]``."""
        b, t, _ = x.shape
        memory = self.audio_feature_map(x)
        query = self.ppe_dropout(
            self.ppe(self.learnable_style_emb(identity)[:, None, :].expand(b, t, -1))
        )
        self_mask = alibi_causal_bias(self.n_heads, t, self.period, x.device).repeat(b, 1, 1)
        i = torch.arange(t, device=x.device)
        align = torch.zeros(t, t, device=x.device).masked_fill(i[:, None] != i[None, :], -math.inf)
        # No key-padding masks: padding sits after the valid frames, so the causal mask
        # already hides it from valid queries, and the alignment mask pairs each query with
        # its own frame (masking padded keys would leave padded rows with no key -> NaN).
        return self.transformer_decoder(query, memory, tgt_mask=self_mask, memory_mask=align)


DECODERS = {"tcn": TCNDecoder, "transformer": TransformerDecoder}

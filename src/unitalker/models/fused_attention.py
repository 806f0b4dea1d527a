"""WavLM self-attention with its gated relative-position bias fused into SDPA.

HF's ``WavLMAttention`` builds the gated bias ``[B*H, T, T]`` and then calls
``F.multi_head_attention_forward``, which projects q / k / v with three matmuls, adds the
bias to an explicitly materialised ``[B*H, T, T]`` score matrix, and runs softmax and the
value product as separate ops. Here q / k / v come from one packed projection and the
gated bias is passed as ``attn_mask`` to ``F.scaled_dot_product_attention``, whose fused
kernel does the score, the bias, the softmax and the value product in one pass (CPU:
flash-attention with an additive mask; CUDA: memory-efficient attention).

The math is HF's exactly: ``softmax(q k^T / sqrt(d) + gate * bias) v`` with
``gate = sig(a) * (sig(b) * c - 1) + 2`` per head and query frame, padded keys at -inf.
Parameters keep their HF names and shapes (the class is swapped in place), so checkpoints,
``state_dict`` and the original-layout loader are unaffected.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

_WavLMAttention = None


def _hf_class() -> type:
    global _WavLMAttention
    if _WavLMAttention is None:
        from transformers.models.wavlm.modeling_wavlm import WavLMAttention

        _WavLMAttention = WavLMAttention
    return _WavLMAttention


def gated_bias(
    attn: torch.nn.Module, hidden_states: torch.Tensor, position_bias: torch.Tensor
) -> torch.Tensor:
    """WavLM's gated relative-position bias ``[B, H, T, T]``.

    Args:
        attn: a WavLM attention module (its ``gru_rel_pos_*`` parameters are used).
        hidden_states: ``[B, T, C]`` the layer's input.
        position_bias: ``[B*H, T, T]`` (HF's layout) or ``[H, T, T]``.
    """
    b, t, _ = hidden_states.shape
    h = attn.num_heads
    g = hidden_states.view(b, t, h, -1).transpose(1, 2)  # [B, H, T, d]
    proj = attn.gru_rel_pos_linear(g).view(b, h, t, 2, 4).sum(-1)  # [B, H, T, 2]
    gate_a, gate_b = torch.sigmoid(proj).chunk(2, dim=-1)  # [B, H, T, 1] each
    gate = gate_a * (gate_b * attn.gru_rel_pos_const - 1.0) + 2.0
    pb = position_bias.view(-1, h, t, position_bias.shape[-1])  # [B or 1, H, T, T]
    return gate * pb


def fused_forward(
    attn: torch.nn.Module,
    hidden_states: torch.Tensor,
    attention_mask: torch.Tensor | None = None,
    position_bias: torch.Tensor | None = None,
    output_attentions: bool = False,
    index: int = 0,
) -> tuple[torch.Tensor, None, torch.Tensor]:
    """Drop-in for ``WavLMAttention.forward`` (same arguments and returns).

    ``hidden_states [B, T, C]`` -> ``(out [B, T, C], None, position_bias [B*H, T, T])``.
    Attention weights are never materialised, so ``output_attentions`` is not supported.
    """
    if output_attentions:
        raise NotImplementedError("fused WavLM attention does not return attention weights")
    b, t, c = hidden_states.shape
    h = attn.num_heads
    if position_bias is None:
        position_bias = attn.compute_bias(t, t).to(hidden_states.dtype)  # [H, T, T]
        position_bias = position_bias.unsqueeze(0).expand(b, -1, -1, -1).reshape(b * h, t, t)
    bias = gated_bias(attn, hidden_states, position_bias)  # [B, H, T, T]
    if attention_mask is not None:
        keep = attention_mask.ne(0)[:, None, None, :]  # [B, 1, 1, T]
        bias = bias.masked_fill(~keep, float("-inf"))
    w, bw = _packed_qkv(attn)
    qkv = F.linear(hidden_states, w, bw).view(b, t, 3, h, c // h).permute(2, 0, 3, 1, 4)
    out = F.scaled_dot_product_attention(
        qkv[0],
        qkv[1],
        qkv[2],
        attn_mask=bias.to(qkv.dtype),
        dropout_p=attn.dropout if attn.training else 0.0,
    )  # [B, H, T, d]
    out = attn.out_proj(out.transpose(1, 2).reshape(b, t, c))
    return out, None, position_bias


def _packed_qkv(attn: torch.nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
    """``[3C, C]`` weight and ``[3C]`` bias of q, k, v; cached while no gradient is
    recorded (inference), keyed on the six tensors' storage and version so that a changed
    weight is repacked."""
    ps = (
        attn.q_proj.weight,
        attn.k_proj.weight,
        attn.v_proj.weight,
        attn.q_proj.bias,
        attn.k_proj.bias,
        attn.v_proj.bias,
    )
    if torch.is_grad_enabled() or any(p.is_inference() for p in ps):
        # (inference tensors have no version counter to notice an in-place change)
        return torch.cat(ps[:3]), torch.cat(ps[3:])
    key = tuple((p.data_ptr(), p._version, p.dtype) for p in ps)
    cached = attn.__dict__.get("_unitalker_qkv")
    if cached is None or cached[0] != key:
        cached = (key, torch.cat(ps[:3]), torch.cat(ps[3:]))
        attn.__dict__["_unitalker_qkv"] = cached
    return cached[1], cached[2]


def fuse_wavlm_attention(model: torch.nn.Module) -> int:
    """Make every WavLM attention module in ``model`` use :func:`fused_forward`.

    The modules' class becomes a subclass of HF's ``WavLMAttention`` whose only change is
    ``forward``; weights and names stay. Returns how many modules were changed.
    """
    base = _hf_class()
    n = 0
    for mod in model.modules():
        if isinstance(mod, base) and not isinstance(mod, FusedWavLMAttention()):
            mod.__class__ = FusedWavLMAttention()
            n += 1
    return n


def unfuse_wavlm_attention(model: torch.nn.Module) -> int:
    """Undo :func:`fuse_wavlm_attention` (HF's reference attention again)."""
    n = 0
    for mod in model.modules():
        if isinstance(mod, FusedWavLMAttention()):
            mod.__class__ = _hf_class()
            n += 1
    return n


_FUSED: type | None = None


def FusedWavLMAttention() -> type:  # noqa: N802 - a lazily built class
    """The fused subclass of HF's ``WavLMAttention`` (built on first use: lazy transformers)."""
    global _FUSED
    if _FUSED is None:

        class _Fused(_hf_class()):  # type: ignore[misc, valid-type]
            forward = fused_forward

        _Fused.__name__ = _Fused.__qualname__ = "FusedWavLMAttention"
        _FUSED = _Fused
    return _FUSED

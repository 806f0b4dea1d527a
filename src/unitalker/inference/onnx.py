"""ONNX export of the whole one-pass model, and an onnxruntime runner with the model's contract.

The exported graph is :meth:`UniTalker.forward` itself, traced: it takes ``audio [1, S]``
(16 kHz, any length) and ``identity [1]`` (an index into the identity table) and returns
one output per exported head, ``<head> [1, T_head, D]`` at the head's frame rate. Traced,
the forward keeps its frame counts as graph values (computed from ``S`` exactly as
:func:`unitalker.audio.frame_count`) and interpolates with gathers
(:func:`unitalker.models.adaptor.interpolate_gather`), so a single graph serves every
clip length. Every encoder (HF and built-in) and decoder (TCN and transformer) exports.

:class:`OnnxUniTalker` has the attributes and ``__call__`` that
:func:`unitalker.inference.animate.animate` uses (``heads``, ``identity_index``,
``device``, ``model(audio, heads=, identity=, fps=)``), so long audio goes through the same
windows and cross-fade as the torch model.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from unitalker import conventions
from unitalker.audio import SAMPLE_RATE
from unitalker.models.unitalker import HeadOutput, UniTalker, resolve_identity

log = logging.getLogger(__name__)

OPSET = 17
META_KEY = "unitalker"


class OnnxExportError(ValueError):
    """The model cannot be exported (unsupported part) or the export failed."""


class _ExportedForward(nn.Module):
    """:meth:`UniTalker.forward` with the export's heads and rates, returning the heads'
    motions as a tuple (what tracing takes): ``audio [1, S]``, ``identity [1]`` int64 ->
    ``([1, T_h, D_h] for h in heads)``."""

    def __init__(self, model: UniTalker, heads: Sequence[str], fps: dict[str, float]):
        super().__init__()
        self.model = model
        self.heads = list(heads)
        self.fps = dict(fps)

    def forward(self, audio: torch.Tensor, identity: torch.Tensor) -> tuple[torch.Tensor, ...]:
        out = self.model(audio, heads=self.heads, identity=identity, fps=self.fps)
        return tuple(out[h].motion for h in self.heads)


def _graph_attention(
    attn: nn.MultiheadAttention,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    key_padding_mask: torch.Tensor | None = None,
    need_weights: bool = True,
    attn_mask: torch.Tensor | None = None,
    average_attn_weights: bool = True,
    is_causal: bool = False,
) -> tuple[torch.Tensor, None]:
    """``nn.MultiheadAttention.forward`` (batch first, packed projection) as the exporter
    needs it: ``query [B, T, E]``, ``key / value [B, S, E]`` -> ``([B, T, E], None)``.

    The TorchScript exporter freezes the query length of torch's own
    ``F.multi_head_attention_forward`` to the traced one (torch 2.13: its ``view`` takes a
    constant ``tgt_len``), so the graph breaks on any other length; here every time axis
    is ``-1``. Same math: packed q / k / v, the additive mask, SDPA, the output projection.
    """
    if key_padding_mask is not None or is_causal or not attn.batch_first:
        raise OnnxExportError("ONNX export: attention with a padding mask is not supported")
    e, h = attn.embed_dim, attn.num_heads
    w, b = attn.in_proj_weight.chunk(3), attn.in_proj_bias.chunk(3)

    def heads(x: torch.Tensor, i: int) -> torch.Tensor:  # [B, T, E] -> [B, H, T, E / H]
        return nn.functional.linear(x, w[i], b[i]).reshape(1, -1, h, e // h).transpose(1, 2)

    mask = attn_mask
    if mask is not None:
        if mask.dtype == torch.bool:
            mask = torch.zeros(mask.shape, dtype=query.dtype).masked_fill(mask, float("-inf"))
        if mask.dim() == 3:  # [B * H, T, S]
            mask = mask.reshape(-1, h, mask.shape[-2], mask.shape[-1])
    out = nn.functional.scaled_dot_product_attention(
        heads(query, 0), heads(key, 1), heads(value, 2), attn_mask=mask
    )  # [B, H, T, E / H]
    return attn.out_proj(out.transpose(1, 2).reshape(1, -1, e)), None


class _GraphAttention(nn.MultiheadAttention):
    forward = _graph_attention  # type: ignore[assignment]


@contextlib.contextmanager
def _exportable(model: nn.Module) -> Iterator[None]:
    """Within: torch attention in its exportable form (see :func:`_graph_attention`) and
    without the fused fast path of ``nn.TransformerEncoderLayer`` (no ONNX form); the
    built-in encoder and the transformer decoder use both."""
    swapped = [m for m in model.modules() if type(m) is nn.MultiheadAttention]
    fastpath = torch.backends.mha.get_fastpath_enabled()
    try:
        torch.backends.mha.set_fastpath_enabled(False)
        for m in swapped:
            m.__class__ = _GraphAttention
        yield
    finally:
        for m in swapped:
            m.__class__ = nn.MultiheadAttention
        torch.backends.mha.set_fastpath_enabled(fastpath)


def export_onnx(
    model: UniTalker,
    path: str | Path,
    heads: Sequence[str] | None = None,
    *,
    fps: dict[str, float] | None = None,
    opset: int = OPSET,
    example_seconds: float = 2.0,
    overwrite: bool = False,
) -> Path:
    """Export ``model`` (encoder, decoder and the chosen heads) to one ONNX file.

    Args:
        model: a UniTalker in eval mode (moved to CPU for the export).
        path: the ``.onnx`` file to write.
        heads: heads to include (default: all).
        fps: per-head output rates (default: each convention's).
        opset: ONNX opset.
        example_seconds: length of the example input used for tracing (any length works
            at run time).
        overwrite: replace an existing file.

    Returns:
        The path written. Model metadata (heads, fps, identities) is stored in the file.
    """
    import onnx

    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path}: exists (use --overwrite to replace it)")
    if path.exists() and path.is_dir():
        raise OnnxExportError(f"{path}: is a folder; give a .onnx file name")
    heads = list(heads) if heads is not None else list(model.heads)
    for h in heads:
        if h not in model.heads:
            raise KeyError(f"unknown head {h!r}; this model has: {', '.join(model.heads)}")
    rates = {h: float((fps or {}).get(h, conventions.get(h).fps)) for h in heads}
    model = model.to("cpu").eval()
    graph = _ExportedForward(model, heads, rates).eval()
    audio = torch.randn(1, int(example_seconds * SAMPLE_RATE))
    ident = torch.tensor([model.identity_index(None if model.config.pivot else 0)])
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.partial")
    dyn = {"audio": {1: "samples"}}
    dyn.update({h: {1: f"frames_{i}"} for i, h in enumerate(heads)})
    try:
        with torch.no_grad(), _exportable(model):
            torch.onnx.export(
                graph,
                (audio, ident),
                str(tmp),
                input_names=["audio", "identity"],
                output_names=heads,
                dynamic_axes=dyn,
                opset_version=opset,
                dynamo=False,
            )
        proto = onnx.load(str(tmp))
        meta = {
            "format": "unitalker-onnx",
            "version": 1,
            "heads": heads,
            "fps": rates,
            "identities": list(model.config.identities),
            "pivot": bool(model.config.pivot),
            "sample_rate": SAMPLE_RATE,
            "conventions": [conventions.get(h).to_dict() for h in heads],
        }
        entry = proto.metadata_props.add()
        entry.key, entry.value = META_KEY, json.dumps(meta)
        onnx.save(proto, str(tmp))
        tmp.replace(path)
    except Exception as e:
        tmp.unlink(missing_ok=True)
        if isinstance(e, (OnnxExportError, FileExistsError)):
            raise
        raise OnnxExportError(f"ONNX export failed: {type(e).__name__}: {e}") from e
    return path


class OnnxUniTalker:
    """Run an exported model with onnxruntime, with the contract of :class:`UniTalker`.

    Args:
        path: the ``.onnx`` file written by :func:`export_onnx`.
        providers: onnxruntime execution providers (default: CUDA if available, else CPU).
        threads: intra-op threads (default: onnxruntime's choice).
    """

    def __init__(
        self, path: str | Path, providers: Sequence[str] | None = None, threads: int | None = None
    ):
        import onnxruntime as ort

        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no such ONNX file")
        opts = ort.SessionOptions()
        # All graph rewrites (constant folding, node fusions such as GELU / LayerNorm /
        # attention patterns); measured no slower than the default on every path.
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if threads:
            opts.intra_op_num_threads = threads
        if providers is None:
            avail = ort.get_available_providers()
            providers = [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in avail]
        try:
            self.session = ort.InferenceSession(str(path), opts, providers=list(providers))
        except Exception as e:  # noqa: BLE001 - ort raises its own exception types
            raise OnnxExportError(f"{path}: cannot load as an ONNX model: {e}") from e
        raw = self.session.get_modelmeta().custom_metadata_map.get(META_KEY)
        if raw is None:
            raise OnnxExportError(f"{path}: not exported by unitalker (no '{META_KEY}' metadata)")
        self.meta: dict[str, Any] = json.loads(raw)
        conventions.ensure_registered(
            [conventions.Convention.from_dict(c) for c in self.meta.get("conventions", [])]
        )
        self.path = path
        self.identities: list[str] = list(self.meta["identities"])
        self.fps: dict[str, float] = {h: float(r) for h, r in self.meta["fps"].items()}

    @property
    def heads(self) -> list[str]:
        return list(self.meta["heads"])

    @property
    def device(self) -> torch.device:
        # Inputs are handed over as CPU numpy arrays; onnxruntime moves them itself.
        return torch.device("cpu")

    def identity_index(self, identity: int | str | None) -> int:
        """Resolve ``None`` / ``"pivot"`` / an index / a name, as :meth:`UniTalker.identity_index`."""
        return resolve_identity(identity, self.identities, bool(self.meta.get("pivot", True)))

    def __call__(
        self,
        audio: torch.Tensor,
        heads: Sequence[str] | None = None,
        identity: int | torch.Tensor | None = None,
        fps: dict[str, float] | None = None,
        **unsupported: Any,
    ) -> dict[str, HeadOutput]:
        """``audio [1, S]`` -> ``{head: HeadOutput(motion [1, T, D])}`` (torch tensors)."""
        if any(v is not None for v in unsupported.values()):
            raise ValueError(
                f"the ONNX runner does not support {sorted(unsupported)} (batch of one, fixed templates)"
            )
        heads = list(heads) if heads is not None else self.heads
        for h in heads:
            if h not in self.fps:
                raise KeyError(f"unknown head {h!r}; this ONNX model has: {', '.join(self.heads)}")
            want = (fps or {}).get(h)
            if want is not None and abs(float(want) - self.fps[h]) > 1e-6:
                raise ValueError(
                    f"head {h} was exported at {self.fps[h]:g} fps; re-export with that rate for {want:g}"
                )
        a = (
            audio.detach().to("cpu", torch.float32).numpy()
            if isinstance(audio, torch.Tensor)
            else np.asarray(audio, np.float32)
        )
        if a.ndim != 2 or a.shape[0] != 1:
            raise ValueError(f"the ONNX runner takes audio [1, S], got {tuple(a.shape)}")
        idx = (
            int(identity.reshape(-1)[0])
            if isinstance(identity, torch.Tensor)
            else self.identity_index(identity)
        )
        outs = self.session.run(heads, {"audio": a, "identity": np.array([idx], dtype=np.int64)})
        return {
            h: HeadOutput(torch.from_numpy(o), None, [o.shape[1]], self.fps[h])
            for h, o in zip(heads, outs, strict=True)
        }

    forward = __call__

    def animate(
        self,
        audio: Any,
        sr: int | None = None,
        heads: Sequence[str] | None = None,
        identity: Any = None,
        **kwargs: Any,
    ) -> dict:
        """Same as :meth:`UniTalker.animate` (windowed, cross-faded)."""
        from unitalker.inference.animate import animate

        return animate(self, audio, sr=sr, heads=heads, identity=identity, **kwargs)

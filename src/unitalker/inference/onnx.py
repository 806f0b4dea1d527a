"""ONNX export of the whole one-pass model, and an onnxruntime runner with the model's contract.

The exported graph takes ``audio [1, S]`` (16 kHz, any length) and ``identity [1]`` (an
index into the identity table) and returns one output per exported head,
``<head> [1, T_head, D]`` at the head's frame rate. Frame counts are computed inside
the graph from ``S`` exactly as :func:`unitalker.audio.frame_count` does
(``max(1, round(S / 16000 * fps))`` in float64, ties to even like Python's ``round``), and
the frequency adaptor is a gather-based linear interpolation equal to
``F.interpolate(mode="linear", align_corners=True)``, so a single graph serves every
clip length.

:class:`OnnxUniTalker` has the attributes and ``__call__`` that
:func:`unitalker.inference.animate.animate` uses (``heads``, ``identity_index``,
``device``, ``model(audio, heads=, identity=, fps=)``), so long audio goes through the same
windows and cross-fade as the torch model.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from unitalker import conventions
from unitalker.audio import SAMPLE_RATE
from unitalker.models.config import PIVOT
from unitalker.models.encoders import HFAudioEncoder
from unitalker.models.unitalker import HeadOutput, UniTalker, resolve_identity

log = logging.getLogger(__name__)

OPSET = 17
META_KEY = "unitalker"


class OnnxExportError(ValueError):
    """The model cannot be exported (unsupported part) or the export failed."""


def _graph_interpolate(x: torch.Tensor, n_out: torch.Tensor) -> torch.Tensor:
    """``[1, T, C] -> [1, n_out, C]`` linear, aligned corners; ``n_out`` a 0-d int64 tensor.

    Written with gathers so the output length stays a graph value (F.interpolate's ``size``
    would be frozen to the traced length).
    """
    t_in = torch._shape_as_tensor(x)[1].to(torch.float64)
    steps = torch.arange(n_out, dtype=torch.float64)  # type: ignore[call-overload]
    denom = torch.clamp(n_out.to(torch.float64) - 1.0, min=1.0)
    pos = steps * (t_in - 1.0) / denom  # [n_out]
    i0 = torch.floor(pos)
    w = (pos - i0).to(x.dtype)[None, :, None]
    i0 = i0.to(torch.int64)
    i1 = torch.minimum(i0 + 1, (t_in - 1.0).to(torch.int64))
    return x[:, i0] * (1.0 - w) + x[:, i1] * w


class _OnnxGraph(nn.Module):
    """The traced function: audio + identity -> one tensor per head (batch of one, no padding)."""

    def __init__(self, model: UniTalker, heads: Sequence[str], fps: dict[str, float]):
        super().__init__()
        self.model = model
        self.heads = list(heads)
        self.fps = dict(fps)

    def _frames(self, audio: torch.Tensor, fps: float) -> torch.Tensor:
        s = torch._shape_as_tensor(audio)[1].to(torch.float64)
        # Same expression and order as audio.frame_count: n / sr * fps, round half to even.
        return torch.clamp(torch.round(s / float(SAMPLE_RATE) * fps), min=1.0).to(torch.int64)

    def forward(self, audio: torch.Tensor, identity: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """``audio [1, S]``, ``identity [1]`` int64 -> ``([1, T_h, D_h] for h in heads)``."""
        m = self.model
        enc = m.audio_encoder
        x = audio
        if getattr(enc, "do_normalize", False) or not isinstance(enc, HFAudioEncoder):
            # _masked_standardize for a single unpadded item.
            mean = x.mean(dim=1, keepdim=True)
            var = ((x - mean) ** 2).mean(dim=1, keepdim=True)
            x = (x - mean) / torch.sqrt(var + 1e-7)
        feats = enc.extract(x)  # [1, T50, F]
        pos = m.config.adaptor_position
        counts = {h: self._frames(audio, self.fps[h]) for h in self.heads}
        # Heads of the same rate share the decoder output (as in UniTalker.forward).
        by_rate: dict[float, list[str]] = {}
        for h in self.heads:
            by_rate.setdefault(self.fps[h], []).append(h)
        hidden: dict[float, torch.Tensor] = {}
        if pos == 0:
            for r, names in by_rate.items():
                f = _graph_interpolate(feats, counts[names[0]])
                hidden[r] = m.decoder(enc.contextualize(f, None), identity, None)
        else:
            ctx = enc.contextualize(feats, None)
            if pos == 1:
                for r, names in by_rate.items():
                    hidden[r] = m.decoder(_graph_interpolate(ctx, counts[names[0]]), identity, None)
            else:
                d50 = m.decoder(ctx, identity, None)
                for r, names in by_rate.items():
                    hidden[r] = _graph_interpolate(d50, counts[names[0]])
        outs = []
        for h in self.heads:
            raw = m.out_head_dict[h](hidden[self.fps[h]])
            if h in m.pca_layer_dict:
                raw = m.pca_layer_dict[h].decode(raw)
            outs.append(raw + m.template(h)[None, None, :])
        return tuple(outs)


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
    if not isinstance(model.audio_encoder, HFAudioEncoder):
        raise OnnxExportError(
            "ONNX export supports the HF encoders (wavlm, wav2vec2, hubert); "
            "the built-in encoder's STFT has no traceable ONNX form here"
        )
    if model.config.decoder.kind != "tcn":
        raise OnnxExportError("ONNX export supports the TCN decoder only")
    rates = {h: float((fps or {}).get(h, conventions.get(h).fps)) for h in heads}
    model = model.to("cpu").eval()
    graph = _OnnxGraph(model, heads, rates).eval()
    audio = torch.randn(1, int(example_seconds * SAMPLE_RATE))
    ident = torch.tensor([model.identity_index(None if model.config.pivot else 0)])
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.partial")
    dyn = {"audio": {1: "samples"}}
    dyn.update({h: {1: f"frames_{i}"} for i, h in enumerate(heads)})
    try:
        with torch.no_grad():
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
        n = len(self.identities)
        if identity is None or identity == PIVOT:
            if not self.meta.get("pivot", True):
                raise ValueError(
                    "this model was trained without a pivot identity; name an identity"
                )
            return n - 1
        return resolve_identity(identity, self.identities)

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

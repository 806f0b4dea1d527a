"""unitalker: audio-driven 3D facial animation in every annotation convention (UniTalker).

The public face, in the spirit of whisper::

    import unitalker
    model = unitalker.load_model()            # the bundled default model
    result = model.animate("speech.wav")      # {convention: Animation}

Heavy modules (torch, transformers, renderers) are imported on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

__all__ = ["__version__", "available_models", "load_model", "animate"]

if TYPE_CHECKING:  # pragma: no cover
    from unitalker.models.unitalker import UniTalker


def load_model(name_or_path: str | None = None, device: Any = None, **hub_kwargs: Any) -> UniTalker:
    """Load a model by name (see :func:`available_models`), checkpoint folder or file, or
    Hugging Face Hub repo id.

    Args:
        name_or_path: None for the bundled default; a registered name; a folder in our
            format (``unitalker.json`` + ``model.safetensors``, or the old ``config.json``),
            a ``.safetensors`` file, or a repo id ``owner/name`` (fetched into the HF cache).
        device: torch device (default: CUDA if available, else CPU).
        **hub_kwargs: ``revision``, ``cache_dir``, ``local_files_only``... for a repo id.
    """
    from unitalker.models.checkpoint import load_model as _load

    return _load(name_or_path, device=device, **hub_kwargs)


def available_models() -> list[str]:
    """Names that :func:`load_model` accepts besides paths."""
    from unitalker.models.checkpoint import available_models as _available

    return _available()


def animate(audio: Any, model: UniTalker | None = None, **kwargs: Any) -> dict:
    """Animate audio (a path or a waveform) with ``model`` (default model if None)."""
    model = model if model is not None else load_model()
    return model.animate(audio, **kwargs)

"""Checkpoints: our self-describing format, and the original release's ``.pt`` files.

Our format is a folder with ``model.safetensors`` (weights, PCA and template buffers)
and ``unitalker.json`` (format name and version, the :class:`ModelConfig`, the head
conventions, and training metadata), plus a ``README.md`` model card when written by
:func:`save_pretrained`. The JSON is also embedded in the safetensors header, so a lone
``.safetensors`` file loads too. Nothing is unpickled.

Up to unitalker 0.1 the JSON was named ``config.json``; such folders (the bundled model
among them) still load. It was renamed because ``config.json`` is where Hugging Face tools
(``transformers.AutoConfig``, the Hub's library detection) expect *their* config.

Models on the Hugging Face Hub: :func:`load_model` / ``UniTalker.from_pretrained`` accept a
repo id (``owner/name``) of a folder in this layout and fetch it through huggingface_hub's
cache (``HF_HOME`` / ``HF_HUB_CACHE``; ``HF_HUB_OFFLINE=1`` reads only the cache), as
``PyTorchModelHubMixin`` models do. We follow the mixin's conventions (method names and
arguments, ``model.safetensors``, a model card with ``library_name: unitalker``) without
subclassing it: the mixin records a dataclass ``config`` argument and writes it as
``config.json``, the very file that HF tools would misread.

Original checkpoints (``UniTalker-{B,L}-D0-D7.pt``) are plain state dicts; they are read
with ``torch.load(weights_only=True)`` and completed with the data release's ``pca.npz``
and ``id_template.npy`` and the encoder's architecture (:func:`load_original`).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import re
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from unitalker import conventions
from unitalker.config import ConfigError, from_dict, to_dict
from unitalker.models.config import PIVOT, DecoderConfig, EncoderConfig, HeadConfig, ModelConfig
from unitalker.models.encoders import HFAudioEncoder, encoder_family_for
from unitalker.models.heads import PCALayer
from unitalker.models.unitalker import UniTalker

log = logging.getLogger(__name__)

FORMAT = "unitalker"
FORMAT_VERSION = 1
WEIGHTS = "model.safetensors"
CONFIG = "unitalker.json"
LEGACY_CONFIG = "config.json"  # the name up to unitalker 0.1, still read
MODEL_CARD = "README.md"
HUB_FILES = (WEIGHTS, CONFIG, LEGACY_CONFIG, MODEL_CARD)  # what a hub snapshot fetches
LIBRARY_NAME = "unitalker"  # the model card's library_name (how the Hub lists us)
_HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9_.-]+$")
MODELS_DIR = Path(__file__).resolve().parent.parent / "assets" / "models"
DEFAULT_MODEL = "default"


class CheckpointError(ValueError):
    """A checkpoint that cannot be read; the message names the file and the problem."""


# --------------------------------------------------------------------------------------
# Our format


def model_config_from_dict(d: dict[str, Any]) -> ModelConfig:
    return from_dict(ModelConfig, d)


def save_model(
    model: UniTalker,
    path: str | Path,
    *,
    extra: dict[str, Any] | None = None,
    overwrite: bool = True,
) -> Path:
    """Write ``path/model.safetensors`` + ``path/unitalker.json`` atomically.

    A ``config.json`` of ours in the folder (the old layout) is removed, so the folder
    holds one config; any other file is left alone.

    Args:
        model: the model.
        path: output folder (created).
        extra: JSON-able metadata stored under ``"extra"`` (training config, metrics...).
        overwrite: replace an existing checkpoint folder's two files.
    """
    from safetensors.torch import save_file

    out = Path(path)
    if out.exists() and not out.is_dir():
        raise CheckpointError(f"{out}: exists and is not a folder")
    if not overwrite and (out / WEIGHTS).exists():
        raise CheckpointError(f"{out}: a checkpoint is already there (use overwrite)")
    out.mkdir(parents=True, exist_ok=True)
    meta = checkpoint_metadata(model, extra)
    state = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    # Write next to the target, then rename: a crash never leaves a half-written checkpoint.
    with tempfile.TemporaryDirectory(dir=out, prefix=".tmp-") as tmp:
        save_file(
            state, os.path.join(tmp, WEIGHTS), metadata={"unitalker_config": json.dumps(meta)}
        )
        Path(tmp, CONFIG).write_text(json.dumps(meta, indent=2))
        os.replace(os.path.join(tmp, WEIGHTS), out / WEIGHTS)
        os.replace(os.path.join(tmp, CONFIG), out / CONFIG)
    legacy = out / LEGACY_CONFIG
    if _is_ours(legacy):
        log.info("%s: removing the old-layout %s (now %s)", out, LEGACY_CONFIG, CONFIG)
        legacy.unlink()
    return out


def _is_ours(cfg_file: Path) -> bool:
    try:
        return json.loads(cfg_file.read_text()).get("format") == FORMAT
    except (OSError, ValueError, AttributeError):
        return False


def config_file(folder: str | Path) -> Path | None:
    """The checkpoint config in ``folder``: ``unitalker.json``, else an old-layout
    ``config.json`` of ours (a Hugging Face ``config.json`` does not count); None if neither."""
    folder = Path(folder)
    if (folder / CONFIG).is_file():
        return folder / CONFIG
    if _is_ours(folder / LEGACY_CONFIG):
        return folder / LEGACY_CONFIG
    return None


def read_checkpoint_config(folder: str | Path) -> dict[str, Any]:
    """The JSON config of a checkpoint folder, either layout."""
    f = config_file(folder)
    if f is None:
        raise CheckpointError(f"{folder}: no {CONFIG} (or old-layout {LEGACY_CONFIG}) here")
    try:
        return json.loads(f.read_text())
    except json.JSONDecodeError as e:
        raise CheckpointError(f"{f}: not valid JSON: {e}") from e


def save_pretrained(
    model: UniTalker,
    save_directory: str | Path,
    *,
    extra: dict[str, Any] | None = None,
    model_card: bool = True,
) -> Path:
    """Write a hub-style model folder: the checkpoint plus a ``README.md`` model card.

    Upload it with ``huggingface-cli upload OWNER/NAME FOLDER`` (or ``HfApi.upload_folder``);
    it then loads by name: ``UniTalker.from_pretrained("OWNER/NAME")``.

    Args:
        model: the model.
        save_directory: output folder (created; its checkpoint files are replaced).
        extra: metadata stored under ``"extra"`` (default: the model's own, as loaded).
        model_card: write ``README.md`` unless one is there already (it is never replaced).
    """
    if extra is None:
        extra = model.meta.get("extra")
    out = save_model(model, save_directory, extra=extra)
    card = out / MODEL_CARD
    if model_card and not card.exists():
        card.write_text(model_card_text(model, out.name), encoding="utf-8")
    return out


def model_card_text(model: UniTalker, name: str) -> str:
    """A Hub model card (YAML metadata + Markdown) describing the model's heads."""
    rows = []
    for h in model.heads:
        c = conventions.get(h)
        rows.append(f"| `{h}` | {c.kind} | {c.dim} | {c.fps:g} |")
    n_params = sum(p.numel() for p in model.parameters())
    enc = model.config.encoder
    return "\n".join(
        [
            "---",
            f"library_name: {LIBRARY_NAME}",
            "tags:",
            *(f"- {t}" for t in ("unitalker", "audio-to-face", "facial-animation", "arkit")),
            "---",
            "",
            f"# {name}",
            "",
            f"A [UniTalker](https://github.com/X-niper/UniTalker) (Fan et al., ECCV 2024) model in the `unitalker` format "
            f"(version {FORMAT_VERSION}): speech in, facial motion out in every convention "
            f"below, from one network ({n_params / 1e6:.1f} M parameters, "
            f"{enc.family} encoder, {model.config.decoder.kind} decoder).",
            "",
            "| head | kind | channels | fps |",
            "| --- | --- | ---: | ---: |",
            *rows,
            "",
            "## Use",
            "",
            "```bash",
            "pip install unitalker",
            "unitalker animate speech.wav -m OWNER/NAME -o out/ --format all",
            "```",
            "",
            "```python",
            "from unitalker.models.unitalker import UniTalker",
            "",
            'model = UniTalker.from_pretrained("OWNER/NAME")',
            'result = model.animate("speech.wav")  # {convention: Animation}',
            "```",
            "",
            f"Files: `{WEIGHTS}` (weights, PCA bases and templates) and `{CONFIG}` (the model "
            "config and the conventions of its heads).",
            "",
        ]
    )


def checkpoint_metadata(model: UniTalker, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    cfg = model.config
    # Record the encoder's full architecture so loading never needs the hub.
    enc_cfg = to_dict(cfg.encoder) | model.audio_encoder.config_dict()
    enc_cfg = {k: v for k, v in enc_cfg.items() if k in to_dict(EncoderConfig())}
    model_dict = to_dict(cfg) | {"encoder": enc_cfg}
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "model": model_dict,
        "conventions": [conventions.get(h).to_dict() for h in cfg.head_names],
        # loading copies "extra" into meta; it is stored once, below
        "meta": {k: v for k, v in model.meta.items() if k != "extra"},
        "extra": extra or {},
    }


def available_models() -> list[str]:
    """Names of the models shipped inside the package."""
    if not MODELS_DIR.exists():
        return []
    return sorted(p.name for p in MODELS_DIR.iterdir() if (p / WEIGHTS).exists())


def resolve_model_path(
    name_or_path: str | Path | None,
    *,
    revision: str | None = None,
    cache_dir: str | Path | None = None,
    force_download: bool = False,
    local_files_only: bool = False,
    token: str | bool | None = None,
) -> Path:
    """A bundled name, a path or a hub repo id -> the checkpoint file/folder.

    Tried in that order: a bundled model, an existing local path, a Hugging Face Hub repo
    id (``owner/name``) fetched into (or, offline, read from) the huggingface_hub cache.
    The keyword arguments are those of ``huggingface_hub.snapshot_download``.
    """
    name = DEFAULT_MODEL if name_or_path is None else str(name_or_path)
    if (MODELS_DIR / name / WEIGHTS).exists():
        return MODELS_DIR / name
    p = Path(name).expanduser()
    if p.exists():
        return p
    if name_or_path is None:
        raise CheckpointError(
            f"the bundled default model is missing ({MODELS_DIR / name}); reinstall unitalker or pass -m MODEL"
        )
    if _HUB_ID.match(name):
        return hub_snapshot(
            name,
            revision=revision,
            cache_dir=cache_dir,
            force_download=force_download,
            local_files_only=local_files_only,
            token=token,
        )
    raise CheckpointError(
        f"model {name!r} is neither a bundled model ({', '.join(available_models()) or 'none'}), "
        "an existing path, nor a hub repo id (OWNER/NAME)"
    )


def hub_snapshot(
    repo_id: str,
    *,
    revision: str | None = None,
    cache_dir: str | Path | None = None,
    force_download: bool = False,
    local_files_only: bool = False,
    token: str | bool | None = None,
) -> Path:
    """The local folder of a hub model (only our files are fetched), through the HF cache.

    Raises:
        CheckpointError: not on the hub, not cached while offline, or not a unitalker model.
    """
    try:
        from huggingface_hub import snapshot_download
    except ImportError as e:  # pragma: no cover - a dependency of transformers
        raise CheckpointError(f"loading {repo_id!r} from the hub needs huggingface_hub: {e}") from e
    try:
        folder = Path(
            snapshot_download(
                repo_id,
                revision=revision,
                cache_dir=None if cache_dir is None else str(cache_dir),
                allow_patterns=list(HUB_FILES),
                force_download=force_download,
                local_files_only=local_files_only,
                token=token,
            )
        )
    except Exception as e:  # noqa: BLE001 - offline, missing, gated, bad id, network...
        raise CheckpointError(
            f"model {repo_id!r} is not a bundled model or a local path, and could not be "
            f"fetched from the Hugging Face Hub ({type(e).__name__}: {e})"
        ) from e
    if not (folder / WEIGHTS).exists():
        raise CheckpointError(f"hub model {repo_id!r} has no {WEIGHTS}: not a unitalker model")
    log.info("hub model %s -> %s", repo_id, folder)
    return folder


def load_model(
    name_or_path: str | Path | None = None,
    device: Any = None,
    **hub_kwargs: Any,
) -> UniTalker:
    """Load our format (folder, ``.safetensors`` or hub repo id), either config layout.

    Args:
        name_or_path: bundled name (None = default), folder, ``.safetensors`` or a Hugging
            Face Hub repo id (``owner/name``, cached by huggingface_hub).
        device: torch device; default CUDA when available, else CPU.
        **hub_kwargs: ``revision``, ``cache_dir``, ``force_download``, ``local_files_only``,
            ``token`` for a hub repo id (see :func:`resolve_model_path`).
    """
    from unitalker.device import resolve_device

    device = resolve_device(device)  # before any reading: a bad --device fails at once
    path = resolve_model_path(name_or_path, **hub_kwargs)
    if path.is_file() and path.suffix in (".pt", ".pth", ".bin", ".pkl", ".ckpt"):
        # Say "original-release checkpoint" only when it is one (read weights-only, mmap).
        try:
            read_original_state(path)
        except CheckpointError as e:
            raise CheckpointError(
                f"{path}: not a unitalker checkpoint (a folder or .safetensors file) and not an "
                f"original UniTalker release checkpoint either: {str(e).removeprefix(f'{path}: ')}"
            ) from None
        raise CheckpointError(
            f"{path}: an original-release checkpoint; convert it first: "
            f"unitalker convert-checkpoint {path} --data-root DATA --encoder ENCODER -o OUT/"
        )
    model = _load_ours(path)
    return model.to(device).eval()


def _load_ours(path: Path) -> UniTalker:
    from safetensors import SafetensorError, safe_open

    weights = path / WEIGHTS if path.is_dir() else path
    if not weights.exists():
        raise CheckpointError(f"{path}: no {WEIGHTS} in this folder")
    if weights.stat().st_size < 16:
        raise CheckpointError(f"{weights}: file is empty or truncated")
    try:
        with safe_open(str(weights), framework="pt") as f:
            header_meta = f.metadata() or {}
            state = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 - safe_open has no items()
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        raise CheckpointError(
            f"{weights}: not a readable safetensors file (corrupt or truncated?): {e}"
        ) from e
    cfg_file = config_file(weights.parent) if path.is_dir() else None
    if path.is_dir() and cfg_file is None and (path / LEGACY_CONFIG).exists():
        # e.g. a transformers model folder: say so rather than "format=None"
        raise CheckpointError(
            f"{path / LEGACY_CONFIG}: not a unitalker config (a Hugging Face model folder?)"
        )
    use_file = cfg_file is not None
    where = cfg_file if cfg_file is not None else weights
    try:
        text = cfg_file.read_text(encoding="utf-8") if use_file else header_meta["unitalker_config"]
        if len(text) > MAX_CONFIG_CHARS:
            raise CheckpointError(f"{where}: config of {len(text)} characters is too large")
        meta = json.loads(text)
    except (KeyError, ValueError, RecursionError, OSError) as e:  # JSON / UTF-8 / read errors
        raise CheckpointError(
            f"{path}: no valid unitalker config ({CONFIG} or safetensors metadata): "
            f"{type(e).__name__}: {e}"
        ) from None
    config = _check_meta(meta, where, path)
    try:
        # Build on the meta device first: a config whose sizes disagree with the weights
        # (or are absurd) fails here without allocating anything.
        with torch.device("meta"), _SkipInitOnMeta():
            skeleton = UniTalker(config)
    except (ValueError, KeyError, TypeError, RuntimeError, OverflowError) as e:
        raise CheckpointError(f"{where}: cannot build the model its config describes: {e}") from e
    state = remap_weight_norm(state, skeleton.state_dict().keys())
    check_shapes(
        state, skeleton.state_dict(), weights, cfg_file.name if use_file else "its metadata"
    )
    del skeleton
    model = UniTalker(config)
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise CheckpointError(
            f"{path}: weights do not match the config (missing {missing[:5]}, unexpected {unexpected[:5]})"
        )
    model.meta = dict(meta.get("meta", {}))
    model.meta["extra"] = meta.get("extra", {})
    return model


MAX_CONFIG_CHARS = 16 * 1024**2

# Functions that only fill values in place (torch.nn.init's and the Tensor methods they use).
_INIT_FUNCTIONS = frozenset(
    {
        "uniform_",
        "normal_",
        "trunc_normal_",
        "constant_",
        "ones_",
        "zeros_",
        "eye_",
        "dirac_",
        "xavier_uniform_",
        "xavier_normal_",
        "kaiming_uniform_",
        "kaiming_normal_",
        "orthogonal_",
        "sparse_",
        "fill_",
        "zero_",
    }
)


class _SkipInitOnMeta(torch.overrides.TorchFunctionMode):
    """Skips the value initialisation of meta tensors while the shape-check skeleton is built.

    A meta tensor has no values to fill, but torch runs its random-init kernels for meta
    tensors in Python, and the first of them imports torch._dynamo and sympy: about 1 s of
    every process that loads a model. Only functions that fill values in place are skipped,
    so every shape is made exactly as in the real build.
    """

    def __torch_function__(self, func, types, args=(), kwargs=None):  # noqa: ANN001, ANN204
        kwargs = kwargs or {}
        first = args[0] if args else kwargs.get("tensor")
        if (
            isinstance(first, torch.Tensor)
            and first.is_meta
            and getattr(func, "__name__", None) in _INIT_FUNCTIONS
        ):
            return first
        return func(*args, **kwargs)


def _check_meta(meta: Any, where: Path, path: Path) -> ModelConfig:
    """Validate a checkpoint's JSON description and return its model config."""
    if not isinstance(meta, dict):
        raise CheckpointError(f"{where}: the config is not a JSON object")
    if meta.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a unitalker checkpoint (format={meta.get('format')!r})")
    version = meta.get("format_version", 0)
    if isinstance(version, bool) or not isinstance(version, int):
        raise CheckpointError(f"{where}: format_version must be an integer, got {version!r}")
    if version > FORMAT_VERSION:
        raise CheckpointError(
            f"{path}: format version {version} is newer than this unitalker ({FORMAT_VERSION}); upgrade"
        )
    for key, kind in (("conventions", list), ("meta", dict), ("extra", dict), ("model", dict)):
        if key in meta and not isinstance(meta[key], kind):
            raise CheckpointError(f"{where}: {key} must be a JSON {kind.__name__}")
    if "model" not in meta:
        raise CheckpointError(f"{where}: invalid model config: no 'model' section")
    try:
        convs = []
        for c in meta.get("conventions", []):
            if not isinstance(c, dict):
                raise ValueError(f"a convention must be an object, got {c!r}")
            convs.append(conventions.Convention.from_dict(c))
        conventions.ensure_registered(convs, source=str(path))
    except (ValueError, TypeError, KeyError, AttributeError, OverflowError) as e:
        raise CheckpointError(f"{where}: invalid conventions: {e}") from None
    try:
        return model_config_from_dict(meta["model"])
    except (ConfigError, KeyError, TypeError) as e:
        raise CheckpointError(f"{path}: invalid model config: {e}") from e


def check_shapes(
    state: dict[str, torch.Tensor], expected: dict[str, torch.Tensor], source: Path, config: str
) -> None:
    """Raise CheckpointError at the first tensor whose shape differs from the model's.

    ``load_state_dict`` would raise a bare ``RuntimeError: size mismatch`` listing every
    tensor; a user needs the file and the first tensor to see which side is wrong.
    """
    for k, want in expected.items():
        got = state.get(k)
        if got is not None and tuple(got.shape) != tuple(want.shape):
            raise CheckpointError(
                f"{source}: the weights do not match the config in {config}: tensor {k} has "
                f"shape {list(got.shape)}, the config builds {list(want.shape)} "
                "(config and weights of different models?)"
            )


# --------------------------------------------------------------------------------------
# transformers renamed the positional conv's weight norm (weight_g / weight_v, saved by
# 4.39) to parametrizations (original0 / original1). Map whichever way the model needs.

_OLD_NEW = (
    (".weight_g", ".parametrizations.weight.original0"),
    (".weight_v", ".parametrizations.weight.original1"),
)


def remap_weight_norm(state: dict[str, torch.Tensor], expected: Any) -> dict[str, torch.Tensor]:
    expected = set(expected)
    out = {}
    for k, v in state.items():
        if k not in expected:
            for old, new in _OLD_NEW:
                if k.endswith(old) and k[: -len(old)] + new in expected:
                    k = k[: -len(old)] + new
                    break
                if k.endswith(new) and k[: -len(new)] + old in expected:
                    k = k[: -len(new)] + old
                    break
        out[k] = v
    return out


# --------------------------------------------------------------------------------------
# The original release


def read_original_state(path: str | Path) -> dict[str, torch.Tensor]:
    """Read an original ``.pt`` state dict without executing pickled code."""
    p = Path(path)
    if not p.exists():
        raise CheckpointError(f"{p}: no such file")
    try:
        try:
            state = torch.load(str(p), map_location="cpu", weights_only=True, mmap=True)
        except RuntimeError as e:
            if "mmap" not in str(e):
                raise
            # the legacy (non-zip) format cannot be memory-mapped
            state = torch.load(str(p), map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - torch raises many types for bad files
        # torch's message may advise weights_only=False, which runs any code in the file:
        # never pass that on.
        detail = str(e).splitlines()[0] if str(e) else type(e).__name__
        if "weights_only" in str(e):
            detail = "it holds objects other than tensors (not a plain state dict)"
        raise CheckpointError(
            f"{p}: cannot read as a weights-only torch checkpoint (corrupt, truncated or not a "
            f"state dict): {detail}"
        ) from None
    for key in ("state_dict", "model"):
        if isinstance(state, dict) and key in state and isinstance(state[key], dict):
            state = state[key]
    if not isinstance(state, dict) or "decoder.learnable_style_emb.weight" not in state:
        raise CheckpointError(
            f"{p}: not a UniTalker state dict (no decoder.learnable_style_emb.weight)"
        )
    return state


def _head_dims(state: dict[str, torch.Tensor]) -> dict[str, tuple[int, int]]:
    """head -> (output size, layers): ``out_head_dict.<h>.weight`` for a linear head,
    ``out_head_dict.<h>.head_layer.<2i>.weight`` for the original's deeper ``OutHead``."""
    layers: dict[str, dict[int, int]] = {}
    for k, v in state.items():
        m = re.fullmatch(r"out_head_dict\.([^.]+)\.(?:head_layer\.(\d+)\.)?weight", k)
        if m:
            layers.setdefault(m.group(1), {})[int(m.group(2) or 0)] = int(v.shape[0])
    return {h: (d[max(d)], max(d) // 2 + 1) for h, d in layers.items()}


def _datasets_of(convention: str) -> list[conventions.DatasetInfo]:
    return [d for d in conventions.datasets() if d.convention == convention]


def load_original(
    path: str | Path,
    data_root: str | Path | None = None,
    encoder: str = "microsoft/wavlm-base-plus",
    *,
    encoder_family: str | None = None,
) -> UniTalker:
    """Build a :class:`UniTalker` from an original checkpoint and data release.

    Args:
        path: ``UniTalker-B-D0-D7.pt`` / ``UniTalker-L-D0-D7.pt`` (or any state dict of
            that layout).
        data_root: the ``unitalker_data_release_V1`` folder: ``<dataset>/pca.npz`` for PCA
            heads and ``<dataset>/id_template.npy`` for the demo templates.
        encoder: hub id or local folder of the encoder the checkpoint was trained on (only
            its architecture and feature-extractor settings are read).
        encoder_family: ``wavlm`` | ``wav2vec2`` | ``hubert`` when it cannot be inferred.

    Returns:
        The model in eval mode, with the original demo's defaults: pivot identity, the
        demo's template subject per dataset times its scale, 25 fps for BIWI, 30 otherwise.
    """
    state = read_original_state(path)
    root = Path(data_root) if data_root is not None else None
    dims = _head_dims(state)
    if not dims:
        raise CheckpointError(f"{path}: no out_head_dict.* heads found")
    n_ids = int(state["decoder.learnable_style_emb.weight"].shape[0])
    state, decoder = _original_decoder(state, path)

    heads: list[HeadConfig] = []
    pca: dict[str, dict[str, np.ndarray]] = {}
    templates: dict[str, np.ndarray] = {}
    for name, (out_dim, n_layers) in dims.items():
        conv = conventions.get(name)
        is_pca = out_dim != conv.dim
        if is_pca:
            if not conv.pca:
                raise CheckpointError(
                    f"{path}: head {name} has {out_dim} outputs, expected {conv.dim}"
                )
            pca[name] = _find_release_pca(name, root, path)
        heads.append(HeadConfig(name, out_dim if is_pca else 0, n_layers))
        templates[name] = _demo_template(conv, root)

    identities = _original_identities(n_ids, root)
    family = encoder_family or encoder_family_for(encoder)
    enc = HFAudioEncoder.from_name_or_config(encoder, family)
    config = ModelConfig(
        encoder=EncoderConfig(
            **{k: v for k, v in enc.config_dict().items() if k != "family"}, family=enc.family
        ),
        decoder=decoder,
        heads=tuple(heads),
        identities=identities,
        pivot=identities[-1] == PIVOT,
        adaptor_position=1,
    )
    model = UniTalker(config, enc)
    ours = {}
    for k, v in state.items():
        if k.startswith("audio_encoder."):
            k = "audio_encoder.model." + k[len("audio_encoder.") :]
        ours[k] = v
    expected = model.state_dict().keys()
    ours = remap_weight_norm(ours, expected)
    for name, arrays in pca.items():
        layer = PCALayer.from_arrays(arrays, model.pca_layer_dict[name].n_components)
        model.pca_layer_dict[name] = layer
        ours.update({f"pca_layer_dict.{name}.{k}": v for k, v in layer.state_dict().items()})
    for name, tpl in templates.items():
        ours[f"templates.{name}"] = torch.from_numpy(tpl)
    check_shapes(ours, model.state_dict(), Path(path), f"encoder {encoder!r} / the data release")
    missing, unexpected = model.load_state_dict(ours, strict=False)
    # HF models may register buffers the release did not save (e.g. masked_spec_embed).
    missing = [k for k in missing if not k.endswith("masked_spec_embed")]
    if missing or unexpected:
        raise CheckpointError(
            f"{path}: does not match encoder {encoder!r}: missing {missing[:5]}, unexpected {unexpected[:5]}"
        )
    model.meta = {"source": str(path), "encoder": encoder}
    return model.eval()


def _original_decoder(
    state: dict[str, torch.Tensor], path: str | Path
) -> tuple[dict[str, torch.Tensor], DecoderConfig]:
    """The decoder config of an original state dict, and the state in our key names.

    TCN (``UniTalkerDecoderTCN``): the keys are ours already. Transformer
    (``UniTalkerDecoderTransformer``): ``decoder.PPE.pe`` is the periodic positional table,
    which we rebuild from the period instead of storing (it is checked against the file's
    table here), and ``decoder.transformer_decoder.layers.N.*`` are PyTorch's own names.
    """
    hidden = int(state["decoder.audio_feature_map.weight"].shape[0])
    id_dim = int(state["decoder.learnable_style_emb.weight"].shape[1])
    tcn = {k.split(".")[4] for k in state if k.startswith("decoder.tcn.first_net.conv_layers.")}
    layers = {
        int(k.split(".")[3]) for k in state if k.startswith("decoder.transformer_decoder.layers.")
    }
    if tcn:
        kernel = int(state["decoder.tcn.first_net.conv_layers.0.conv.weight"].shape[-1])
        return state, DecoderConfig("tcn", hidden, id_dim, len(tcn), kernel)
    if not layers:
        raise CheckpointError(
            f"{path}: decoder layout not recognised (neither decoder.tcn.* of the TCN decoder "
            f"nor decoder.transformer_decoder.* of the transformer decoder)"
        )
    if id_dim != hidden:
        raise CheckpointError(
            f"{path}: transformer decoder with a {id_dim}-d identity embedding for {hidden}-d "
            f"features; the original's embedding is {hidden}-d"
        )
    pe = state.get("decoder.PPE.pe")
    if pe is None:
        raise CheckpointError(f"{path}: transformer decoder without decoder.PPE.pe")
    period = _ppe_period(pe, path)
    ff = int(state["decoder.transformer_decoder.layers.0.linear1.weight"].shape[0])
    state = {k: v for k, v in state.items() if k != "decoder.PPE.pe"}
    return state, DecoderConfig(
        "transformer", hidden, hidden, len(layers), n_heads=4, ff_dim=ff, period=period
    )


def _ppe_period(pe: torch.Tensor, path: str | Path) -> int:
    """The period of the original's stored positional table ``[1, L, D]``, checked against
    the table we build for that period (same formula, so the outputs match exactly)."""
    from unitalker.models.decoders import PeriodicPositionalEncoding

    table = pe.reshape(-1, pe.shape[-1]).float()
    for period in range(1, len(table) + 1):
        if torch.equal(table[period:], table[: len(table) - period]):
            break
    ours = PeriodicPositionalEncoding(table.shape[1], period, max_len=len(table)).pe[0]
    if not torch.allclose(ours[: len(table)], table, atol=1e-6):
        raise CheckpointError(
            f"{path}: decoder.PPE.pe is not the periodic positional encoding of period {period}"
        )
    return period


def _find_release_pca(name: str, root: Path | None, ckpt: str | Path) -> dict[str, np.ndarray]:
    if root is None:
        raise CheckpointError(
            f"{ckpt}: head {name} is a PCA head; pass the data release folder (--data-root) with its pca.npz"
        )
    for ds in _datasets_of(name):
        f = root / ds.folder / "pca.npz"
        if f.exists():
            with np.load(f, allow_pickle=False) as z:
                return {k: z[k] for k in z.files}
    raise CheckpointError(
        f"{root}: no pca.npz for head {name} (looked in {[d.folder for d in _datasets_of(name)]})"
    )


def _demo_template(conv: conventions.Convention, root: Path | None) -> np.ndarray:
    """The original demo's template: local subject 3 (D0, D1), 4 (D6), else 0, times scale."""
    for ds in _datasets_of(conv.name):
        f = root / ds.folder / "id_template.npy" if root is not None else None
        if f is not None and f.exists():
            arr = np.load(f, allow_pickle=False)
            row = arr[min(ds.demo_template_id, len(arr) - 1)].reshape(-1).astype(np.float32)
            if row.size != conv.dim:
                raise CheckpointError(
                    f"{f}: template has {row.size} values, {conv.name} needs {conv.dim}"
                )
            return row * np.float32(conv.scale)
    if conv.kind == "vertices":
        log.warning("no id_template.npy for %s under %s: using a zero template", conv.name, root)
    return np.zeros(conv.dim, dtype=np.float32)


def _original_identities(n_ids: int, root: Path | None) -> tuple[str, ...]:
    names: list[str] = []
    for ds in conventions.datasets():
        if ds.key not in conventions.ORIGINAL_DATASETS:
            continue
        subj: list[str] = []
        f = root / ds.folder / "train.json" if root is not None else None
        if f is not None and f.exists():
            subj = [str(s) for s in json.loads(f.read_text()).get("info", {}).get("id_list", [])]
        if len(subj) != ds.n_subjects:
            subj = [str(i) for i in range(ds.n_subjects)]
        names += [f"{ds.key}:{s}" for s in subj]
    if n_ids == len(names) + 1:
        return (*names, PIVOT)
    if n_ids == len(names):
        return tuple(names)
    # A checkpoint of another dataset mix: index names, last row the pivot.
    return (*(f"id{i}" for i in range(n_ids - 1)), PIVOT)


def convert_original(
    path: str | Path,
    out: str | Path,
    data_root: str | Path | None,
    encoder: str,
    *,
    encoder_family: str | None = None,
    overwrite: bool = False,
) -> Path:
    """``unitalker convert-checkpoint``: original ``.pt`` -> our format folder."""
    out = Path(out)
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise CheckpointError(
            f"{out}: folder is not empty (pass --overwrite to replace the checkpoint there)"
        )
    model = load_original(path, data_root, encoder, encoder_family=encoder_family)
    return save_model(model, out, extra={"converted_from": str(path), "encoder": encoder})


def average_checkpoints(sources: Sequence[str | Path], out: str | Path) -> Path:
    """Write the uniform weight average of checkpoints of one architecture to ``out``.

    Fine-tunes of one model average into a model that is often better than each (a
    "model soup", Wortsman et al. 2022): the default model is the average of its stage 5
    and stage 8 (scripts/train_default.sh). Floating-point tensors are averaged (in
    float64, stored in their own dtype); every other tensor must be equal in all sources.
    The metadata of the last source is kept, with ``extra.averaged_from`` naming the
    sources. Refuses checkpoints of different architectures, heads or conventions.
    """
    if len(sources) < 2:
        raise CheckpointError("average_checkpoints(): give two or more checkpoints")
    models = [load_model(s, "cpu") for s in sources]
    first = checkpoint_metadata(models[0])
    for src, m in zip(sources[1:], models[1:], strict=True):
        meta = checkpoint_metadata(m)
        for key in ("model", "conventions"):
            if meta[key] != first[key]:
                raise CheckpointError(
                    f"{src}: its {key} differs from {sources[0]}'s: only fine-tunes of one "
                    "model can be averaged"
                )
    states = [m.state_dict() for m in models]
    avg: dict[str, torch.Tensor] = {}
    for k, v in states[-1].items():
        if v.is_floating_point():
            avg[k] = (sum(st[k].double() for st in states) / len(states)).to(v.dtype)
        elif all(torch.equal(st[k], v) for st in states):
            avg[k] = v
        else:
            raise CheckpointError(f"{k}: a non-float tensor differs between the checkpoints")
    model = models[-1]
    model.load_state_dict(avg)
    extra = dict(model.meta.get("extra") or {})
    extra["averaged_from"] = [str(s) for s in sources]
    return save_model(model, out, extra=extra)


def deepen_checkpoint(
    source: str | Path, out: str | Path, extra_layers: int, *, seed: int = 0
) -> Path:
    """Write ``source`` with ``extra_layers`` more transformer layers in its built-in
    encoder to ``out``: a model that gives the same output, to train further.

    The encoder's layers are pre-LN (``x + attn(norm(x))``, then ``x + ff(norm(x))``), so
    a layer whose attention output projection and second feed-forward linear are zero
    adds nothing: the new layers go after the trained ones with those four tensors zeroed
    (their other weights drawn as a fresh layer's, from ``seed``) and learn from there;
    every other tensor is copied. ``extra.deepened_from`` names the source.
    """
    if extra_layers < 1:
        raise CheckpointError(f"deepen_checkpoint(): extra_layers must be >= 1, not {extra_layers}")
    base = load_model(source, "cpu")
    enc = base.config.encoder
    if enc.family != "builtin":
        raise CheckpointError(
            f"{source}: its encoder is {enc.family!r}; only the built-in encoder can be deepened"
        )
    cfg = dataclasses.replace(
        base.config, encoder=dataclasses.replace(enc, n_layers=enc.n_layers + extra_layers)
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = UniTalker(cfg)
    state, own = base.state_dict(), model.state_dict()
    prefix = "audio_encoder.transformer.layers."
    for k, v in own.items():
        if k in state:
            own[k] = state[k]
        elif not k.startswith(prefix):
            raise CheckpointError(f"{source}: no tensor {k} to copy")  # not a new layer's
        elif ".self_attn.out_proj." in k or ".linear2." in k:
            own[k] = torch.zeros_like(v)
    model.load_state_dict(own)
    model.meta = dict(base.meta)
    extra = dict(model.meta.get("extra") or {})
    extra["deepened_from"] = {"source": str(source), "extra_layers": int(extra_layers)}
    return save_model(model, out, extra=extra, overwrite=False)


def copy_checkpoint(src: str | Path, dst: str | Path) -> Path:
    """Copy a checkpoint folder, either layout, into the current one (to bundle a model)."""
    src, dst = Path(src), Path(dst)
    cfg = config_file(src)
    if cfg is None or not (src / WEIGHTS).exists():
        raise CheckpointError(f"{src}: not a checkpoint folder ({WEIGHTS} + {CONFIG})")
    dst.mkdir(parents=True, exist_ok=True)
    shutil.copy2(src / WEIGHTS, dst / WEIGHTS)
    shutil.copy2(cfg, dst / CONFIG)
    if _is_ours(dst / LEGACY_CONFIG):
        (dst / LEGACY_CONFIG).unlink()
    return dst

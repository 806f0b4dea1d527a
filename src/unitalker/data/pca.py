"""Incremental PCA of motion (``annotation - template``, scaled units), in the original's keys.

The original fits scikit-learn's ``IncrementalPCA`` on every training frame of one
vertex convention and saves ``pca.npz`` with::

    components_to_data    [K, D]  rows are principal directions
    original_data_mean    [D]     mean of the fitted data
    data_components_mean  [K]     mean of the projected data
    data_components_std   [K]     std of the projected data
    explained_variance_ratio [K]
    S                     [K]     singular values

We stream clips instead of holding every frame in memory: frames are buffered into
batches and merged with the incremental SVD of Ross et al. (2008), the algorithm
``IncrementalPCA.partial_fit`` implements: stack the current ``S * components``, the
centred batch and a mean-correction row, take an SVD, keep the top K. A second pass
projects the data to get exact component statistics. Memory is
``O((batch + K) * D)``.
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from unitalker import conventions
from unitalker.data.manifest import ClipEntry, DatasetSplit, Manifest, Split, load_manifest
from unitalker.progress import StageProgress, track

logger = logging.getLogger(__name__)

PCA_KEYS: tuple[str, ...] = (
    "components_to_data",
    "original_data_mean",
    "data_components_mean",
    "data_components_std",
    "explained_variance_ratio",
    "S",
)


# Kept over sklearn.decomposition.IncrementalPCA (equal up to component signs, tested): its
# scipy SVD is 7x slower than torch's on BIWI-wide batches (D = 70110): 132 s vs 18 s a fit.
class IncrementalPCA:
    """Streaming PCA by incremental SVD (numerically like scikit-learn's ``IncrementalPCA``).

    Args:
        n_components: K, the components kept.
        dtype: torch dtype for the SVDs (float32 keeps memory at half of float64).
    """

    def __init__(self, n_components: int, *, dtype: Any = None) -> None:
        import torch

        if n_components < 1:
            raise ValueError(f"n_components must be >= 1, got {n_components}")
        self.n_components = n_components
        self.dtype = dtype or torch.float32
        self.n_samples = 0
        self.mean: np.ndarray | None = None  # float64 [D]
        self.var: np.ndarray | None = None  # float64 [D], ddof 0
        self.components: Any = None  # torch [k, D]
        self.singular_values: Any = None  # torch [k]

    def partial_fit(self, x: np.ndarray) -> None:
        """Merge a batch ``[N, D]`` of samples."""
        import torch

        x = np.asarray(x)
        n = len(x)
        if n == 0:
            return
        if self.n_samples == 0 and n < self.n_components:
            raise ValueError(
                f"the first batch needs at least n_components={self.n_components} rows, got {n}"
            )
        x64 = x.astype(np.float64)
        b_mean = x64.mean(axis=0)
        b_var = x64.var(axis=0)
        total = self.n_samples + n
        xt = torch.from_numpy(x.astype(np.float32) - b_mean.astype(np.float32)).to(self.dtype)
        if self.n_samples == 0:
            new_mean, new_var = b_mean, b_var
            stacked = xt
        else:
            assert self.mean is not None and self.var is not None
            delta = b_mean - self.mean
            new_mean = self.mean + delta * (n / total)
            # Chan et al. parallel variance
            new_var = (
                self.var * self.n_samples + b_var * n + delta**2 * self.n_samples * n / total
            ) / total
            corr = np.sqrt(self.n_samples * n / total) * (self.mean - b_mean)
            stacked = torch.cat(
                [
                    self.singular_values[:, None] * self.components,
                    xt,
                    torch.from_numpy(corr.astype(np.float32)).to(self.dtype)[None],
                ]
            )
        u, s, vt = torch.linalg.svd(stacked, full_matrices=False)
        # deterministic signs: the largest |u| of each column is positive (svd_flip)
        signs = torch.sign(u.gather(0, u.abs().argmax(dim=0, keepdim=True))[0])
        signs[signs == 0] = 1
        vt = vt * signs[:, None]
        k = min(self.n_components, len(s))
        self.components = vt[:k].contiguous()
        self.singular_values = s[:k].contiguous()
        self.mean, self.var, self.n_samples = new_mean, new_var, total

    def result_arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """``(components [K, D], mean [D], S [K], explained_variance_ratio [K])``."""
        if self.components is None:
            raise ValueError("PCA has not seen any data")
        assert self.var is not None and self.mean is not None
        s = self.singular_values.double().numpy()
        total_var = float(self.var.sum() * self.n_samples)
        ratio = s**2 / total_var if total_var > 0 else np.zeros_like(s)
        return (
            self.components.float().numpy().astype(np.float32),
            self.mean.astype(np.float32),
            s.astype(np.float32),
            ratio.astype(np.float32),
        )


def _collect_sources(
    source: Manifest | str | Path | Split | Sequence[DatasetSplit] | Sequence[ClipEntry],
    split: str | None,
    templates: dict[str, np.ndarray] | None,
) -> list[tuple[ClipEntry, np.ndarray]]:
    if isinstance(source, (str, Path, Manifest)):
        source = load_manifest(source).split(split)
    if isinstance(source, Split):
        source = source.parts
    pairs = []
    for item in source:
        if isinstance(item, DatasetSplit):
            pairs += [(e, item.template(e.local_id)) for e in item.entries]
        elif isinstance(item, ClipEntry):
            if templates is None or item.dataset not in templates:
                raise ValueError(
                    f"fit_pca: no templates given for dataset {item.dataset!r} of {item.name}"
                )
            pairs.append((item, np.asarray(templates[item.dataset])[item.local_id].reshape(-1)))
        else:
            raise TypeError(f"fit_pca: cannot use {type(item).__name__} as a data source")
    return pairs


def _clip_motion(entry: ClipEntry, template: np.ndarray) -> np.ndarray:
    from unitalker.data.dataset import load_annotation
    from unitalker.data.framerate import convert_framerate

    conv = conventions.get(entry.convention)
    raw = load_annotation(entry.annot_path, entry.convention)
    motion = convert_framerate(raw, entry.fps, conv.fps) * np.float32(conv.scale)
    return (motion - template[None].astype(np.float32)).astype(np.float32)


def fit_pca(
    source: Manifest | str | Path | Split | Sequence[DatasetSplit] | Sequence[ClipEntry],
    n_components: int = 512,
    *,
    split: str | None = "train",
    convention: str | None = None,
    templates: dict[str, np.ndarray] | None = None,
    batch_size: int | None = None,
    seed: int = 0,
    progress: StageProgress | None = None,
) -> dict[str, np.ndarray]:
    """Fit incremental PCA on ``annotation - template`` (scaled, at the convention's fps).

    Args:
        source: a manifest (path or object; ``split`` is read), a split, dataset splits,
            or clip entries (then ``templates``: dataset key -> ``[n, D]`` scaled).
        n_components: K (clamped to the number of frames and to D).
        convention: which convention to fit when the source holds several.
        batch_size: frames per incremental step (default ``max(1024, 2K)``).
        seed: order of the clips (and of frames within a batch).
        progress: called as ``progress(stage, done_clips, total_clips)`` for the two passes
            (``"PCA fit <convention>"``, ``"PCA project"``).

    Returns:
        the ``pca.npz`` dict (:data:`PCA_KEYS`), float32.
    """
    from unitalker.data.dataset import check_annotation_header, expected_frames

    pairs = _collect_sources(source, split, templates)
    convs = sorted({e.convention for e, _ in pairs})
    if convention is None:
        if len(convs) != 1:
            raise ValueError(
                f"fit_pca: the data holds conventions {convs}; choose one with convention="
            )
        convention = convs[0]
    pairs = [(e, t) for e, t in pairs if e.convention == convention]
    if not pairs:
        raise ValueError(f"fit_pca: no clips of convention {convention!r} (found {convs})")
    conv = conventions.get(convention)
    if not conv.pca:
        logger.warning("convention %s is not a PCA convention; fitting anyway", convention)

    total = sum(
        expected_frames(check_annotation_header(e.annot_path, e.convention), e.fps, convention)
        for e, _ in pairs
    )
    k = min(n_components, total, conv.dim)
    if k < n_components:
        logger.warning(
            "n_components %d > available (frames %d, dim %d): using %d",
            n_components,
            total,
            conv.dim,
            k,
        )
    bs = max(batch_size or max(1024, 2 * k), k)
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(pairs))

    ipca = IncrementalPCA(k)
    buf: list[np.ndarray] = []
    n_buf = 0
    for j in track(order, f"PCA fit {convention}", progress):
        e, t = pairs[j]
        buf.append(_clip_motion(e, t))
        n_buf += len(buf[-1])
        while n_buf >= bs:
            x = np.concatenate(buf)
            x = x[rng.permutation(len(x))]
            ipca.partial_fit(x[:bs])
            rest = x[bs:]
            buf, n_buf = ([rest] if len(rest) else []), len(rest)
    if n_buf and (ipca.n_samples > 0 or n_buf >= k):
        ipca.partial_fit(np.concatenate(buf))
    components, mean, s, ratio = ipca.result_arrays()

    # Second pass: exact statistics of the projected data.
    c = components.astype(np.float64)
    acc = np.zeros(len(c))
    acc2 = np.zeros(len(c))
    count = 0
    for j in track(order, "PCA project", progress):
        e, t = pairs[j]
        z = (_clip_motion(e, t).astype(np.float64) - mean) @ c.T
        acc += z.sum(axis=0)
        acc2 += (z**2).sum(axis=0)
        count += len(z)
    z_mean = acc / count
    z_std = np.sqrt(np.maximum(acc2 / count - z_mean**2, 0.0))
    logger.info("PCA %s: %d frames, K=%d, explained %.4f", convention, count, k, float(ratio.sum()))
    return {
        "components_to_data": components,
        "original_data_mean": mean,
        "data_components_mean": z_mean.astype(np.float32),
        "data_components_std": z_std.astype(np.float32),
        "explained_variance_ratio": ratio,
        "S": s,
    }


def save_pca(path: str | Path, pca: dict[str, np.ndarray]) -> Path:
    """Write ``pca.npz`` (the original's keys), atomically."""
    missing = [k for k in PCA_KEYS if k not in pca]
    if missing:
        raise ValueError(f"PCA dict lacks keys {missing}")
    path = Path(path)
    if path.suffix != ".npz":
        path = path.with_suffix(".npz")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".npz.tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            np.savez(fh, **{k: np.asarray(pca[k]) for k in PCA_KEYS})
        os.replace(tmp, path)
    except OSError:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def load_pca(path: str | Path) -> dict[str, np.ndarray]:
    """Read a ``pca.npz`` (ours or the original release's) and check its shapes."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"PCA file not found: {path}")
    try:
        with np.load(path, allow_pickle=False) as z:
            d = {k: np.asarray(z[k]) for k in z.files}
    except Exception as e:  # noqa: BLE001
        raise ValueError(f"{path}: cannot read PCA file: {e}") from e
    missing = [k for k in PCA_KEYS if k not in d]
    if missing:
        raise ValueError(f"{path}: missing keys {missing} (has {sorted(d)})")
    comp = d["components_to_data"]
    if comp.ndim != 2:
        raise ValueError(f"{path}: components_to_data must be [K, D], got {comp.shape}")
    k, dim = comp.shape
    for key in ("data_components_mean", "data_components_std", "explained_variance_ratio", "S"):
        if d[key].shape != (k,):
            raise ValueError(f"{path}: {key} must be [{k}], got {d[key].shape}")
    if d["original_data_mean"].shape != (dim,):
        raise ValueError(
            f"{path}: original_data_mean must be [{dim}], got {d['original_data_mean'].shape}"
        )
    return d


def cumulative_explained(
    ratio: np.ndarray, ks: Sequence[int] = (1, 8, 32, 64, 128, 256, 512)
) -> list[tuple[int, float]]:
    """``[(k, cumulative explained variance ratio at k)]`` for the ks within range."""
    c = np.cumsum(ratio)
    out = [(k, float(c[k - 1])) for k in ks if k <= len(c)]
    if not out or out[-1][0] != len(c):
        out.append((len(c), float(c[-1])))
    return out

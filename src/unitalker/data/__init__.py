"""Data layer: manifests, identities, frame rates, clip datasets, batching, PCA, converters.

* :mod:`~unitalker.data.manifest` — the one manifest format (the original release's):
  :func:`load_manifest`, :class:`Manifest`, :class:`ClipEntry`, :class:`DatasetSplit`.
* :mod:`~unitalker.data.identities` — :class:`IdentityTable` (global ids + pivot).
* :mod:`~unitalker.data.framerate` — annotation fps conversion.
* :mod:`~unitalker.data.dataset` — :class:`ClipDataset` (audio, motion, template, id).
* :mod:`~unitalker.data.batching` — :func:`collate`, :class:`Batch`,
  :class:`LengthBucketBatchSampler`, :func:`make_loader`.
* :mod:`~unitalker.data.pca` — :func:`fit_pca`, :func:`save_pca`, :func:`load_pca`.
* :mod:`~unitalker.data.convert` — converters from community layouts.
* :mod:`~unitalker.data.check` — :func:`check_manifest`.

Importing this package does not import torch.
"""

from __future__ import annotations

from unitalker.data.batching import Batch, LengthBucketBatchSampler, collate, make_loader
from unitalker.data.dataset import ClipDataset, ClipError
from unitalker.data.framerate import convert_framerate, to_convention_fps
from unitalker.data.identities import IdentityTable
from unitalker.data.manifest import (
    ClipEntry,
    DatasetSplit,
    Manifest,
    ManifestError,
    Split,
    load_manifest,
)
from unitalker.data.pca import fit_pca, load_pca, save_pca

__all__ = [
    "Batch",
    "ClipDataset",
    "ClipEntry",
    "ClipError",
    "DatasetSplit",
    "IdentityTable",
    "LengthBucketBatchSampler",
    "Manifest",
    "ManifestError",
    "Split",
    "collate",
    "convert_framerate",
    "fit_pca",
    "load_manifest",
    "load_pca",
    "make_loader",
    "save_pca",
    "to_convention_fps",
]

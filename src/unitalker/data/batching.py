"""Batches: padding with masks, length bucketing per convention, dataset mixing.

* :func:`collate` pads a list of :class:`~unitalker.data.dataset.ClipDataset` items
  (one convention per batch: each convention has its own head) into a :class:`Batch`.
* :class:`LengthBucketBatchSampler` makes the batches: clips of the same convention and
  similar length together, each dataset repeated by its factor (the original
  ``duplicate_list``; defaults from :attr:`DatasetInfo.repeat`), shuffled with a seeded
  ``torch.Generator`` that is deterministic per epoch (:meth:`set_epoch`), and split
  into disjoint equal shares for distributed ranks.

With ``batch_size=1`` an epoch is a random permutation of the repeated clip list, which
is what the original ``DataLoader(MixAudioFaceDataset, batch_size=1, shuffle=True)`` did.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from unitalker import conventions

if TYPE_CHECKING:  # pragma: no cover
    import torch

logger = logging.getLogger(__name__)


@dataclass
class Batch:
    """A padded batch of clips of one convention.

    Attributes:
        audio: float32 ``[B, S_max]`` 16 kHz audio, zero-padded.
        audio_lengths: int64 ``[B]`` true sample counts.
        motion: float32 ``[B, T_max, D]`` scaled motion, zero-padded.
        motion_lengths: int64 ``[B]`` true frame counts.
        mask: bool ``[B, T_max]``, True on the frames the loss counts: the real ones
            (items with ``loss_frames``, streaming crops, count only their first frames).
        template: float32 ``[B, D]``.
        identity: int64 ``[B]`` global identity indices.
        convention: the batch's convention name.
        fps: its frame rate.
        names: clip names.
        datasets: dataset key per clip.
        visemes: int64 ``[B, T_max]`` viseme class per frame (-1: none, padding
            included) when the items carry them (:mod:`unitalker.data.visemes`), else None.
    """

    audio: torch.Tensor
    audio_lengths: torch.Tensor
    motion: torch.Tensor
    motion_lengths: torch.Tensor
    mask: torch.Tensor
    template: torch.Tensor
    identity: torch.Tensor
    convention: str
    fps: float
    names: list[str]
    datasets: list[str]
    visemes: torch.Tensor | None = None

    def __len__(self) -> int:
        return len(self.names)

    def to(self, device: Any, non_blocking: bool = False) -> Batch:
        """A copy with every tensor on ``device``."""
        kw = {"non_blocking": non_blocking}
        return Batch(
            audio=self.audio.to(device, **kw),
            audio_lengths=self.audio_lengths.to(device, **kw),
            motion=self.motion.to(device, **kw),
            motion_lengths=self.motion_lengths.to(device, **kw),
            mask=self.mask.to(device, **kw),
            template=self.template.to(device, **kw),
            identity=self.identity.to(device, **kw),
            convention=self.convention,
            fps=self.fps,
            names=list(self.names),
            datasets=list(self.datasets),
            visemes=None if self.visemes is None else self.visemes.to(device, **kw),
        )

    def pin_memory(self) -> Batch:
        # Called by DataLoader(pin_memory=True) on custom batch types.
        for name in (
            "audio",
            "audio_lengths",
            "motion",
            "motion_lengths",
            "mask",
            "template",
            "identity",
        ):
            setattr(self, name, getattr(self, name).pin_memory())
        if self.visemes is not None:
            self.visemes = self.visemes.pin_memory()
        return self


def collate(items: Sequence[dict[str, Any]]) -> Batch:
    """Pad items (dicts from :class:`ClipDataset`) into a :class:`Batch`.

    Raises:
        ValueError: empty list, or items of different conventions.
    """
    import torch

    if not items:
        raise ValueError("cannot collate an empty batch")
    convs = {it["convention"] for it in items}
    if len(convs) != 1:
        raise ValueError(
            f"a batch holds one convention (one head); got {sorted(convs)} "
            f"(use LengthBucketBatchSampler, which groups by convention)"
        )
    b = len(items)
    a_len = [len(it["audio"]) for it in items]
    m_len = [len(it["motion"]) for it in items]
    d = items[0]["motion"].shape[1]
    audio = np.zeros((b, max(a_len)), dtype=np.float32)
    motion = np.zeros((b, max(m_len), d), dtype=np.float32)
    for i, it in enumerate(items):
        audio[i, : a_len[i]] = it["audio"]
        motion[i, : m_len[i]] = it["motion"]
    m_lengths = torch.tensor(m_len, dtype=torch.int64)
    # frames the loss counts: all valid ones, or the first `loss_frames` (streaming crops)
    counted = torch.tensor(
        [min(n, it.get("loss_frames", n)) for n, it in zip(m_len, items, strict=True)]
    )
    mask = torch.arange(max(m_len))[None, :] < counted[:, None]
    visemes = None
    if any("visemes" in it for it in items):
        vis = np.full((b, max(m_len)), -1, dtype=np.int64)
        for i, it in enumerate(items):
            if "visemes" in it:
                n = min(m_len[i], len(it["visemes"]))
                vis[i, :n] = it["visemes"][:n]
        visemes = torch.from_numpy(vis)
    return Batch(
        audio=torch.from_numpy(audio),
        audio_lengths=torch.tensor(a_len, dtype=torch.int64),
        motion=torch.from_numpy(motion),
        motion_lengths=m_lengths,
        mask=mask,
        template=torch.from_numpy(
            np.stack([np.asarray(it["template"], np.float32) for it in items])
        ),
        identity=torch.tensor([int(it["identity"]) for it in items], dtype=torch.int64),
        convention=items[0]["convention"],
        fps=float(items[0]["fps"]),
        names=[str(it["name"]) for it in items],
        datasets=[str(it["dataset"]) for it in items],
        visemes=visemes,
    )


def default_repeats(datasets: Sequence[str]) -> dict[str, int]:
    """Repetition factor per dataset key from the registry (1 for unregistered keys)."""
    out = {}
    for key in datasets:
        try:
            out[key] = conventions.get_dataset(key).repeat
        except KeyError:
            out[key] = 1
    return out


class LengthBucketBatchSampler:
    """Batches of one convention and similar length, mixed over datasets with repeats.

    Args:
        lengths: per-clip length (frames or seconds; only the order matters).
        groups: per-clip convention (batches never mix groups).
        datasets: per-clip dataset key (for repetition factors).
        batch_size: clips per batch.
        repeats: dataset key -> repetition factor; None = registry defaults
            (10, 5, 4, 1, 1, 1, 1, 1 for D0..D7); missing keys repeat once.
        shuffle: shuffle (training); False keeps manifest order (evaluation).
        seed: base seed; epoch ``e`` uses ``seed + e``.
        drop_last: drop each group's last incomplete batch.
        bucket_batches: a pool of ``bucket_batches * batch_size`` shuffled clips is
            sorted by length before cutting batches (larger = tighter padding, less
            randomness).
        rank, world_size: distributed share; every rank gets the same number of
            batches and no batch is given to two ranks (the remainder is dropped).

    Use :meth:`from_dataset` for a :class:`ClipDataset`.
    """

    def __init__(
        self,
        lengths: Sequence[float],
        groups: Sequence[str],
        datasets: Sequence[str] | None = None,
        *,
        batch_size: int = 1,
        repeats: dict[str, int] | None = None,
        shuffle: bool = True,
        seed: int = 0,
        drop_last: bool = False,
        bucket_batches: int = 50,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} is not in [0, world_size={world_size})")
        if len(lengths) != len(groups) or (datasets is not None and len(datasets) != len(lengths)):
            raise ValueError("lengths, groups and datasets must have one value per clip")
        self.lengths = np.asarray(lengths, dtype=np.float64)
        self.groups = list(groups)
        self.datasets = list(datasets) if datasets is not None else ["_"] * len(lengths)
        self.batch_size = batch_size
        self.repeats = (
            default_repeats(sorted(set(self.datasets))) if repeats is None else dict(repeats)
        )
        for k, v in self.repeats.items():
            if int(v) != v or v < 0:
                raise ValueError(f"repeat factor for {k} must be a non-negative integer, got {v}")
        self.shuffle = shuffle
        self.seed = seed
        self.drop_last = drop_last
        self.bucket_batches = max(1, bucket_batches)
        self.rank = rank
        self.world_size = world_size
        self.epoch = 0

    @classmethod
    def from_dataset(cls, dataset: Any, **kwargs: Any) -> LengthBucketBatchSampler:
        """Build from a :class:`ClipDataset` (its lengths, conventions, dataset keys)."""
        return cls(dataset.lengths, dataset.conventions, dataset.dataset_keys, **kwargs)

    def set_epoch(self, epoch: int) -> None:
        """Make the next iteration use this epoch's order (call before each epoch)."""
        self.epoch = epoch

    def _repeated_indices(self) -> list[int]:
        out = []
        for i, ds in enumerate(self.datasets):
            out += [i] * int(self.repeats.get(ds, 1))
        return out

    def _all_batches(self) -> list[list[int]]:
        import torch

        g = torch.Generator()
        g.manual_seed(self.seed + self.epoch)
        by_group: dict[str, list[int]] = {}
        for i in self._repeated_indices():
            by_group.setdefault(self.groups[i], []).append(i)
        batches: list[list[int]] = []
        for group in sorted(by_group):
            idx = by_group[group]
            if self.shuffle:
                perm = torch.randperm(len(idx), generator=g).tolist()
                idx = [idx[j] for j in perm]
                pool = self.bucket_batches * self.batch_size
                ordered = []
                for s in range(0, len(idx), pool):
                    chunk = idx[s : s + pool]
                    # stable sort: equal lengths keep their shuffled order
                    ordered += sorted(chunk, key=lambda j: self.lengths[j])
                idx = ordered
            for s in range(0, len(idx), self.batch_size):
                batch = idx[s : s + self.batch_size]
                if len(batch) < self.batch_size and self.drop_last:
                    continue
                batches.append(batch)
        if self.shuffle:
            perm = torch.randperm(len(batches), generator=g).tolist()
            batches = [batches[j] for j in perm]
        if self.world_size > 1:
            usable = len(batches) - len(batches) % self.world_size
            if usable < len(batches):
                logger.debug(
                    "dropping %d batch(es) so ranks get equal shares", len(batches) - usable
                )
            batches = batches[self.rank : usable : self.world_size]
        return batches

    def __iter__(self) -> Iterator[list[int]]:
        return iter(self._all_batches())

    def __len__(self) -> int:
        counts: dict[str, int] = {}
        for i in self._repeated_indices():
            counts[self.groups[i]] = counts.get(self.groups[i], 0) + 1
        n = sum(
            (c // self.batch_size) if self.drop_last else -(-c // self.batch_size)
            for c in counts.values()
        )
        return n // self.world_size if self.world_size > 1 else n


def make_loader(
    dataset: Any,
    *,
    batch_size: int = 1,
    shuffle: bool = True,
    seed: int = 0,
    repeats: dict[str, int] | None = None,
    num_workers: int = 0,
    rank: int = 0,
    world_size: int = 1,
    drop_last: bool = False,
    pin_memory: bool = False,
) -> torch.utils.data.DataLoader:
    """A DataLoader over a :class:`ClipDataset` with the bucketing sampler and :func:`collate`.

    Call ``loader.batch_sampler.set_epoch(epoch)`` before each epoch. ``repeats=None``
    means the registry's factors when shuffling (training) and no repetition otherwise.
    """
    from torch.utils.data import DataLoader

    if repeats is None and not shuffle:
        repeats = {}

    sampler = LengthBucketBatchSampler.from_dataset(
        dataset,
        batch_size=batch_size,
        repeats=repeats,
        shuffle=shuffle,
        seed=seed,
        drop_last=drop_last,
        rank=rank,
        world_size=world_size,
    )
    return DataLoader(
        dataset,
        batch_sampler=sampler,
        collate_fn=collate,
        num_workers=num_workers,
        pin_memory=pin_memory,
        persistent_workers=num_workers > 0,
    )

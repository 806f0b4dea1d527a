from __future__ import annotations

from collections import Counter

import pytest
import torch
from datafixtures import make_multiface

from unitalker.data.batching import LengthBucketBatchSampler, collate, make_loader
from unitalker.data.convert import convert_multiface
from unitalker.data.dataset import ClipDataset, select_fraction


@pytest.fixture
def mixed(release, tmp_path):
    convert_multiface(make_multiface(tmp_path / "mf"), release / "D2_meshtalk")
    return ClipDataset(release, "train")  # three conventions: meshtalk, 3DETF, FLAME params


def test_mixed_loader_pads_and_masks(mixed):
    loader = make_loader(mixed, batch_size=3, repeats={}, seed=1)
    seen = Counter()
    for batch in loader:
        conv_of = {e.name: e.convention for e in mixed.entries}
        assert {conv_of[n] for n in batch.names} == {batch.convention}
        b, t, d = batch.motion.shape
        assert batch.mask.shape == (b, t) and batch.audio.shape[0] == b
        assert torch.equal(batch.mask.sum(1), batch.motion_lengths)
        for i in range(b):
            n = int(batch.motion_lengths[i])
            assert batch.motion[i, n:].abs().sum() == 0
            assert batch.audio[i, int(batch.audio_lengths[i]) :].abs().sum() == 0
        assert batch.template.shape == (b, d) and batch.identity.dtype == torch.int64
        seen.update(batch.names)
    assert sorted(seen) == sorted(e.name for e in mixed.entries) and set(seen.values()) == {1}


def test_collate_refuses_mixed_conventions(mixed):
    convs = mixed.conventions
    i, j = convs.index("meshtalk_6172_vertices"), convs.index("3DETF_blendshape_weight")
    with pytest.raises(ValueError, match="one convention"):
        collate([mixed[i], mixed[j]])


def test_repeats_defaults_and_epoch_determinism(mixed):
    s = LengthBucketBatchSampler.from_dataset(mixed, batch_size=1, seed=3)
    counts = Counter(mixed.entries[b[0]].dataset for b in s)
    per_ds = Counter(mixed.dataset_keys)
    assert counts["D2"] == 4 * per_ds["D2"] and counts["D3"] == per_ds["D3"]  # D2 repeats 4x
    assert len(s) == sum(counts.values())  # batch size 1: a permutation of the repeated list
    first = list(s)
    assert list(s) == first
    s.set_epoch(1)
    assert list(s) != first and sorted(map(tuple, s)) == sorted(map(tuple, first))
    s2 = LengthBucketBatchSampler.from_dataset(mixed, batch_size=1, repeats={"D2": 2})
    assert Counter(mixed.entries[b[0]].dataset for b in s2)["D5"] == per_ds["D5"]


def test_distributed_shares_disjoint_equal(mixed):
    shares = []
    for rank in range(3):
        s = LengthBucketBatchSampler.from_dataset(
            mixed, batch_size=2, repeats={}, seed=5, rank=rank, world_size=3
        )
        shares.append([tuple(b) for b in s])
        assert len(shares[-1]) == len(s)
    assert len({len(x) for x in shares}) == 1
    flat = [i for sh in shares for b in sh for i in b]
    assert len(flat) == len(set(flat))


def test_data_fraction_nested_and_deterministic(mixed):
    half = select_fraction(mixed.entries, 0.5, seed=0)
    quarter = select_fraction(mixed.entries, 0.25, seed=0)
    assert set(quarter) <= set(half) and half == select_fraction(mixed.entries, 0.5, seed=0)
    ds = ClipDataset(mixed.manifest, "train", fraction=0.5)
    per = Counter(ds.dataset_keys)
    assert per["D2"] == 2 and per["D5"] == 2


def _padded_frames(batches: list[list[int]], lengths) -> int:
    return sum(len(b) * max(lengths[i] for i in b) for b in batches)


@pytest.mark.parametrize("batch_size", [1, 3, 8])
def test_bucket_sampler_every_clip_once_seeded(batch_size):
    rng = torch.Generator().manual_seed(0)
    n = 203
    lengths = (torch.rand(n, generator=rng) * 500 + 10).round().tolist()
    groups = ["a" if i % 3 else "b" for i in range(n)]
    make = lambda seed: LengthBucketBatchSampler(  # noqa: E731
        lengths, groups, batch_size=batch_size, repeats={}, seed=seed, bucket_batches=4
    )
    s = make(11)
    orders = []
    for epoch in range(3):
        s.set_epoch(epoch)
        batches = list(s)
        assert len(batches) == len(s)
        flat = [i for b in batches for i in b]
        assert sorted(flat) == list(range(n))  # every clip exactly once per epoch
        assert all(len({groups[i] for i in b}) == 1 for b in batches)  # one convention each
        again = make(11)
        again.set_epoch(epoch)
        assert list(again) == batches  # the seed and epoch fix the order
        orders.append(flat)
    assert orders[0] != orders[1] != orders[2]  # a new order every epoch
    other = make(12)
    assert [i for b in other for i in b] != orders[0]  # and per seed
    if batch_size > 1:
        # bucketing: much less padding than batches of random clips
        random = LengthBucketBatchSampler(
            lengths, groups, batch_size=batch_size, repeats={}, seed=11, bucket_batches=1
        )
        real = sum(lengths)
        assert _padded_frames(batches, lengths) - real < 0.5 * (
            _padded_frames(list(random), lengths) - real
        )

"""Samplers (sesemi/samplers.py): the class-balanced N x M batch sampler, pass-by-pass batches."""

from __future__ import annotations

import itertools
from collections import Counter

import pytest
import torch
from hydra.errors import InstantiationException
from omegaconf import OmegaConf

from sesemi.datamodule import SESEMIDataModule
from sesemi.errors import SesemiError
from sesemi.samplers import (
    ClassBalancedBatchSampler,
    PassByPassBatchSampler,
    RepeatingRandomSampler,
)


class Labeled(torch.utils.data.Dataset):
    """`(index, label)` items; class c has `sizes[c]` of them."""

    def __init__(self, sizes):
        self.targets = [c for c, size in enumerate(sizes) for _ in range(size)]

    def __len__(self):
        return len(self.targets)

    def __getitem__(self, index):
        return index, self.targets[index]


def test_every_batch_has_n_classes_of_m_items():
    data = Labeled([10, 3, 7, 20, 5])
    sampler = ClassBalancedBatchSampler(data, classes_per_batch=3, samples_per_class=4, batch_size=12)
    batches = list(sampler)
    assert len(batches) == len(sampler) == 45 // 12
    for batch in batches:
        counts = Counter(data.targets[i] for i in batch)
        assert len(counts) == 3 and set(counts.values()) == {4}
    rare = [i for batch in batches for i in batch if data.targets[i] == 1]
    assert set(rare) <= {10, 11, 12}  # a class of 3 is drawn with replacement


def test_each_ddp_process_draws_from_its_share():
    """Lightning passes each process a DistributedSampler-like `sampler`; the shares do not overlap."""
    data = Labeled([8, 8, 8, 8])
    drawn = []
    for rank in (0, 1):
        share = torch.utils.data.DistributedSampler(data, num_replicas=2, rank=rank, shuffle=True, seed=0)
        sampler = ClassBalancedBatchSampler(data, classes_per_batch=2, samples_per_class=2, sampler=share)
        assert len(sampler) == 16 // 4  # batches cover the share once
        drawn.append({i for batch in sampler for i in batch})
        assert drawn[-1] <= set(share)
    assert not drawn[0] & drawn[1]


def test_batch_size_must_equal_n_times_m():
    with pytest.raises(SesemiError, match=r"2 x 4 = 8, but batch_size is 10"):
        ClassBalancedBatchSampler(Labeled([5, 5, 5]), 2, 4, batch_size=10)


def test_it_needs_labels_and_enough_classes():
    unlabeled = Labeled([4])
    unlabeled.targets = [-1] * 4
    with pytest.raises(SesemiError, match="labeled data set"):
        ClassBalancedBatchSampler(unlabeled, 1, 2)
    with pytest.raises(SesemiError, match="between 1 and the 2 classes"):
        ClassBalancedBatchSampler(Labeled([3, 3]), 3, 2)


def test_a_loader_config_uses_it_with_its_batch_size(monkeypatch):
    """The data module passes the loader's batch size, so a mismatch fails when loaders are built."""
    data = Labeled([6, 6, 6, 6])
    loader = {
        "dataset": {"name": "labeled"},
        "batch_size": 6,
        "shuffle": True,
        "batch_sampler": {
            "_target_": "sesemi.samplers.ClassBalancedBatchSampler",
            "classes_per_batch": 2,
            "samples_per_class": 3,
        },
    }
    module = SESEMIDataModule(OmegaConf.create({"train": {"supervised": loader}}))
    monkeypatch.setattr(module, "_build_dataset", lambda name, config, **options: data)
    module.setup()
    (images, labels), = [next(iter(module.train_dataloader()["supervised"]))]
    assert len(images) == 6 and sorted(Counter(labels.tolist()).values()) == [3, 3]
    module.data.train.supervised.batch_size = 8
    with pytest.raises(InstantiationException) as raised:  # what the CLI prints as `error: ...`
        module.train_dataloader()
    assert isinstance(raised.value.__cause__, SesemiError)
    assert "batch_size is 8" in str(raised.value.__cause__)


def _first(batch_sampler, count: int) -> list[list[int]]:
    return list(itertools.islice(batch_sampler, count))


def test_pass_by_pass_batches_end_each_pass_with_its_own_smaller_batch():
    """10 items in batches of 4: 4, 4, 2 per pass, every pass a new shuffle of all items."""
    torch.manual_seed(0)
    data = list(range(10))
    sampler = PassByPassBatchSampler(torch.utils.data.RandomSampler(data), 4, drop_last=False, num_batches=7)
    batches = _first(sampler, 7)
    assert len(sampler) == 7 and [len(b) for b in batches] == [4, 4, 2, 4, 4, 2, 4]
    first, second = batches[0:3], batches[3:6]
    assert sorted(sum(first, [])) == sorted(sum(second, [])) == data
    assert sum(first, []) != sum(second, [])  # shuffled again


def test_pass_by_pass_with_drop_last_keeps_full_batches_only():
    data = list(range(10))
    sampler = PassByPassBatchSampler(torch.utils.data.SequentialSampler(data), 4, drop_last=True, num_batches=5)
    assert _first(sampler, 5) == [[0, 1, 2, 3], [4, 5, 6, 7]] * 2 + [[0, 1, 2, 3]]


def test_pass_by_pass_starts_each_epoch_with_a_new_pass_and_its_epoch_set():
    """Epoch after epoch without end: each epoch's batches are those a loader restarted at that
    epoch would give, after Lightning's set_epoch, from the epoch the sampler was set to."""
    sampler = RepeatingRandomSampler(range(10), seed=3)
    sampler.set_epoch(2)  # as Lightning does before the first epoch (here a resumed run's)
    stream = iter(PassByPassBatchSampler(sampler, 4, drop_last=False, num_batches=4))
    for epoch in (2, 3, 4):
        restarted = RepeatingRandomSampler(range(10), seed=3)
        restarted.set_epoch(epoch)
        expected = _first(PassByPassBatchSampler(restarted, 4, drop_last=False, num_batches=4), 4)
        assert _first(stream, 4) == expected  # 4, 4, 2, then the first 4 of the next pass


def test_setting_the_current_epoch_again_does_not_reshuffle():
    """Lightning sets an epoch the batch sampler has already set and drawn from."""
    sampler = RepeatingRandomSampler(range(10), seed=3)
    sampler.set_epoch(1)
    first = list(sampler)
    sampler.set_epoch(1)
    assert list(sampler) != first  # the next pass of the epoch, not its first again
    sampler.set_epoch(2)
    again = RepeatingRandomSampler(range(10), seed=3)
    again.set_epoch(2)
    assert list(sampler) == list(again)


def test_pass_by_pass_stops_when_a_pass_has_no_batch():
    """A share too small for one full batch ends the iteration instead of looping forever."""
    sampler = PassByPassBatchSampler(torch.utils.data.SequentialSampler(range(3)), 4, drop_last=True, num_batches=5)
    assert list(sampler) == []


def test_class_balanced_batches_follow_their_seed_alone():
    """With a seed (a run's loader gives one), the batches are the seed's, whatever else draws
    from torch's global generator in between (the model, other loaders)."""
    data = Labeled([0] * 5 + [1] * 5 + [2] * 5 + [3] * 5)

    def batches(seed):
        return list(ClassBalancedBatchSampler(data, classes_per_batch=2, samples_per_class=3, seed=seed))

    torch.manual_seed(0)
    first = batches(7)
    torch.manual_seed(1)
    assert batches(7) == first and batches(8) != first

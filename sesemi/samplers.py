"""Samplers for training loaders: repeating small data sets, pass after pass, class-balanced batches."""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sized

import torch
from torch import Tensor
from torch.utils.data import BatchSampler, Sampler, SequentialSampler

from sesemi.errors import SesemiError
from sesemi.streams import SeededBatch, stream_seed


class RepeatingRandomSampler(Sampler[int]):
    """Shuffles the data set, and repeats it with fresh shuffles until `min_samples` are drawn.

    A handful of labeled images may be fewer than one batch (or one batch per GPU); this keeps
    such a loader yielding full batches instead of none. On several processes each takes its
    share of the same draws (`sesemi.datamodule.share`).

    Args:
        data_source: The data set.
        min_samples: The least number of indices per epoch.
        seed: Shuffle with a generator of its own, restarted from this seed and the epoch at
            each epoch (so a resumed run shuffles as an unbroken one, and every process alike);
            None: with the global generator.
    """

    def __init__(self, data_source: Sized, min_samples: int = 0, seed: int | None = None):
        self.data_source = data_source
        self.num_samples = max(len(data_source), min_samples)
        self.seed = seed
        self.generator = None if seed is None else torch.Generator().manual_seed(seed)
        self.epoch: int | None = None

    def set_epoch(self, epoch: int) -> None:
        """Lightning calls this at the start of every epoch. Setting the current epoch again
        changes nothing: `PassByPassBatchSampler` draws an epoch's batches, and sets its epoch,
        before Lightning does."""
        if epoch == self.epoch:
            return
        self.epoch = epoch
        if self.generator is not None:
            self.generator.manual_seed(stream_seed(self.seed, epoch))

    def __len__(self) -> int:
        return self.num_samples

    def __iter__(self) -> Iterator[int]:
        n = len(self.data_source)
        passes = -(-self.num_samples // n)
        shuffles = [torch.randperm(n, generator=self.generator) for _ in range(passes)]
        return iter(torch.cat(shuffles)[: self.num_samples].tolist())


class PassByPassBatchSampler(BatchSampler):
    """The batches of one pass over `sampler` after another, `num_batches` an epoch, epoch after
    epoch without end.

    Each pass iterates `sampler` anew (a shuffling sampler shuffles again) and ends with its own
    smaller batch unless `drop_last`; each epoch starts a new pass. So the batches hold what a
    loader restarted after every pass and every epoch would give, but a loader with worker
    processes that iterates this once for the whole run (`sesemi.datamodule.UnbrokenLoader`)
    never waits for its workers to make the first batch of a pass or an epoch. The batches are
    drawn ahead of the epoch they belong to, before Lightning announces it, so the sampler is
    moved on to each epoch here (`set_epoch`), starting from the epoch it was last set to.

    With a `seed`, each batch is a `SeededBatch` whose seed is made from it, the epoch and the
    batch's number in the epoch: the seed its items are augmented with (sesemi/streams.py),
    whichever process loads it and whenever.

    Args:
        sampler: The items of one pass, in order.
        batch_size: The items of a full batch.
        drop_last: Whether to drop each pass's last, smaller batch.
        num_batches: The batches of one epoch.
        skip: Batches at the start of the first epoch to draw but not yield: those a resumed
            run took before it stopped.
        seed: The loader's augmentation seed (None: plain lists of indices).
    """

    def __init__(
        self,
        sampler: Sampler[int],
        batch_size: int,
        drop_last: bool,
        num_batches: int,
        skip: int = 0,
        seed: int | None = None,
    ):
        super().__init__(sampler, batch_size, drop_last)
        self.num_batches = num_batches
        self.skip = skip
        self.seed = seed

    def __len__(self) -> int:
        return self.num_batches

    def __iter__(self) -> Iterator[list[int]]:
        set_epoch = getattr(self.sampler, "set_epoch", None)
        epoch = getattr(self.sampler, "epoch", None) or 0
        skip, self.skip = self.skip, 0
        while True:
            if callable(set_epoch):
                set_epoch(epoch)
            produced = 0
            for number, batch in itertools.islice(enumerate(self._one_epoch()), skip, None):
                yield batch if self.seed is None else SeededBatch(batch, stream_seed(self.seed, epoch, number))
                produced += 1
            skip = 0
            if produced == 0:  # no pass gives a batch: more epochs would not either
                return
            epoch += 1

    def _one_epoch(self) -> Iterator[list[int]]:
        produced = 0
        while produced < self.num_batches:
            before = produced
            for batch in super().__iter__():
                yield batch
                produced += 1
                if produced == self.num_batches:
                    return
            if produced == before:  # a pass without a batch
                return


class ClassBalancedBatchSampler(BatchSampler):
    """Batches of `classes_per_batch` (N) classes x `samples_per_class` (M) items of each.

    Every batch draws N distinct classes at random and M items of each (with replacement only
    when a class has fewer than M), so rare classes are seen as often as common ones. Use it as
    a loader's `batch_sampler`; the data module passes the loader's `batch_size`, which must be
    N x M. On several processes the data module passes each process its share of the data as
    `sampler`, and each process draws its batches from its share.

    Args:
        data_source: A labeled data set with `targets` (class indices).
        classes_per_batch: N, the classes in each batch.
        samples_per_class: M, the items of each class in a batch.
        batch_size: The loader's batch size, checked against N x M (None: not checked).
        num_batches: Batches per epoch (default: as many as cover the items once).
        sampler: The items to draw from (default: all of `data_source`).
        seed: The seed of the draws (a run gives its loader's, see sesemi/streams.py); None
            draws from torch's global generator.
    """

    def __init__(
        self,
        data_source: Sized,
        classes_per_batch: int,
        samples_per_class: int,
        batch_size: int | None = None,
        num_batches: int | None = None,
        sampler: Sampler[int] | None = None,
        seed: int | None = None,
    ):
        size = classes_per_batch * samples_per_class
        if batch_size is not None and batch_size != size:
            raise SesemiError(
                f"the class-balanced batch sampler makes batches of classes_per_batch x samples_per_class = "
                f"{classes_per_batch} x {samples_per_class} = {size}, but batch_size is {batch_size}; "
                "make them equal"
            )
        targets = torch.as_tensor(getattr(data_source, "targets", []))
        if targets.numel() == 0 or bool((targets < 0).any()):
            raise SesemiError("the class-balanced batch sampler needs a labeled data set (with class targets)")
        num_classes = len(targets.unique())
        if classes_per_batch < 1 or samples_per_class < 1 or classes_per_batch > num_classes:
            raise SesemiError(
                f"classes_per_batch must be between 1 and the {num_classes} classes of the data, and "
                f"samples_per_class at least 1 (got {classes_per_batch} and {samples_per_class})"
            )
        self.targets = targets
        self.sampler = sampler if sampler is not None else SequentialSampler(data_source)
        self.classes_per_batch = classes_per_batch
        self.samples_per_class = samples_per_class
        self.batch_size = size
        self.drop_last = False
        self.num_batches = num_batches or max(1, len(self.sampler) // size)
        self.generator = torch.Generator().manual_seed(seed) if seed is not None else None

    def __len__(self) -> int:
        return self.num_batches

    def _draw(self, members: Tensor) -> Tensor:
        if len(members) >= self.samples_per_class:
            return members[torch.randperm(len(members), generator=self.generator)[: self.samples_per_class]]
        return members[torch.randint(len(members), (self.samples_per_class,), generator=self.generator)]

    def __iter__(self) -> Iterator[list[int]]:
        items = torch.as_tensor(list(self.sampler))
        labels = self.targets[items]
        members = [items[labels == c] for c in labels.unique()]
        if len(members) < self.classes_per_batch:
            raise SesemiError(
                f"this process's share of the data has {len(members)} classes, fewer than "
                f"classes_per_batch ({self.classes_per_batch}); lower classes_per_batch"
            )
        for _ in range(self.num_batches):
            chosen = torch.randperm(len(members), generator=self.generator)[: self.classes_per_batch]
            yield torch.cat([self._draw(members[c]) for c in chosen.tolist()]).tolist()

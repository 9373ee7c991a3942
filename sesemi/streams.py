"""Random streams of their own for training loaders, so that methods compare on the same batches.

With `run.seed` set, each training loader draws its shuffles from a generator seeded by the run's
seed and the loader's name, and augments each batch with the global generator seeded for that
batch alone: by the run's seed, the loader's name, the process's rank, the epoch and the batch's
number in the epoch (`SeededBatch`). Adding an unlabeled loader, or a loss head that draws random
numbers, then leaves the labeled loader's batches as they were: two methods run with the same
seed see the same labeled images in the same order, augmented alike, so the difference between
their results does not come from another draw of data. A batch is the same whether it is made in
the main process or in a loader process, and in a run resumed from a checkpoint (except the
clips `MixClips` mixes in: it draws them from the clips its own process saw last). Under DDP every
process shuffles alike, as Lightning's distributed sampler needs.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import torch
from torch.utils.data import Dataset


def stream_seed(*parts: object) -> int:
    """A 63-bit seed made from `parts` (a seed, a loader's name, ...), the same in every process."""
    digest = hashlib.blake2b(repr(parts).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") >> 1


class SeededBatch(list):
    """The indices of one batch and the seed its items are augmented with (what
    `sesemi.samplers.PassByPassBatchSampler` yields to a loader, and the loader hands to its
    data set, in whichever process makes the batch)."""

    def __init__(self, indices: Sequence[int], seed: int):
        super().__init__(indices)
        self.seed = seed


class SeededItems(list):
    """The items of one batch and the seed they were made with, handed to the collate function."""

    def __init__(self, items: Sequence[Any], seed: int | None):
        super().__init__(items)
        self.seed = seed


@contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Within the block, torch's global CPU generator starts from `seed`; it is set back after."""
    outer = torch.get_rng_state()
    torch.default_generator.manual_seed(seed)
    try:
        yield
    finally:
        torch.set_rng_state(outer)


class RandomStream:
    """A torch CPU random state of its own, made the global one within `with stream:`.

    Augmentations draw from the global generator; this lets a loader give them its own stream
    without changing them. Not reentrant.
    """

    def __init__(self, seed: int):
        self._state = torch.Generator().manual_seed(seed).get_state()
        self._outer: torch.Tensor | None = None

    @property
    def state(self) -> torch.Tensor:
        """The stream's random state (to save it with a checkpoint, and set it back)."""
        return self._state.clone()

    @state.setter
    def state(self, value: torch.Tensor) -> None:
        self._state = value.clone()

    def __enter__(self) -> None:
        self._outer = torch.get_rng_state()
        torch.set_rng_state(self._state)

    def __exit__(self, *exc_info: object) -> None:
        self._state = torch.get_rng_state()
        torch.set_rng_state(self._outer)


class StreamedDataset(Dataset):
    """`data` whose items are made with the random state of their batch: seeded by the batch's
    seed (a `SeededBatch`), else drawn from `stream` (main-process loading with a batch sampler
    that gives no seeds), else from the global generator (a loader process, seeded by its loader).
    """

    def __init__(self, data: Dataset, stream: RandomStream | None = None):
        self.data = data
        self.stream = stream

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, index: int) -> Any:
        return self.__getitems__([index])[0]

    def __getitems__(self, indices: Sequence[int]) -> SeededItems:
        """The items of one batch, under one switch of random state (the loader calls this)."""
        seed = getattr(indices, "seed", None)
        with _random_state(seed, self.stream):
            return SeededItems([self.data[i] for i in indices], seed)


class StreamedCollate:
    """A collate function (e.g. a jigsaw collator's random tiling) run with a random state of its
    batch's own, as `StreamedDataset` makes its items."""

    def __init__(self, collate_fn: Callable[[list[Any]], Any], stream: RandomStream | None = None):
        self.collate_fn = collate_fn
        self.stream = stream

    def __call__(self, items: list[Any]) -> Any:
        seed = getattr(items, "seed", None)
        with _random_state(None if seed is None else stream_seed(seed, "collate"), self.stream):
            return self.collate_fn(items)


@contextmanager
def _random_state(seed: int | None, stream: RandomStream | None) -> Iterator[None]:
    if seed is not None:
        with seeded(seed):
            yield
    elif stream is not None:
        with stream:
            yield
    else:
        yield

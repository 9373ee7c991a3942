"""Random streams of their own for training loaders, so that methods compare on the same batches.

With `run.seed` set, each training loader draws its shuffles, and the random augmentations made
in the main process, from streams seeded by the run's seed and the loader's name instead of from
the global generator (worker processes are seeded from the loader's own stream already). Adding
an unlabeled loader, or a loss head that draws random numbers, then leaves the labeled loader's
batches as they were: two methods run with the same seed see the same labeled images in the same
order, augmented alike, so the difference between their results does not come from another draw
of data. Under DDP every process shuffles alike, as Lightning's distributed sampler needs.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch.utils.data import Dataset


def stream_seed(*parts: object) -> int:
    """A 63-bit seed made from `parts` (a seed, a loader's name, ...), the same in every process."""
    digest = hashlib.blake2b(repr(parts).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") >> 1


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
    """`data` whose items are made with `stream` as the global random state (main-process loading)."""

    def __init__(self, data: Dataset, stream: RandomStream):
        self.data = data
        self.stream = stream

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, index: int) -> Any:
        return self.__getitems__([index])[0]

    def __getitems__(self, indices: Sequence[int]) -> list[Any]:
        """The items of one batch, under one switch of random state (the loader calls this)."""
        with self.stream:
            return [self.data[i] for i in indices]


class StreamedCollate:
    """A collate function (e.g. a jigsaw collator's random tiling) run with `stream`'s random state."""

    def __init__(self, collate_fn: Callable[[list[Any]], Any], stream: RandomStream):
        self.collate_fn = collate_fn
        self.stream = stream

    def __call__(self, items: list[Any]) -> Any:
        with self.stream:
            return self.collate_fn(items)

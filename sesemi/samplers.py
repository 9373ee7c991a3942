"""Samplers for training loaders."""

from __future__ import annotations

from collections.abc import Iterator, Sized

import torch
from torch.utils.data import Sampler


class RepeatingRandomSampler(Sampler[int]):
    """Shuffles the data set, and repeats it with fresh shuffles until `min_samples` are drawn.

    A handful of labeled images may be fewer than one batch (or one batch per GPU); this keeps
    such a loader yielding full batches instead of none. Deliberately not a RandomSampler, so
    that Lightning splits it across processes instead of replacing it.

    Args:
        data_source: The data set.
        min_samples: The least number of indices per epoch.
    """

    def __init__(self, data_source: Sized, min_samples: int = 0):
        self.data_source = data_source
        self.num_samples = max(len(data_source), min_samples)

    def __len__(self) -> int:
        return self.num_samples

    def __iter__(self) -> Iterator[int]:
        n = len(self.data_source)
        passes = -(-self.num_samples // n)
        order = torch.cat([torch.randperm(n) for _ in range(passes)])[: self.num_samples]
        return iter(order.tolist())

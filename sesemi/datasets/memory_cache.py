"""Decoded items kept in memory, so that each file of a small data set is decoded once per run.

A data set's files are decoded when it is built (images as uint8 tensors `[C, H, W]`, audio as
float32 waveforms `[T]`), by a thread per CPU core, into one flat buffer: loader processes then
share it as they share the rest of the data set (copy-on-write after a fork, one shared-memory
segment when spawned), instead of each decoding every file again at every epoch.

`cache: auto` (the default) keeps a data set in memory when it is small: at most
`CACHE_MAX_FILES` files (more would take long to decode when the run starts: a pool of 100k
files is listed, not decoded) whose decoded size, estimated from `SAMPLE_SIZE` files spread over
it, is at most `CACHE_LIMIT_BYTES`; decoding stops, and the data set is read from its files, as
soon as more than that is decoded (long recordings the estimate missed). Each data set
of a run has its own cache (the labeled and the unlabeled set both hold `train/`), and each
process of a multi-GPU run its own copy.
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Literal

import torch
from rich.filesize import decimal
from torch import Tensor

from sesemi.errors import SesemiError

logger = logging.getLogger(__name__)

Cache = Literal["auto", "memory", "none"]
CACHE_CHOICES = ("auto", "memory", "none")
CACHE_LIMIT_BYTES = 2**30  # 1 GiB of decoded items per data set with cache=auto
CACHE_MAX_FILES = 10_000  # files of a data set with cache=auto: 2 to 10 s of decoding small images
SAMPLE_SIZE = 16  # files decoded to estimate the size of a data set with cache=auto


def check_cache(cache: str) -> Cache:
    """A valid `cache` value, or a one-line error naming the choices."""
    if cache not in CACHE_CHOICES:
        raise SesemiError(f"dataset cache must be one of {', '.join(CACHE_CHOICES)}, not {cache!r}")
    return cache  # type: ignore[return-value]


class MemoryCache:
    """Tensors of one dtype (any shapes) in one flat buffer; an entry may be missing (None).

    Args:
        items: The tensors, in item order; None for an item that could not be decoded.
    """

    def __init__(self, items: Sequence[Tensor | None]):
        present = [item for item in items if item is not None]
        dtype = present[0].dtype if present else torch.uint8
        sizes = torch.tensor([0, *(0 if item is None else item.numel() for item in items)], dtype=torch.int64)
        self.starts = sizes.cumsum(0)[:-1]
        self.shapes = [None if item is None else tuple(item.shape) for item in items]
        self.buffer = (
            torch.cat([item.reshape(-1) for item in present])
            if present
            else torch.empty(0, dtype=dtype)
        )

    def __len__(self) -> int:
        return len(self.shapes)

    def __getitem__(self, index: int) -> Tensor | None:
        """The item as it was stored (a view of the buffer: not to be written to), or None."""
        shape = self.shapes[index]
        if shape is None:
            return None
        start = int(self.starts[index])
        return self.buffer[start : start + math.prod(shape)].view(shape)

    def keep(self, indices: Sequence[int]) -> None:
        """Keeps the entries at `indices` only, in that order (the buffer stays as it is)."""
        self.starts = self.starts[list(indices)]
        self.shapes = [self.shapes[i] for i in indices]


def decoding_threads() -> int:
    """One per core this process may use: Pillow, libsndfile and soxr decode outside the GIL."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def fill_cache(
    count: int, decode: Callable[[int], Tensor | None], cache: Cache, kind: str = "file"
) -> MemoryCache | None:
    """Decodes all `count` items into a `MemoryCache` (`cache="memory"`), only when they are at
    most `CACHE_MAX_FILES` that fit in `CACHE_LIMIT_BYTES` (`"auto"`), or not at all (`"none"`).

    Args:
        count: The number of items.
        decode: Item index -> its decoded tensor, or None when the file cannot be read.
        cache: The dataset's `cache` option.
        kind: What the items are called in the log.
    """
    if cache == "none" or count == 0:
        return None
    if cache == "auto" and count > CACHE_MAX_FILES:
        logger.info(
            "not caching %d %ss in memory: over the %d files of cache=auto",
            count,
            kind,
            CACHE_MAX_FILES,
        )
        return None
    sample_indices = sorted(
        {round(i * (count - 1) / max(1, SAMPLE_SIZE - 1)) for i in range(min(SAMPLE_SIZE, count))}
    )
    started = time.perf_counter()
    sample = {i: decode(i) for i in sample_indices}
    seconds_each = (time.perf_counter() - started) / len(sample)
    readable = [item for item in sample.values() if item is not None]
    if not readable:
        return None
    estimate = count * sum(item.numel() * item.element_size() for item in readable) / len(readable)
    if cache == "auto" and estimate > CACHE_LIMIT_BYTES:
        logger.info(
            "not caching %d %ss in memory: about %s decoded, over the 1 GiB of cache=auto",
            count,
            kind,
            decimal(round(estimate)),
        )
        return None
    threads = decoding_threads()
    seconds = seconds_each * (count - len(sample)) / threads
    took = f", {seconds:.0f} s on {threads} threads" if seconds >= 10 else ""
    logger.info("decoding %d %ss into memory (about %s%s)", count, kind, decimal(round(estimate)), took)
    rest = [i for i in range(count) if i not in sample]
    decoded = sum(item.numel() * item.element_size() for item in readable)
    with ThreadPoolExecutor(threads) as pool:
        for index, item in zip(rest, pool.map(decode, rest), strict=True):
            sample[index] = item
            decoded += 0 if item is None else item.numel() * item.element_size()
            if cache == "auto" and decoded > CACHE_LIMIT_BYTES:  # long files the sample missed
                pool.shutdown(cancel_futures=True)
                logger.info(
                    "not caching %d %ss in memory: over the 1 GiB of cache=auto after %d of them", count, kind, len(sample)
                )
                return None
    return MemoryCache([sample[i] for i in range(count)])

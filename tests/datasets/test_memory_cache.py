"""Decoded items kept in memory (sesemi/datasets/memory_cache.py): each file decoded once."""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch

from sesemi.datasets import memory_cache
from sesemi.datasets.image_file import image_file
from sesemi.datasets.image_folder import image_folder
from sesemi.errors import SesemiError


def test_a_small_data_set_is_decoded_once_into_memory(image_tree):
    """cache=auto: the same items (RGB images carrying their file name) as decoding each file
    when loaded, still there once the files are gone (they were read when the data set was
    built); memory holds their pixels as uint8 tensors."""
    cached = image_folder(str(image_tree.root), "train", cache="auto")
    decoded = image_folder(str(image_tree.root), "train", cache="none")
    assert cached.memory is not None and decoded.memory is None
    assert cached.memory[0].dtype == torch.uint8 and cached.memory[0].shape == (3, 16, 16)
    expected = [decoded[i] for i in range(len(decoded))]
    for path, _ in cached.samples:
        (image_tree.root / path).unlink()
    for (image, label), (want, want_label) in zip(
        (cached[i] for i in range(len(cached))), expected, strict=True
    ):
        assert image.mode == "RGB" and image.info["filename"] == want.info["filename"]
        assert np.array_equal(np.asarray(image), np.asarray(want)) and label == want_label


def test_the_log_gives_a_small_data_set_its_size_in_kilobytes(image_tree, caplog):
    """9 images of 16x16x3 bytes: `about 6.9 kB`, where it said `about 0.0 MB`."""
    caplog.set_level("INFO")
    image_folder(str(image_tree.root), "train", cache="auto")
    assert "decoding 9 images into memory (about 6.9 kB)" in caplog.text


def test_auto_lists_a_large_pool_without_decoding_it(image_tree, monkeypatch):
    """More files than cache=auto takes: none is decoded when the data set is built."""
    monkeypatch.setattr(memory_cache, "CACHE_MAX_FILES", 3)
    reads = []
    monkeypatch.setattr("sesemi.datasets.images.read_image", lambda path: reads.append(path))
    data = image_file(str(image_tree.root), ["unlabeled"], cache="auto")
    assert len(data) == 4 and data.memory is None and reads == []


def test_auto_leaves_out_a_data_set_too_large_for_memory(image_tree, monkeypatch):
    monkeypatch.setattr(memory_cache, "CACHE_LIMIT_BYTES", 1000)  # 9 images of 16x16x3 bytes
    assert image_folder(str(image_tree.root), "train", cache="auto").memory is None
    assert image_folder(str(image_tree.root), "train", cache="memory").memory is not None


def test_auto_stops_decoding_once_over_the_limit_the_estimate_missed(monkeypatch):
    """A block of long recordings between the files the estimate samples: decoding stops when
    the decoded size passes the limit, instead of holding many times it in memory."""
    monkeypatch.setattr(memory_cache, "CACHE_LIMIT_BYTES", 10_000)
    monkeypatch.setattr(memory_cache, "decoding_threads", lambda: 1)
    sampled = {round(i * 99 / 15) for i in range(16)}
    decoded = []

    def decode(index: int) -> torch.Tensor:
        decoded.append(index)
        time.sleep(0.01)  # decoding takes time: what is not yet decoded can be called off
        return torch.zeros(10 if index in sampled else 1000, dtype=torch.float32)  # 40 B or 4 kB

    assert memory_cache.fill_cache(100, decode, "auto") is None
    assert len(decoded) < 16 + 10  # three long ones pass the limit; a few more may be under way
    assert memory_cache.fill_cache(100, decode, "memory") is not None  # what the user asked for


def test_an_unknown_cache_names_the_choices(image_tree):
    with pytest.raises(
        SesemiError, match=r"^dataset cache must be one of auto, memory, none, not 'disk'$"
    ):
        image_folder(str(image_tree.root), "train", cache="disk")


def test_files_are_decoded_on_every_core_and_kept_in_order(monkeypatch):
    """Decoding a pool of photos at the start takes minutes on one core: threads share it, and
    each item still lands in its own place."""
    import threading
    import time

    monkeypatch.setattr(memory_cache, "decoding_threads", lambda: 4)
    threads = set()

    def decode(index: int) -> torch.Tensor:
        threads.add(threading.get_ident())
        time.sleep(0.005)  # as a decoder does, outside the GIL
        return torch.full((index % 3 + 1,), index, dtype=torch.int64)

    kept = memory_cache.fill_cache(80, decode, "memory")
    assert len(threads) > 1
    assert all(torch.equal(kept[i], torch.full((i % 3 + 1,), i)) for i in range(80))

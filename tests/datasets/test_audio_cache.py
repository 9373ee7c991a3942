"""The cache of decoded audio (sesemi/datasets/audio_cache.py)."""

from __future__ import annotations

import os

import numpy as np
from audio_samples import tone, write

from sesemi.datasets.audio_cache import AudioCache


def test_an_entry_is_keyed_by_rate_path_size_and_mtime(tmp_path):
    source = write(tmp_path / "data" / "train" / "a" / "x.wav", tone(440))
    cache = AudioCache(tmp_path / "data", 16000)
    entry = cache.entry(source)
    stat = source.stat()
    assert entry == tmp_path / "data" / ".sesemi_cache" / "audio" / "16000" / "train" / "a" / (
        f"x.wav.{stat.st_size}-{stat.st_mtime_ns}.npy"
    )
    assert AudioCache(tmp_path / "data", 8000).entry(source).parent.parent.parent.name == "8000"
    assert cache.entry(tmp_path / "elsewhere.wav") is None


def test_store_load_and_invalidation(tmp_path):
    source = write(tmp_path / "x.flac", tone(440))
    cache = AudioCache(tmp_path, 16000, tmp_path / "cache")
    assert cache.load(source) is None
    cache.store(source, np.arange(5, dtype=np.float32))
    assert cache.load(source).tolist() == [0, 1, 2, 3, 4]
    assert list(cache.stale()) == []
    os.utime(source, ns=(0, 10**18))  # touched: the entry no longer matches
    assert cache.load(source) is None
    assert len(list(cache.stale())) == 1
    source.unlink()
    assert len(list(cache.stale())) == 1  # the source is gone


def test_roots_sharing_a_cache_folder_have_their_own_entries(tmp_path):
    """Two data sets with the same relative paths in one cache folder: neither's entries are
    the other's, nor out of date for it."""
    shared = tmp_path / "shared"
    a = AudioCache(tmp_path / "a", 16000, shared)
    b = AudioCache(tmp_path / "b", 16000, shared)
    a.store(write(tmp_path / "a" / "train" / "x.wav", tone(440)), np.zeros(3, np.float32))
    b.store(write(tmp_path / "b" / "train" / "x.wav", tone(880, seconds=0.25)), np.ones(3, np.float32))
    assert a.load(tmp_path / "a" / "train" / "x.wav").tolist() == [0, 0, 0]
    assert b.load(tmp_path / "b" / "train" / "x.wav").tolist() == [1, 1, 1]
    assert list(a.stale()) == list(b.stale()) == []
    assert a.folder.parent.name.startswith("a-") and a.folder.parent.parent == shared


def test_a_root_folder_linked_out_of_a_shared_cache_has_nothing_stale(tmp_path):
    """A shared cache folder whose folder for a root is a symlink elsewhere: the files there
    are not the cache's, so none is reported out of date (which preprocess would delete)."""
    shared, elsewhere = tmp_path / "shared", tmp_path / "elsewhere"
    cache = AudioCache(tmp_path / "a", 16000, shared)
    victim = elsewhere / "16000" / "train" / "gone.wav.12-34.npy"  # named like an entry of a removed file
    victim.parent.mkdir(parents=True)
    victim.write_bytes(b"the user's")
    shared.mkdir()
    cache.folder.parent.symlink_to(elsewhere, target_is_directory=True)
    assert list(cache.stale()) == []

"""`audio_folder` and `audio_file`: labeled recordings in class folders, and unlabeled ones.

The standard layout, as for images: `<root>/train/<class>/*.wav`, `<root>/unlabeled/*.flac`,
`<root>/val/<class>/*.mp3`. Items are waveforms `[T]` (mono float32 at `sample_rate`) before the
transform, which crops or pads them to a fixed length (see sesemi/transforms/audio.py). A small
data set is decoded and resampled once, when it is built, and kept in memory
(`sesemi.datasets.memory_cache`); a larger one is decoded whenever a clip is loaded, from the
preprocess cache when there is one.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from sesemi.datasets.audio_cache import AudioCache
from sesemi.datasets.images import (
    FileDataset,
    OnError,
    class_samples,
    subset_dirs,
    unlabeled_samples,
)
from sesemi.datasets.memory_cache import Cache
from sesemi.datasets.registry import register_dataset
from sesemi.errors import SesemiError
from sesemi.transforms.audio import AudioReadError, is_audio_file, load_audio, load_stretch

logger = logging.getLogger(__name__)

DEFAULT_SAMPLE_RATE = 16000


class AudioDataset(FileDataset):
    """`(waveform, label)` items: files decoded to mono at `sample_rate`, or read from the cache.

    A data set not kept in memory whose transform is a `MultiView` of clips reads one stretch of
    each file, as long as the `MultiView`'s `segment` (`load_stretch`): the views of an item of
    an hour-long recording cost a few seconds of it, not the hour.

    Args:
        samples: `(path, label)` pairs.
        classes: The class names.
        transform: A transform of each waveform `[T]` (e.g. a fixed-length crop).
        on_error: "skip" unreadable files (with a warning) or "raise" on the first one.
        sample_rate: The sample rate the files are resampled to.
        disk_cache: The preprocess cache to read before decoding (None: always decode).
        cache: Keep the decoded clips in memory: "auto" (when small), "memory" or "none", as
            the data set builders' `cache`.
    """

    kind = "audio file"
    read_errors = (AudioReadError, OSError)

    def __init__(
        self,
        samples: Sequence[tuple[str, int]],
        classes: Sequence[str],
        transform: Callable | None = None,
        on_error: OnError = "skip",
        sample_rate: int = DEFAULT_SAMPLE_RATE,
        disk_cache: AudioCache | None = None,
        cache: Cache = "auto",
    ):
        if sample_rate <= 0:
            raise SesemiError(f"sample_rate must be a positive number of Hz, not {sample_rate}")
        self.sample_rate = int(sample_rate)
        self.disk_cache = disk_cache
        self.stretch: int | None = None  # none while the memory cache is filled: whole files
        super().__init__(samples, classes, transform, on_error, cache)
        segment = getattr(transform, "segment", None)  # a `MultiView` of clips: one stretch per item
        self.stretch = segment.length if self.memory is None and segment is not None else None
        if self.memory is None and disk_cache is None and cache != "none":  # "none": as the user chose
            logger.info(
                "reading each of %d audio files whenever a clip of it is loaded; `sesemi preprocess` "
                "decodes and resamples them once, into the cache training reads (docs/tutorials/audio.md)",
                len(self.samples),
            )

    def read(self, path: str) -> Tensor:
        samples = self.disk_cache.load(path) if self.disk_cache is not None else None
        if samples is None and self.stretch is not None:
            samples = load_stretch(path, self.sample_rate, self.stretch)
        elif samples is None:
            samples = load_audio(path, self.sample_rate)
        return torch.from_numpy(samples)


def preprocessed(root: str, sample_rate: int, cache_dir: str | None) -> AudioCache | None:
    """The preprocess cache of `root` when it exists (it is built by `sesemi preprocess`)."""
    cache = AudioCache(root, sample_rate, cache_dir)
    if not cache.folder.is_dir():
        return None
    logger.info("reading decoded audio from the cache in %s when it is up to date", cache.folder)
    return cache


@register_dataset("audio_folder")
def audio_folder(
    root: str,
    subset: str | Sequence[str] | None = None,
    image_transform: Callable | None = None,
    sample_rate: int = DEFAULT_SAMPLE_RATE,
    cache_dir: str | None = None,
    on_error: OnError = "skip",
    classes: Sequence[str] | None = None,
    cache: Cache = "auto",
) -> AudioDataset:
    """Labeled recordings: `<root>/<subset>/<class>/<file>`, any depth inside a class folder.

    Args:
        root: The data set's folder.
        subset: A subfolder such as "train", a list of them (concatenated, sharing one class
            list), or None to read class folders directly under `root`.
        image_transform: The transform of each waveform (the name all dataset builders share).
        sample_rate: The sample rate files are resampled to, in Hz.
        cache_dir: The preprocess cache's folder (default `<root>/.sesemi_cache/audio`); used
            when it exists.
        on_error: "skip" unreadable files (with a warning) or "raise" on the first one.
        classes: The class list that numbers the class folders, e.g. the training set's for a
            validation set (a folder of another class is an error); None: the folder names,
            sorted.
        cache: "auto" keeps the decoded clips in memory when at most 10k fit in 1 GiB, "memory" always,
            "none" decodes each file whenever it is loaded (see sesemi.datasets.memory_cache).
    """
    samples, classes = class_samples(subset_dirs(root, subset), is_audio_file, "audio file", classes)
    disk = preprocessed(root, sample_rate, cache_dir)
    return AudioDataset(samples, classes, image_transform, on_error, sample_rate, disk, cache)


@register_dataset("audio_file")
def audio_file(
    root: str,
    subset: str | Sequence[str] | None = None,
    image_transform: Callable | None = None,
    sample_rate: int = DEFAULT_SAMPLE_RATE,
    cache_dir: str | None = None,
    on_error: OnError = "skip",
    cache: Cache = "auto",
) -> AudioDataset:
    """Unlabeled recordings: every audio file under `root`/`subset`, searched recursively.

    Items are `(waveform, -1)`. With a list of subsets (e.g. `[train, unlabeled]`), folders that
    do not exist are skipped with a notice as long as one exists.

    Args:
        root: The data set's folder.
        subset: A subfolder, a list of them, or None for all of `root`.
        image_transform: The transform of each waveform (the name all dataset builders share).
        sample_rate: The sample rate files are resampled to, in Hz.
        cache_dir: The preprocess cache's folder (default `<root>/.sesemi_cache/audio`); used
            when it exists.
        on_error: "skip" unreadable files (with a warning) or "raise" on the first one.
        cache: "auto" keeps the decoded clips in memory when at most 10k fit in 1 GiB, "memory" always,
            "none" decodes each file whenever it is loaded (see sesemi.datasets.memory_cache).
    """
    samples = unlabeled_samples(subset_dirs(root, subset), is_audio_file, "audio")
    disk = preprocessed(root, sample_rate, cache_dir)
    return AudioDataset(samples, [], image_transform, on_error, sample_rate, disk, cache)


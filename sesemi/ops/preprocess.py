"""`preprocess`: decode and resample a folder of audio once, into the cache audio datasets read.

    sesemi preprocess data/my_sounds --sample-rate 16000
    sesemi preprocess -cn audio run.data_root=data/my_sounds

Training then reads float32 samples instead of decoding every epoch (sesemi/datasets/audio_cache.py).
Entries of removed or changed files are deleted only from a cache folder sesemi made.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from contextlib import nullcontext
from dataclasses import dataclass
from itertools import repeat
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from sesemi.datamodule import dataset_root
from sesemi.datasets.audio_cache import AudioCache
from sesemi.datasets.audio_folder import DEFAULT_SAMPLE_RATE
from sesemi.datasets.builtin import build_on_first_use
from sesemi.datasets.images import (
    UnreadableLog,
    present_folders,
    require_dir,
    subset_dirs,
    unlabeled_samples,
)
from sesemi.errors import SesemiError
from sesemi.logs import RESULT, counted
from sesemi.ownership import MARKER, claim, within
from sesemi.transforms.audio import AudioReadError, is_audio_file, load_audio

logger = logging.getLogger(__name__)


def _cache_one(cache: AudioCache, path: str) -> str | None:
    """Writes the cache entry of `path`; returns why it cannot be read, or None."""
    try:
        cache.store(path, load_audio(path, cache.sample_rate))
    except AudioReadError as error:
        return str(error)
    return None


@dataclass(frozen=True)
class Preprocessed:
    """What `preprocess` did to one data set's cache (in `cache`, at `sample_rate` Hz)."""

    root: str  # the data set's folder
    sample_rate: int
    files: int  # audio files found
    written: int  # decoded into the cache now
    up_to_date: int  # already in the cache (files outside `root` are neither: they cannot be cached)
    unreadable: int  # skipped, with a warning
    removed: int  # entries of files removed or changed since, deleted
    stale_kept: int = 0  # such entries kept: the cache folder has no sesemi marker, or is a link out of root
    cache: str = ""

    def kept_note(self) -> str | None:
        """One line on the out-of-date entries kept, or None."""
        if not self.stale_kept:
            return None
        return (
            f"kept {self.stale_kept} entries that are not of the files here now: sesemi cannot prove {self.cache} is "
            f"this data set's own (it has no {MARKER} marker of its own, or is reached through a link out of "
            f"{self.root}), so it deletes nothing there"
        )


def preprocess(
    source: str | Path | DictConfig,
    sample_rate: int = 16000,
    cache_dir: str | Path | None = None,
    subset: str | Sequence[str] | None = None,
    num_workers: int = 0,
    on_error: str = "skip",
    progress: Callable[[int, int], None] | None = None,
) -> list[Preprocessed]:
    """Caches the decoded, resampled samples of a folder of recordings, or of every audio data
    set a composed config reads (its folders, at the sample rates and in the cache folders it sets).

    Args:
        source: A data set's folder (what training reads as `run.data_root`), or a config.
        sample_rate: For a folder: the sample rate of the cache.
        cache_dir: For a folder: the cache's folder (default `<root>/.sesemi_cache/audio`).
        subset: For a folder: a subfolder, a list of them, or None for all of it.
        num_workers: Decoding processes (0 decodes in this process).
        on_error: "skip" unreadable files (with a warning each) or "raise" on the first one.
        progress: Called as `progress(done, total)` as the files of a data set are decoded.

    Returns:
        What was done, per data set.
    """
    if on_error not in ("skip", "raise"):
        raise SesemiError(f"on_error must be 'skip' or 'raise', not {on_error!r}")
    if isinstance(source, DictConfig):
        targets = audio_data_sets(source)
    elif Path(source).is_file():
        raise SesemiError(f"{source} is a file; give the folder of recordings it is in")
    elif not Path(source).is_dir():
        raise SesemiError(f"folder of recordings {source} does not exist")
    else:
        targets = [(str(source), sample_rate, None if cache_dir is None else str(cache_dir), subset)]
    for _, rate, _, _ in targets:
        if rate <= 0:
            raise SesemiError(f"sample_rate must be a positive number of Hz, not {rate}")
    return [_preprocess_one(*target, num_workers, on_error, progress) for target in targets]


Target = tuple[str, int, str | None, tuple[str, ...] | None]  # root, sample rate, cache folder, subfolders


def audio_data_sets(config: DictConfig) -> list[Target]:
    """The (root, sample rate, cache folder, subfolders) of the audio data sets a config's
    loaders read; built-in data sets are built and missing folders refused, as training does.

    Data sets that share a root, rate and cache folder are one target, of all their subfolders
    (None: all of the root)."""
    loaders = [*(config.data.train or {}).values(), config.data.val, config.data.test]
    datasets = [loader.dataset for loader in loaders if loader and loader.get("dataset")]
    subsets: dict[tuple[str, int, str | None], set[str] | None] = {}
    for dataset in datasets:
        name = str(dataset.get("name", ""))
        if not name.startswith("audio"):
            continue
        root = Path(dataset_root(dataset, config.run.data_root))
        build_on_first_use(root)
        subset = dataset.get("subset")
        names = None if subset is None else [subset] if isinstance(subset, str) else [str(s) for s in subset]
        _require_folders(name, subset_dirs(root, names))
        key = (str(root), int(dataset.get("sample_rate") or DEFAULT_SAMPLE_RATE), dataset.get("cache_dir"))
        known = subsets.setdefault(key, set())
        subsets[key] = None if known is None or names is None else known | set(names)
    if not subsets:
        raise SesemiError("the config reads no audio data sets")
    return sorted((*key, None if names is None else tuple(sorted(names))) for key, names in subsets.items())


def _require_folders(name: str, folders: list[Path]) -> None:
    """Fails on missing folders as building the data set would: on any missing folder of
    labeled recordings (`audio_folder`), on unlabeled ones only when none of them exists."""
    if name != "audio_folder":
        present_folders(folders)
        return
    for folder in folders:
        require_dir(folder)


def _preprocess_one(
    root: str, sample_rate: int, cache_dir: str | None, subset: Any, num_workers: int, on_error: str, progress: Any
) -> Preprocessed:
    found = unlabeled_samples(subset_dirs(root, subset), is_audio_file, "audio")
    files = list(dict.fromkeys(path for path, _ in found))  # once, however many subfolders hold it
    cache = AudioCache(root, sample_rate, cache_dir)
    stale = list(cache.stale())
    # A cache reached through a link out of the data set (`.sesemi_cache` linked to another's) is
    # read and written, but its entries are never deleted from here; one given as --cache-dir is.
    inside = cache.shared or within(cache.base, cache.root)
    removed = stale if inside and claim(cache.base, "cache") else []
    for path in removed:
        path.unlink()
    entries = {path: cache.entry(path) for path in files}
    outside = [path for path, entry in entries.items() if entry is None]  # a subset of ../other: not cacheable
    if outside:
        logger.warning(
            "%s outside %s (e.g. %s) cannot be cached there: training decodes them each time; move them under it",
            counted(len(outside), "file"), root, outside[0],
        )
    todo = [path for path, entry in entries.items() if entry is not None and not entry.is_file()]
    unreadable = UnreadableLog("audio file")
    with ProcessPoolExecutor(num_workers) if num_workers > 0 else nullcontext() as pool:
        errors = pool.map(_cache_one, repeat(cache), todo, chunksize=16) if pool else map(_cache_one, repeat(cache), todo)
        for done, (path, error) in enumerate(zip(todo, errors, strict=True), 1):
            if progress is not None:
                progress(done, len(todo))
            if error is None:
                continue
            if on_error == "raise":
                raise SesemiError(f"cannot read audio file {path} ({error}); remove it or set on_error=skip")
            unreadable.skip(path, error)
    unreadable.close()
    result = Preprocessed(
        root,
        sample_rate,
        len(files),
        len(todo) - unreadable.count,
        len(files) - len(todo) - len(outside),
        unreadable.count,
        len(removed),
        len(stale) - len(removed),
        str(cache.base),
    )
    logger.info("cached %s at %d Hz in %s: %s", root, sample_rate, cache.folder, result, extra=RESULT)
    return result

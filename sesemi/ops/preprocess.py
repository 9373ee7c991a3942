"""`preprocess`: decode and resample a folder of audio once, into the cache audio datasets read.

    open_sesemi -cn ops/preprocess root=./data/my_sounds sample_rate=16000

Training then reads float32 samples instead of decoding compressed files every epoch. An entry
is rewritten when its source file's size or modification time changes, and a sample rate has its
own entries (see sesemi/datasets/audio_cache.py); entries of removed or changed files are deleted.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from itertools import repeat
from pathlib import Path
from typing import Any

from tqdm import tqdm

from sesemi.datasets.audio_cache import AudioCache
from sesemi.datasets.images import subset_dirs
from sesemi.errors import SesemiError
from sesemi.transforms.audio import AudioReadError, is_audio_file, load_audio

logger = logging.getLogger(__name__)


def _cache_one(cache: AudioCache, path: Path) -> str | None:
    """Writes the cache entry of `path`; returns why it cannot be read, or None."""
    try:
        cache.store(path, load_audio(path, cache.sample_rate))
    except AudioReadError as error:
        return str(error)
    return None


def _report(paths: list[Path], errors: Iterable[str | None], on_error: str) -> int:
    """Follows the decoding with a progress bar; returns the number of unreadable files."""
    unreadable = 0
    for path, error in tqdm(zip(paths, errors, strict=True), total=len(paths), desc="decoding", unit="file"):
        if error is None:
            continue
        if on_error == "raise":
            raise SesemiError(f"cannot read audio file {path} ({error}); remove it or set on_error=skip")
        unreadable += 1
        logger.warning("skipping unreadable audio file %s (%s)", path, error)
    return unreadable


def preprocess(
    root: str,
    sample_rate: int = 16000,
    cache_dir: str | None = None,
    subset: str | Sequence[str] | None = None,
    num_workers: int = 0,
    on_error: str = "skip",
) -> dict[str, Any]:
    """Caches the decoded, resampled samples of every audio file under `root` (or its subsets).

    Args:
        root: The data set's folder (the one training reads as `run.data_root`).
        sample_rate: The sample rate of the cached samples (the training config's).
        cache_dir: The cache's folder (default `<root>/.sesemi_cache/audio`); datasets must be
            given the same `cache_dir`.
        subset: A subfolder, a list of them, or None for all of `root`.
        num_workers: Decoding processes (0 decodes in this process).
        on_error: "skip" unreadable files (with a warning each) or "raise" on the first one.

    Returns:
        Counts: files, written, up_to_date, unreadable, removed (stale entries deleted).
    """
    if on_error not in ("skip", "raise"):
        raise SesemiError(f"on_error must be 'skip' or 'raise', not {on_error!r}")
    if not Path(root).is_dir():
        raise SesemiError(f"root {root} does not exist; point it at the folder of your recordings")
    cache = AudioCache(root, sample_rate, cache_dir)
    folders = [f for f in subset_dirs(root, subset) if f.is_dir()]
    files = [p for f in folders for p in sorted(f.rglob("*")) if is_audio_file(p)]
    if not files:
        raise SesemiError(f"no audio files under {root}" + (f" in {subset}" if subset else ""))
    removed = 0
    for stale in list(cache.stale()):
        stale.unlink()
        removed += 1
    todo = [p for p in files if not cache.entry(p).is_file()]
    if num_workers > 0:
        with ProcessPoolExecutor(num_workers) as pool:
            unreadable = _report(todo, pool.map(_cache_one, repeat(cache), todo, chunksize=16), on_error)
    else:
        unreadable = _report(todo, map(_cache_one, repeat(cache), todo), on_error)
    counts = {
        "files": len(files),
        "written": len(todo) - unreadable,
        "up_to_date": len(files) - len(todo),
        "unreadable": unreadable,
        "removed": removed,
    }
    logger.info("cached %s at %d Hz in %s: %s", root, sample_rate, cache.folder, counts)
    return counts

"""A cache of decoded, resampled audio, so compressed files are decoded once, not every epoch.

Each source file `<root>/<relative path>` has at most one entry,
`<root>/.sesemi_cache/audio/<sample_rate>/<relative path>.<size>-<mtime_ns>.npy` (mono float32
samples). The source's size and modification time are part of the name, so an edited or
replaced file misses the cache instead of returning stale samples, and another sample rate reads
another folder. A cache folder given elsewhere may be shared by several data sets, whose files
have the same relative paths (`train/dog/1.wav`): there each root has its own folder,
`<cache_dir>/<root's name>-<hash of its path>/<sample_rate>/...`.
`sesemi preprocess` (sesemi/ops/preprocess.py) fills the cache; audio datasets read it. The
cache's folder carries sesemi's marker (kind `cache`): out-of-date entries are deleted only from
a folder that has it.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from sesemi.ownership import open_atomically, walk, within

DEFAULT_CACHE_DIR = ".sesemi_cache/audio"  # under the data set's root
_STAMP = re.compile(r"^(?P<name>.+)\.(?P<size>\d+)-(?P<mtime>\d+)\.npy$")


class AudioCache:
    """The cache entries of the audio files under `root` at `sample_rate`.

    Args:
        root: The data set's folder; entries are keyed by paths relative to it.
        sample_rate: The sample rate of the cached samples.
        cache_dir: The cache's folder (default: `<root>/.sesemi_cache/audio`), which other
            roots may share.
    """

    def __init__(self, root: str | Path, sample_rate: int, cache_dir: str | Path | None = None):
        self.root = Path(os.path.abspath(root))
        self.sample_rate = int(sample_rate)
        default = self.root / DEFAULT_CACHE_DIR
        self.base = Path(cache_dir) if cache_dir is not None else default
        self.shared = Path(os.path.abspath(self.base)) != default  # other roots may use it: one folder each
        self.folder = (self.base / root_key(self.root) if self.shared else self.base) / str(self.sample_rate)

    def entry(self, source: str | Path) -> Path | None:
        """Where the samples of `source` in its current version are cached (None outside `root`)."""
        source = Path(os.path.abspath(source))  # symlinks are cached under their own name
        try:
            relative = source.relative_to(self.root)
            stat = source.stat()
        except (ValueError, OSError):
            return None
        return self.folder / relative.parent / f"{relative.name}.{stat.st_size}-{stat.st_mtime_ns}.npy"

    def load(self, source: str | Path) -> np.ndarray | None:
        """The cached samples of `source`, or None when they are missing or out of date.

        They are mapped from the file, not read: a clip cropped from an hour-long recording
        reads its own second of samples, not the hour (copy-on-write: the file is never changed).
        """
        path = self.entry(source)
        if path is None:
            return None
        try:
            return np.load(path, mmap_mode="c")
        except (OSError, ValueError):
            return None

    def store(self, source: str | Path, samples: np.ndarray) -> Path:
        """Caches `samples` for `source`, atomically (readers never see a partial file)."""
        path = self.entry(source)
        if path is None:
            raise ValueError(f"{source} is not under {self.root}")
        with open_atomically(path, "wb") as file:
            np.save(file, np.asarray(samples, dtype=np.float32))
        return path

    def stale(self) -> Iterator[Path]:
        """Entries whose source was changed or removed since they were written (found without
        following a symlink out of the cache folder, its root's folder in a shared one included)."""
        if not self.folder.is_dir() or self.folder.is_symlink() or not within(self.folder, self.base):
            return
        for folder in walk(self.folder):
            for path in sorted(folder.glob("*.npy")):
                match = _STAMP.match(path.name)
                if match is None or path.is_symlink() or not within(path, self.folder):
                    continue
                source = self.root / folder.relative_to(self.folder) / match["name"]
                if self.entry(source) != path:
                    yield path


def root_key(root: Path) -> str:
    """The name of a root's folder in a shared cache folder: its own name, for people, and a
    hash of its absolute path, so that two roots of the same name differ."""
    digest = hashlib.sha256(os.fsencode(root)).hexdigest()[:12]
    return f"{root.name or 'root'}-{digest}"

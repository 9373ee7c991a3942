"""Validation files that a training set also holds, reached through a link or copied there: the
model trains on what it is scored on, so its validation scores flatter it.

A file counts when it is a validation file (the same device and inode, by any path) or has the
bytes of one. Bytes are compared only between files of one size, first by a sample of 4 KiB
from their middle, then whole: a pool of compressed images or recordings reads almost nothing,
one of equal-length WAV clips one sample a file.
"""

from __future__ import annotations

import hashlib
import os
from collections import defaultdict
from collections.abc import Iterable, Mapping
from typing import NamedTuple

from torch.utils.data import Dataset

from sesemi.errors import printable
from sesemi.logs import counted

SAMPLE_BYTES = 4096

Identity = tuple[int, int]  # (device, inode)


class File(NamedTuple):
    path: str
    identity: Identity
    size: int


class ValidationFiles:
    """Finds the validation file that a file is, or copies; reads each file at most once."""

    def __init__(self, paths: Iterable[str]) -> None:
        self._files: dict[str, File | None] = {}
        self._samples: dict[Identity, bytes | None] = {}
        self._digests: dict[Identity, bytes | None] = {}
        self._by_size: dict[int, list[File]] = defaultdict(list)
        self._by_sample: dict[int, dict[bytes | None, list[File]]] = {}  # per size, when first asked
        files = self.stat(paths)
        self._by_identity = {file.identity: file for file in files}
        for file in files:
            self._by_size[file.size].append(file)

    def stat(self, paths: Iterable[str]) -> list[File]:
        """The files at `paths` that can be read (a vanished one is the data set's to report)."""
        paths = list(paths)
        for path in paths:
            if path not in self._files:
                try:
                    status = os.stat(path)
                    self._files[path] = File(path, (status.st_dev, status.st_ino), status.st_size)
                except OSError:
                    self._files[path] = None
        return [file for path in paths if (file := self._files[path]) is not None]

    def original(self, file: File) -> File | None:
        """The validation file that `file` is or has the bytes of, or None."""
        if file.identity in self._by_identity:
            return self._by_identity[file.identity]
        if file.size not in self._by_size:
            return None
        if file.size not in self._by_sample:
            self._by_sample[file.size] = by_sample = defaultdict(list)
            for original in self._by_size[file.size]:
                by_sample[self._sample(original)].append(original)
        alike = self._by_sample[file.size].get(self._sample(file), [])
        digest = self._digest(file) if alike else None
        return next((original for original in alike if digest is not None and self._digest(original) == digest), None)

    def _sample(self, file: File) -> bytes | None:
        """Up to `SAMPLE_BYTES` from the middle of the file (its header is alike across files);
        kept for validation files only, which are compared again and again (a pool's files once:
        kept, those of 100,000 equal-length clips would take 400 MB)."""
        if file.identity in self._samples:
            return self._samples[file.identity]
        try:
            with open(file.path, "rb") as stream:
                stream.seek(max(0, file.size // 2 - SAMPLE_BYTES // 2))
                sample = stream.read(SAMPLE_BYTES)
        except OSError:
            sample = None
        if file.identity in self._by_identity:
            self._samples[file.identity] = sample
        return sample

    def _digest(self, file: File) -> bytes | None:
        if file.identity not in self._digests:
            try:
                with open(file.path, "rb") as stream:
                    self._digests[file.identity] = hashlib.file_digest(stream, "blake2b").digest()
            except OSError:
                self._digests[file.identity] = None
        return self._digests[file.identity]


def _paths(data: Dataset) -> list[str]:
    return [path for path, _ in getattr(data, "samples", ())]


def validation_leaks(train: Mapping[str, Dataset], val: Dataset) -> list[str]:
    """A warning for each training set that holds validation files, by any path or as copies
    (`unlabeled/more -> ../val`, `train/cat/a.png` copied from `val/cat/`), said once for sets
    that hold the same ones (the pools of two methods' loaders). None when validation is the
    labeled set itself, as a config says with `data.val.dataset.subset=train`."""
    evaluated, labeled = _paths(val), _paths(train["supervised"]) if "supervised" in train else None
    if not evaluated or (labeled is not None and set(labeled) == set(evaluated)):
        return []
    validation = ValidationFiles(evaluated)
    warnings, reported = [], set()
    for name, data in train.items():
        held: dict[Identity, tuple[str, str]] = {}  # validation file -> (its path in the set, in val)
        for file in validation.stat(_paths(data)):
            if (original := validation.original(file)) is not None:
                held.setdefault(original.identity, (file.path, original.path))
        if not held or frozenset(held) in reported:
            continue
        reported.add(frozenset(held))
        inside, original_path = next(iter(held.values()))
        what = "labeled set" if name == "supervised" else "unlabeled pool"
        warnings.append(printable(
            f"the {what} holds {counted(len(held), 'validation file')}, linked or copied ({inside} is {original_path}): "
            "the model trains on them, so its validation scores flatter it; remove them there, or keep the sets apart"
        ))
    return warnings

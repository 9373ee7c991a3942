"""`pseudo`: a pseudo-labeled data set of images or recordings, as the `pseudo_dataset`
operation writes it.

The folder holds two files:

    labels.csv    path,label,confidence,p_<class 1>,...,p_<class C>  (one row per file; paths
                  relative to the folder; label is a class name; p_* are class probabilities)
    dataset.json  {"classes": [...], "soft_labels": true|false, "modality": "image"|"audio",
                   "sample_rate": <Hz, audio only>, "counts": {...}, "settings": {...}}

A folder the operation made carries sesemi's marker (kind `pseudo`); the two files are replaced
only in such a folder, each through a temporary name and a rename.

Xie et al., "Self-training with Noisy Student improves ImageNet classification", CVPR 2020,
https://arxiv.org/abs/1911.04252
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from sesemi.datasets.audio_folder import AudioDataset, preprocessed
from sesemi.datasets.images import (
    FileDataset,
    ImageDataset,
    OnError,
    require_dir,
    subset_dirs,
)
from sesemi.datasets.memory_cache import Cache
from sesemi.datasets.registry import register_dataset
from sesemi.errors import SesemiError, printable
from sesemi.ownership import MARKER, claim, owned, write_atomically

LABELS_FILE = "labels.csv"
INFO_FILE = "dataset.json"
PROBABILITY_PREFIX = "p_"
COLUMNS = ("path", "label", "confidence")
MODALITIES = ("image", "audio")


@register_dataset("pseudo")
def pseudo(
    root: str,
    subset: str | None = None,
    image_transform: Callable | None = None,
    soft_labels: bool | None = None,
    sample_rate: int | None = None,
    cache_dir: str | None = None,
    on_error: OnError = "skip",
    cache: Cache = "auto",
    bit_depth: int | None = None,
) -> FileDataset:
    """Reads a folder the `pseudo_dataset` operation wrote (see `sesemi pseudo-label`).

    Items are `(input, label)`: an image, or a waveform for a folder of recordings, and a class
    index (hard labels) or the teacher's class probabilities `[num_classes]` (soft labels), which
    `torch.nn.CrossEntropyLoss` takes as a target like an index. `targets` always holds the top
    classes (e.g. for samplers).

    Args:
        root: The data set's folder.
        subset: A subfolder of `root` that holds the files, or None for `root` itself.
        image_transform: A transform applied to each image (or waveform).
        soft_labels: Whether labels are class-probability vectors (True) or class indices
            (False); None follows the setting the folder was written with.
        sample_rate: Recordings are resampled to this rate in Hz; None: the teacher's. Only
            for a folder of recordings.
        cache_dir: The preprocess cache of the recordings under `root` (see `audio_folder`).
        on_error: "skip" unreadable files (with a warning) or "raise" on the first one.
        cache: "auto" keeps the decoded files in memory when at most 10k fit in 1 GiB, "memory" always,
            "none" decodes each file whenever it is loaded (see sesemi.datasets.memory_cache).
        bit_depth: The bits of the data in 16- and 32-bit integer images (as `image_folder`'s).
    """
    if subset is not None and not isinstance(subset, str):
        raise SesemiError(
            f"the pseudo dataset reads one folder; subset must be a name, not {subset!r}"
        )
    folder = subset_dirs(root, subset)[0]
    require_dir(folder)
    labels_path, info_path = folder / LABELS_FILE, folder / INFO_FILE
    if not labels_path.is_file() or not info_path.is_file():
        raise SesemiError(
            f"{folder} is not a pseudo-labeled data set (it needs {LABELS_FILE} and {INFO_FILE}); "
            "write one with: sesemi pseudo-label TEACHER DATA_ROOT"
        )
    try:
        info = json.loads(info_path.read_text())
        classes = [str(name) for name in info["classes"]]
        modality = info.get("modality", "image")  # folders of earlier releases hold images
        if modality not in MODALITIES:
            raise ValueError(modality)
    except (ValueError, KeyError, TypeError):
        raise SesemiError(
            f"{info_path} is malformed (no list of classes, or an unknown modality); write it again"
        ) from None
    if sample_rate is not None and modality != "audio":
        raise SesemiError(f"{folder} holds images, not recordings; drop its sample_rate setting")
    if bit_depth is not None and modality != "image":
        raise SesemiError(f"{folder} holds recordings, not images; drop data.bit_depth")
    index = {name: i for i, name in enumerate(classes)}
    with labels_path.open(newline="") as file:
        reader = csv.reader(file)
        header = next(reader, [])
        expected = [*COLUMNS, *(PROBABILITY_PREFIX + name for name in classes)]
        if header != expected:
            raise SesemiError(
                f"{labels_path} does not match the classes in {info_path}; write it again"
            )
        rows = list(reader)
    if not rows:
        raise SesemiError(f"{labels_path} lists no files (was the confidence threshold too high?)")
    try:
        paths = [os.path.join(folder, row[0]) for row in rows]  # absolute paths stay absolute
        targets = [index[row[1]] for row in rows]
        probabilities = torch.tensor(
            [[float(p) for p in row[3:]] for row in rows], dtype=torch.float32
        )
    except (KeyError, ValueError, IndexError) as error:
        raise SesemiError(
            f"{labels_path} is malformed ({type(error).__name__}: {error}); write it again"
        ) from None
    if not any(os.path.exists(path) for path in paths):  # a folder copied elsewhere: its paths are relative
        raise SesemiError(printable(
            f"none of the {len(paths)} files {labels_path} lists exists, e.g. {paths[0]}: its paths are relative "
            "to its folder; was the folder moved? label the data again with sesemi pseudo-label"
        ))
    soft = bool(info.get("soft_labels", True)) if soft_labels is None else soft_labels
    samples = list(zip(paths, list(probabilities) if soft else targets, strict=True))
    if modality == "image":
        data: FileDataset = ImageDataset(samples, classes, image_transform, on_error, cache, bit_depth)
    else:
        rate = sample_rate or info.get("sample_rate")
        if not isinstance(rate, int):
            raise SesemiError(f"{info_path} does not give the recordings' sample_rate; set the dataset's")
        disk = preprocessed(root, rate, cache_dir)
        data = AudioDataset(samples, classes, image_transform, on_error, rate, disk, cache)
    target_of = dict(zip(paths, targets, strict=True))  # by path: unreadable files may have been left out
    data.targets = [target_of[path] for path, _ in data.samples]
    return data


def check_output(folder: str | Path, overwrite: bool = False) -> None:
    """Refuses to replace `labels.csv` or `dataset.json` in `folder` without `overwrite`, or at
    all in a folder sesemi did not make (marked `pseudo`).

    Raises:
        SesemiError: One of the files exists and may not be replaced.
    """
    folder = Path(folder)
    existing = [folder / name for name in (LABELS_FILE, INFO_FILE) if os.path.lexists(folder / name)]
    if existing and not owned(folder, "pseudo"):
        raise SesemiError(
            f"will not overwrite {existing[0]}: {folder} was not made by sesemi pseudo-label "
            f"(no {MARKER} marker); choose another output folder"
        )
    if existing and not overwrite:
        raise SesemiError(f"{existing[0]} already exists; set overwrite=true to replace it")


def write_pseudo_dataset(
    folder: str | Path,
    paths: Sequence[str],
    probabilities: Tensor,
    classes: Sequence[str],
    soft_labels: bool,
    info: dict[str, Any],
    overwrite: bool = True,
) -> None:
    """Writes `labels.csv` and `dataset.json` into `folder`, each atomically; a new (or empty)
    folder is marked as sesemi's, and files are replaced only in such a folder.

    Args:
        folder: The output folder (created if needed).
        paths: The files (images or recordings), one per row of `probabilities`.
        probabilities: `[N, num_classes]` class probabilities; one-hot rows for labeled files.
        classes: The class names.
        soft_labels: Whether readers should yield probabilities (else class indices) by default.
        info: Further entries of `dataset.json` (modality, sample rate, counts, settings).
        overwrite: Replace the files of an earlier pseudo-labeled set (in a folder sesemi made).
    """
    folder = Path(folder)
    claim(folder, "pseudo")
    check_output(folder, overwrite)
    confidences, targets = probabilities.max(dim=1)
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow([*COLUMNS, *(PROBABILITY_PREFIX + name for name in classes)])
    base = folder.resolve()
    for path, target, confidence, row in zip(
        paths, targets.tolist(), confidences.tolist(), probabilities.tolist(), strict=True
    ):
        relative = Path(os.path.relpath(Path(path).resolve(), base)).as_posix()
        writer.writerow(
            [relative, classes[int(target)], f"{confidence:.6g}", *(f"{p:.6g}" for p in row)]
        )
    write_atomically(folder / LABELS_FILE, text.getvalue(), errors="surrogateescape", newline="")
    metadata = {"classes": list(classes), "soft_labels": soft_labels, **info}
    write_atomically(folder / INFO_FILE, json.dumps(metadata, indent=2) + "\n")

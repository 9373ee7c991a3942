"""`pseudo`: a pseudo-labeled data set, as written by the `pseudo_dataset` operation.

The folder holds two files:

    labels.csv    path,label,confidence,p_<class 1>,...,p_<class C>  (one row per image; paths
                  relative to the folder; label is a class name; p_* are class probabilities)
    dataset.json  {"classes": [...], "soft_labels": true|false, "counts": {...}, "settings": {...}}

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

from sesemi.datasets.images import ImageDataset, OnError, require_dir, subset_dirs
from sesemi.datasets.memory_cache import Cache
from sesemi.datasets.registry import register_dataset
from sesemi.errors import SesemiError
from sesemi.ownership import MARKER, claim, owned, write_atomically

LABELS_FILE = "labels.csv"
INFO_FILE = "dataset.json"
PROBABILITY_PREFIX = "p_"
COLUMNS = ("path", "label", "confidence")


class PseudoLabeledDataset(ImageDataset):
    """`(image, label)` items whose label is a class index (hard) or a probability vector (soft).

    A soft label is a float tensor `[num_classes]`, which torch.nn.CrossEntropyLoss takes as a
    target like a class index. `targets` always holds the class indices (e.g. for samplers).

    Args:
        paths: The image files.
        targets: Their class indices (the top class of each pseudo-label).
        probabilities: Their class probabilities `[N, num_classes]`.
        classes: The class names.
        soft_labels: Whether items carry `probabilities` rows (else `targets`).
        transform: A transform applied to each image.
        on_error: "skip" unreadable files (with a warning) or "raise" on the first one.
        cache: Keep the decoded images in memory: "auto" (when small), "memory" or "none".
    """

    def __init__(
        self,
        paths: Sequence[str],
        targets: Sequence[int],
        probabilities: Tensor,
        classes: Sequence[str],
        soft_labels: bool,
        transform: Callable | None = None,
        on_error: OnError = "skip",
        cache: Cache = "auto",
    ):
        labels = list(probabilities) if soft_labels else list(targets)
        super().__init__(list(zip(paths, labels, strict=True)), classes, transform, on_error, cache)
        self.targets = list(targets)
        self.soft_labels = soft_labels


@register_dataset("pseudo")
def pseudo(
    root: str,
    subset: str | None = None,
    image_transform: Callable | None = None,
    soft_labels: bool | None = None,
    on_error: OnError = "skip",
    cache: Cache = "auto",
) -> PseudoLabeledDataset:
    """Reads a folder the `pseudo_dataset` operation wrote (see `sesemi pseudo-label`).

    Args:
        root: The data set's folder.
        subset: A subfolder of `root` that holds the files, or None for `root` itself.
        image_transform: A transform applied to each image.
        soft_labels: Whether labels are class-probability vectors (True) or class indices
            (False); None follows the setting the folder was written with.
        on_error: "skip" unreadable files (with a warning) or "raise" on the first one.
        cache: "auto" keeps the decoded images in memory when at most 10k fit in 1 GiB, "memory" always,
            "none" decodes each file whenever it is loaded (see sesemi.datasets.memory_cache).
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
    except (ValueError, KeyError, TypeError):
        raise SesemiError(
            f"{info_path} is malformed (no list of classes); write it again"
        ) from None
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
        raise SesemiError(f"{labels_path} lists no images (was the confidence threshold too high?)")
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
    soft = bool(info.get("soft_labels", True)) if soft_labels is None else soft_labels
    return PseudoLabeledDataset(
        paths, targets, probabilities, classes, soft, image_transform, on_error, cache
    )


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
        paths: The image files, one per row of `probabilities`.
        probabilities: `[N, num_classes]` class probabilities; one-hot rows for labeled images.
        classes: The class names.
        soft_labels: Whether readers should yield probabilities (else class indices) by default.
        info: Further entries of `dataset.json` (e.g. counts and settings).
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

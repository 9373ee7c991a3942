"""`image_file`: unlabeled images, every image file under the chosen folders."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

from sesemi.datasets.images import (
    UNLABELED,
    ImageDataset,
    OnError,
    is_image_file,
    require_dir,
    subset_dirs,
)
from sesemi.datasets.registry import register_dataset
from sesemi.errors import SesemiError

logger = logging.getLogger(__name__)


@register_dataset("image_file")
def image_file(
    root: str,
    subset: str | Sequence[str] | None = None,
    image_transform: Callable | None = None,
    on_error: OnError = "skip",
) -> ImageDataset:
    """Unlabeled images: all image files under `root`/`subset`, searched recursively.

    Items are `(image, -1)`. With a list of subsets (e.g. `[train, unlabeled]`, the labeled images
    used without their labels plus the unlabeled ones), folders that do not exist are skipped
    with a notice as long as one exists.

    Args:
        root: The data set's folder.
        subset: A subfolder, a list of them, or None for all of `root`.
        image_transform: A transform applied to each image.
        on_error: "skip" unreadable files (with a warning) or "raise" on the first one.
    """
    folders = subset_dirs(root, subset)
    present = [f for f in folders if f.is_dir()]
    if not present:
        require_dir(folders[0])
    for missing in sorted(set(folders) - set(present)):
        logger.info("image_file: no folder %s, reading the others", missing)
    samples = [
        (str(path), UNLABELED)
        for folder in present
        for path in sorted(folder.rglob("*"))
        if is_image_file(path)
    ]
    if not samples:
        raise SesemiError(f"no image files under {', '.join(map(str, present))}")
    return ImageDataset(samples, classes=[], transform=image_transform, on_error=on_error)

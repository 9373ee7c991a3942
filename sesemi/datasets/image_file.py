"""`image_file`: unlabeled images, every image file under the chosen folders."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from sesemi.datasets.images import (
    ImageDataset,
    OnError,
    is_image_file,
    subset_dirs,
    unlabeled_samples,
)
from sesemi.datasets.memory_cache import Cache
from sesemi.datasets.registry import register_dataset


@register_dataset("image_file")
def image_file(
    root: str,
    subset: str | Sequence[str] | None = None,
    image_transform: Callable | None = None,
    on_error: OnError = "skip",
    cache: Cache = "auto",
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
        cache: "auto" keeps the decoded images in memory when at most 10k fit in 1 GiB, "memory" always,
            "none" decodes each file whenever it is loaded (see sesemi.datasets.memory_cache).
    """
    samples = unlabeled_samples(subset_dirs(root, subset), is_image_file)
    return ImageDataset(
        samples, classes=[], transform=image_transform, on_error=on_error, cache=cache
    )

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
    bit_depth: int | None = None,
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
        bit_depth: The bits of the data in 16- and 32-bit integer images (e.g. 12 for a 12-bit
            camera's, saved as 16 bits); None: the file's. The run passes `data.bit_depth`.
    """
    samples = unlabeled_samples(subset_dirs(root, subset), is_image_file)
    return ImageDataset(samples, [], image_transform, on_error, cache, bit_depth)

"""`image_folder`: labeled images in one folder per class (`<root>/<subset>/<class>/*.png`)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from sesemi.datasets.images import ImageDataset, OnError, class_samples, is_image_file, subset_dirs
from sesemi.datasets.memory_cache import Cache
from sesemi.datasets.registry import register_dataset


@register_dataset("image_folder")
def image_folder(
    root: str,
    subset: str | Sequence[str] | None = None,
    image_transform: Callable | None = None,
    on_error: OnError = "skip",
    classes: Sequence[str] | None = None,
    cache: Cache = "auto",
    bit_depth: int | None = None,
) -> ImageDataset:
    """Labeled images laid out as torchvision's ImageFolder.

    Args:
        root: The data set's folder.
        subset: A subfolder such as "train", a list of them (concatenated, sharing one class
            list), or None to read class folders directly under `root`.
        image_transform: A transform applied to each image.
        on_error: "skip" unreadable files (with a warning) or "raise" on the first one.
        classes: The class list that numbers the class folders, e.g. the training set's for a
            validation set (a folder of another class is an error); None: the folder names,
            sorted.
        cache: "auto" keeps the decoded images in memory when at most 10k fit in 1 GiB, "memory" always,
            "none" decodes each file whenever it is loaded (see sesemi.datasets.memory_cache).
        bit_depth: The bits of the data in 16- and 32-bit integer images (e.g. 12 for a 12-bit
            camera's, saved as 16 bits); None: the file's. The run passes `data.bit_depth`.
    """
    samples, classes = class_samples(subset_dirs(root, subset), is_image_file, classes=classes)
    return ImageDataset(samples, classes, image_transform, on_error, cache, bit_depth)

"""`image_folder`: labeled images in one folder per class (`<root>/<subset>/<class>/*.png`)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from sesemi.datasets.images import ImageDataset, OnError, is_image_file, require_dir, subset_dirs
from sesemi.datasets.registry import register_dataset
from sesemi.errors import SesemiError


@register_dataset("image_folder")
def image_folder(
    root: str,
    subset: str | Sequence[str] | None = None,
    image_transform: Callable | None = None,
    on_error: OnError = "skip",
) -> ImageDataset:
    """Labeled images laid out as torchvision's ImageFolder.

    Args:
        root: The data set's folder.
        subset: A subfolder such as "train", a list of them (concatenated, sharing one class
            list), or None to read class folders directly under `root`.
        image_transform: A transform applied to each image.
        on_error: "skip" unreadable files (with a warning) or "raise" on the first one.
    """
    folders = subset_dirs(root, subset)
    for folder in folders:
        require_dir(folder)
    classes = sorted({d.name for f in folders for d in f.iterdir() if d.is_dir()})
    if not classes:
        raise SesemiError(f"no class folders in {', '.join(map(str, folders))}; expected <class>/<image>")
    samples = [
        (str(path), label)
        for folder in folders
        for label, name in enumerate(classes)
        if (folder / name).is_dir()
        for path in sorted((folder / name).rglob("*"))
        if is_image_file(path)
    ]
    counts = {name: 0 for name in classes}
    for _, label in samples:
        counts[classes[label]] += 1
    empty = [name for name, count in counts.items() if count == 0]
    if empty:
        raise SesemiError(
            f"class folder(s) {', '.join(empty)} under {', '.join(map(str, folders))} hold no images; "
            "add images or remove the folder"
        )
    return ImageDataset(samples, classes, image_transform, on_error)

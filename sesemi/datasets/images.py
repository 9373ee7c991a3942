"""A dataset of image files with labels, robust to unreadable files."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal

from PIL import Image
from torch.utils.data import Dataset
from torchvision.datasets.folder import IMG_EXTENSIONS

from sesemi.errors import SesemiError

logger = logging.getLogger(__name__)

OnError = Literal["skip", "raise"]
UNLABELED = -1


def is_image_file(path: Path) -> bool:
    return path.suffix.lower() in IMG_EXTENSIONS


def read_image(path: str | Path) -> Image.Image:
    """An image file as RGB (grayscale and palette images are converted)."""
    with Image.open(path) as image:
        return image.convert("RGB")


def subset_dirs(root: str | Path, subset: str | Sequence[str] | None) -> list[Path]:
    """The folders a `subset` names under `root` (all of `root` when None)."""
    root = Path(root)
    if subset is None:
        return [root]
    names = [subset] if isinstance(subset, str) else list(subset)
    return [root / name for name in names]


def require_dir(path: Path) -> None:
    """Fails with one line when a data folder is missing."""
    if not path.is_dir():
        from sesemi.datasets.builtin import missing_data_hint

        raise SesemiError(f"data folder {path} does not exist{missing_data_hint(path)}")


def class_folders(folder: Path) -> list[Path]:
    """The class folders in `folder`: its subfolders, except hidden ones (`.sesemi_cache`, ...)."""
    return [d for d in folder.iterdir() if d.is_dir() and not d.name.startswith(".")]


def class_samples(
    folders: Sequence[Path],
    accept: Callable[[Path], bool],
    kind: str = "image",
    classes: Sequence[str] | None = None,
) -> tuple[list[tuple[str, int]], list[str]]:
    """`(path, class index)` for the accepted files under `<folder>/<class>/`, and the classes.

    Args:
        folders: The folders of class folders.
        accept: Whether a file is one to read.
        kind: What the files are called in messages.
        classes: The class list to number the folders by, e.g. the training set's for a
            validation set; its classes may lack a folder here, but every folder must be one of
            them. None: the subfolder names of all `folders`, sorted.

    Raises:
        SesemiError: A folder is missing, holds no class folders, a class folder holds no
            files, or a class folder is not in `classes`.
    """
    for folder in folders:
        require_dir(folder)
    found = sorted({d.name for f in folders for d in class_folders(f)})
    if not found:
        raise SesemiError(f"no class folders in {', '.join(map(str, folders))}; expected <class>/<{kind}>")
    if classes is None:
        classes = found
    else:
        classes = list(classes)
        for name in found:
            if name not in classes:
                where = next(f / name for f in folders if (f / name).is_dir())
                known = ", ".join(classes[:10]) + (", ..." if len(classes) > 10 else "")
                raise SesemiError(
                    f"class {name!r} ({where}) is not a class of the training set ({known}); "
                    "rename or remove the folder, or add the class to the training set"
                )
    samples = [
        (str(path), label)
        for folder in folders
        for label, name in enumerate(classes)
        if (folder / name).is_dir()
        for path in sorted((folder / name).rglob("*"))
        if accept(path)
    ]
    counts = {name: 0 for name in found}
    for _, label in samples:
        counts[classes[label]] += 1
    empty = [name for name, count in counts.items() if count == 0]
    if empty:
        raise SesemiError(
            f"class folder(s) {', '.join(empty)} under {', '.join(map(str, folders))} hold no {kind}s; "
            f"add {kind}s or remove the folder"
        )
    return samples, classes


def unlabeled_samples(
    folders: Sequence[Path], accept: Callable[[Path], bool], kind: str = "image"
) -> list[tuple[str, int]]:
    """`(path, -1)` for the accepted files under the `folders` that exist (at least one must)."""
    present = [f for f in folders if f.is_dir()]
    if not present:
        require_dir(folders[0])
    for missing in sorted(set(folders) - set(present)):
        logger.info("no folder %s, reading the others", missing)
    samples = [
        (str(path), UNLABELED)
        for folder in present
        for path in sorted(folder.rglob("*"))
        if accept(path)
    ]
    if not samples:
        raise SesemiError(f"no {kind} files under {', '.join(map(str, present))}")
    return samples


class FileDataset(Dataset):
    """`(input, label)` items read from a list of `(path, label)` samples by `read`.

    An unreadable or corrupt file either stops the run with its name (`on_error="raise"`) or is
    skipped (`on_error="skip"`, the default): the next readable file takes its place and a
    warning names each skipped file once, so nothing is dropped silently.
    """

    kind = "file"  # what the error messages call an item
    read_errors: tuple[type[BaseException], ...] = (OSError, ValueError)

    def __init__(
        self,
        samples: Sequence[tuple[str, Any]],
        classes: Sequence[str],
        transform: Callable | None = None,
        on_error: OnError = "skip",
    ):
        if on_error not in ("skip", "raise"):
            raise SesemiError(f"dataset on_error must be 'skip' or 'raise', not {on_error!r}")
        self.samples = list(samples)
        self.classes = list(classes)
        self.targets = [label for _, label in self.samples]
        self.transform = transform
        self.on_error = on_error
        self.skipped: set[str] = set()

    def read(self, path: str) -> Any:
        """The decoded content of one file."""
        raise NotImplementedError

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[Any, Any]:
        for offset in range(len(self.samples)):
            path, label = self.samples[(index + offset) % len(self.samples)]
            try:
                item = self.read(path)
            except self.read_errors as error:
                if self.on_error == "raise":
                    raise SesemiError(
                        f"cannot read {self.kind} {path} ({error}); remove it or set "
                        "dataset.on_error=skip to skip unreadable files"
                    ) from None
                if path not in self.skipped:
                    self.skipped.add(path)
                    logger.warning("skipping unreadable %s %s (%s)", self.kind, path, error)
                continue
            if self.transform is not None:
                item = self.transform(item)
            return item, label
        raise SesemiError(f"none of the {len(self.samples)} {self.kind}s of this data set can be read")


class ImageDataset(FileDataset):
    """`(image, label)` items: files read with Pillow and converted to RGB."""

    kind = "image"
    read_errors = (OSError, ValueError, SyntaxError)

    def read(self, path: str) -> Image.Image:
        return read_image(path)

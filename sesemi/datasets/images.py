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


class ImageDataset(Dataset):
    """`(image, label)` items read from a list of `(path, label)` samples.

    An unreadable or corrupt file either stops the run with its name (`on_error="raise"`) or is
    skipped (`on_error="skip"`, the default): the next readable file takes its place and a
    warning names each skipped file once, so nothing is dropped silently.
    """

    def __init__(
        self,
        samples: Sequence[tuple[str, int]],
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

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[Any, int]:
        for offset in range(len(self.samples)):
            path, label = self.samples[(index + offset) % len(self.samples)]
            try:
                with Image.open(path) as image:
                    image = image.convert("RGB")
            except (OSError, ValueError, SyntaxError) as error:
                if self.on_error == "raise":
                    raise SesemiError(
                        f"cannot read image {path} ({error}); remove it or set "
                        "dataset.on_error=skip to skip unreadable files"
                    ) from None
                if path not in self.skipped:
                    self.skipped.add(path)
                    logger.warning("skipping unreadable image %s (%s)", path, error)
                continue
            if self.transform is not None:
                image = self.transform(image)
            return image, label
        raise SesemiError(f"none of the {len(self.samples)} images of this data set can be read")

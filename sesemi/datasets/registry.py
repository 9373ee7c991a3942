"""The dataset registry and the `dataset(...)` factory every loader config goes through."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from torch.utils.data import Dataset

from sesemi.errors import SesemiError
from sesemi.registry import Registry

DATASETS: Registry[Callable[..., Dataset]] = Registry("dataset")


def register_dataset(name: str | Callable | None = None) -> Callable:
    """Registers a builder `(root, subset, image_transform, **kwargs) -> Dataset`, under `name`
    or its function's name; `@register_dataset` without a name works too, as in sesemi 0.3.

    Example:
        >>> @register_dataset("my_images")
        ... def my_images(root, subset=None, image_transform=None):
        ...     ...
    """
    if callable(name):  # used bare: `name` is the builder
        return DATASETS.register()(name)
    return DATASETS.register(name)


def dataset(
    name: str,
    root: str,
    subset: str | list[str] | None = None,
    image_transform: Callable | None = None,
    **kwargs: Any,
) -> Dataset:
    """Builds a registered dataset.

    Args:
        name: The registered name, e.g. "image_folder" or "image_file".
        root: The data set's folder.
        subset: A subfolder, a list of subfolders (concatenated), or None for all of `root`.
        image_transform: A transform applied to each image.
        **kwargs: Further arguments of the builder.

    Returns:
        The dataset; its items are `(input, label)` pairs, with label -1 for unlabeled data.
    """
    try:
        builder = DATASETS.get(name)
    except KeyError as e:
        raise SesemiError(e.args[0]) from None
    parameters = inspect.signature(builder).parameters
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values())
    unknown = sorted(set(kwargs) - set(parameters))
    if unknown and not takes_any:
        valid = ", ".join(p for p in parameters if p not in ("root", "subset", "image_transform"))
        raise SesemiError(
            f"dataset {name!r} does not take {', '.join(unknown)}; its options are: {valid or 'none'}"
        )
    return builder(root=root, subset=subset, image_transform=image_transform, **kwargs)

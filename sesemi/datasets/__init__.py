"""Datasets: the registry, the image and audio folder/file builders and the built-in data sets."""

from sesemi.datasets import (  # noqa: F401  (registers the builders)
    audio_folder,
    image_file,
    image_folder,
    pseudo,
    shards,
)
from sesemi.datasets.builtin import prepare_builtin
from sesemi.datasets.images import UNLABELED, ImageDataset
from sesemi.datasets.registry import DATASETS, dataset, register_dataset

__all__ = ["DATASETS", "UNLABELED", "ImageDataset", "dataset", "prepare_builtin", "register_dataset"]

"""Datasets: the registry, the image folder/file builders and the built-in data sets."""

from sesemi.datasets import image_file, image_folder, pseudo  # noqa: F401  (registers the builders)
from sesemi.datasets.builtin import prepare_builtin
from sesemi.datasets.images import UNLABELED, ImageDataset
from sesemi.datasets.registry import DATASETS, dataset, register_dataset

__all__ = ["DATASETS", "UNLABELED", "ImageDataset", "dataset", "prepare_builtin", "register_dataset"]

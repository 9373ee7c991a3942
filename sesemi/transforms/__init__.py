"""Data transforms."""

from sesemi.transforms.image import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    center_crop_transforms,
    to_normalized_tensor,
    train_transforms,
)

__all__ = ["IMAGENET_MEAN", "IMAGENET_STD", "center_crop_transforms", "to_normalized_tensor", "train_transforms"]

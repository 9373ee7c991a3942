"""Image transforms for training and evaluation, built from torchvision.transforms.v2."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torchvision.transforms import InterpolationMode
from torchvision.transforms import v2 as T

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def to_normalized_tensor(mean: Sequence[float], std: Sequence[float]) -> T.Compose:
    """PIL image (or uint8 tensor) -> float tensor (C, H, W), normalized."""
    return T.Compose(_to_normalized_tensor(mean, std))


def _to_normalized_tensor(mean: Sequence[float], std: Sequence[float]) -> list[T.Transform]:
    # Plain tensors rather than tv_tensors.Image: the same pixels, and each transform of a small
    # image costs less without the tensor subclass.
    return [T.PILToTensor(), T.ToDtype(torch.float32, scale=True), T.Normalize(mean, std)]


def train_transforms(
    random_resized_crop: bool = True,
    resize: int = 256,
    crop_dim: int = 224,
    scale: Sequence[float] = (0.08, 1.0),
    padding: int = 0,
    p_hflip: float = 0.5,
    interpolation: str = "bilinear",
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
) -> T.Compose:
    """The standard training augmentation.

    Args:
        random_resized_crop: Take a random crop of `scale` of the area, resized to `crop_dim`
            (ImageNet style); otherwise resize the short side to `resize` and take a random
            `crop_dim` crop after `padding` pixels of reflection padding (CIFAR style).
        resize: The short side before cropping (only without `random_resized_crop`).
        crop_dim: The output side length.
        scale: The range of crop areas for `random_resized_crop`.
        padding: Reflection padding before the random crop.
        p_hflip: The probability of a horizontal flip (0 for digits or text).
        interpolation: "bilinear", "bicubic" or "nearest".
        mean: The per-channel normalization mean.
        std: The per-channel normalization standard deviation.
    """
    mode = InterpolationMode(interpolation)
    if random_resized_crop:
        crop = [T.RandomResizedCrop(crop_dim, scale=tuple(scale), interpolation=mode, antialias=True)]
    else:
        # Pad and crop the uint8 tensor, not the PIL image: the same pixels, but Pillow's
        # reflection padding goes through NumPy and costs more than the rest of this transform.
        crop = [
            T.Resize(resize, interpolation=mode, antialias=True),
            T.PILToTensor(),
            T.RandomCrop(crop_dim, padding=padding or None, padding_mode="reflect"),
        ]
    flip = [T.RandomHorizontalFlip(p_hflip)] if p_hflip > 0 else []
    return T.Compose([*crop, *flip, *_to_normalized_tensor(mean, std)])


def center_crop_transforms(
    resize: int = 256,
    crop_dim: int = 224,
    interpolation: str = "bilinear",
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
) -> T.Compose:
    """The evaluation transform: resize the short side to `resize`, then a center crop."""
    mode = InterpolationMode(interpolation)
    return T.Compose(
        [
            T.Resize(resize, interpolation=mode, antialias=True),
            T.CenterCrop(crop_dim),
            *_to_normalized_tensor(mean, std),
        ]
    )

"""Input noise for a noisy student: RandAugment over the weak augmentation.

Xie et al., "Self-training with Noisy Student improves ImageNet classification", CVPR 2020,
https://arxiv.org/abs/1911.04252 (input noise: RandAugment, Cubuk et al. 2020,
https://arxiv.org/abs/1909.13719).
"""

from __future__ import annotations

from collections.abc import Sequence

from torchvision.transforms import v2 as T

from sesemi.transforms.image import IMAGENET_MEAN, IMAGENET_STD
from sesemi.transforms.views import strong_transforms, weak_transforms


def noisy_transforms(
    crop_dim: int = 32,
    padding: int | None = None,
    p_hflip: float = 0.5,
    interpolation: str = "bilinear",
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
    num_ops: int = 2,
    magnitude: int = 10,
    p_erase: float = 0.0,
    erase_scale: Sequence[float] = (0.02, 0.25),
) -> T.Compose:
    """`strong_transforms(weak_transforms(...))` with flat arguments.

    A config can swap it for `weak_transforms` by changing `_target_` and adding keys (Hydra
    cannot remove the inherited ones). The first six arguments are `weak_transforms`'s, the rest
    `strong_transforms`'s; Cutout is off by default, as in the paper.

    Args:
        crop_dim: The output side length; the short side is resized to it first.
        padding: Reflection padding before the random crop (None: 1/8 of `crop_dim`).
        p_hflip: The probability of a horizontal flip (0 for digits or text).
        interpolation: "bilinear", "bicubic" or "nearest".
        mean: The per-channel normalization mean.
        std: The per-channel normalization standard deviation.
        num_ops: RandAugment operations per image.
        magnitude: Their strength, out of 31 levels.
        p_erase: The probability of erasing a patch (Cutout).
        erase_scale: The range of the erased area as a fraction of the image.
    """
    weak = weak_transforms(
        crop_dim=crop_dim,
        padding=padding,
        p_hflip=p_hflip,
        interpolation=interpolation,
        mean=mean,
        std=std,
    )
    return strong_transforms(
        weak, num_ops=num_ops, magnitude=magnitude, p_erase=p_erase, erase_scale=erase_scale
    )

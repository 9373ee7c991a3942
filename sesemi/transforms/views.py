"""Several augmented views of one image, for consistency and pseudo-labeling methods.

The strong augmentation follows FixMatch (Sohn et al. 2020, https://arxiv.org/abs/2001.07685):
RandAugment (Cubuk et al. 2020, https://arxiv.org/abs/1909.13719) plus Cutout (DeVries & Taylor
2017, https://arxiv.org/abs/1708.04552), here torchvision's RandomErasing. RandAugment runs on a
PIL image (much faster there than on a uint8 tensor); the rest on tensors.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

from torchvision.transforms import v2 as T

from sesemi.transforms.audio import Segment, input_samples
from sesemi.transforms.image import IMAGENET_MEAN, IMAGENET_STD, ToPILImage, train_transforms


class MultiView:
    """Applies each transform to the same image: image -> (view_1, ..., view_k).

    With the default collate function a loader then yields `((views_1, ..., views_k), labels)`.
    Views of a waveform (`input_samples` knows what they read) are made of one random stretch of
    a long recording, twice as long as the longest view reads: the views of one item are of one
    moment, as an image's views are of one image (crops of a 10-minute recording were of any two
    moments), and a speed change resamples that stretch, not the recording.

    Args:
        transforms: One transform per view (repeat one for several random draws of it).
    """

    def __init__(self, transforms: Sequence[Callable[[Any], Any]]):
        if len(transforms) < 2:
            raise ValueError("MultiView needs at least two transforms")
        self.transforms = list(transforms)
        samples = [input_samples(transform) for transform in self.transforms]
        self.segment = None if None in samples else Segment(2 * max(samples))  # type: ignore[type-var]

    def __call__(self, image: Any) -> tuple[Any, ...]:
        if self.segment is not None:
            image = self.segment(image)
        return tuple(transform(image) for transform in self.transforms)


def weak_transforms(
    crop_dim: int = 32,
    padding: int | None = None,
    p_hflip: float = 0.5,
    interpolation: str = "bilinear",
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
) -> T.Compose:
    """FixMatch's weak augmentation for small images: resize, pad-and-crop, flip.

    Args:
        crop_dim: The output side length; the short side is resized to it first.
        padding: Reflection padding before the random crop (None: 1/8 of `crop_dim`, i.e. shifts
            of up to 12.5%).
        p_hflip: The probability of a horizontal flip (0 for digits or text).
        interpolation: "bilinear", "bicubic" or "nearest".
        mean: The per-channel normalization mean.
        std: The per-channel normalization standard deviation.
    """
    return train_transforms(
        random_resized_crop=False,
        resize=crop_dim,
        crop_dim=crop_dim,
        padding=crop_dim // 8 if padding is None else padding,
        p_hflip=p_hflip,
        interpolation=interpolation,
        mean=mean,
        std=std,
    )


# Steps that keep an image's proportions and can run on a smaller copy of it.
SCALE_FREE = (ToPILImage, T.PILToTensor, T.RandAugment, T.RandomHorizontalFlip)


def input_side(transform: Callable[[Any], Any] | None) -> int | None:
    """The short side an image needs for `transform` to make of it what it makes of the whole
    image, up to resampling, from its first resize when only `SCALE_FREE` steps come before it:
    twice the side a `Resize` makes (its antialiasing then still averages a few pixels into each,
    as on the whole image: views differ by a level or two of 255), or the side at which the
    smallest crop of a `RandomResizedCrop` still has its size. A `MultiView` needs the largest
    of its views'. None when it is not known (a step of another kind first, or no resize).

    `read_image(path, min_side=...)` reads a large photo at this size, much faster than whole.
    """
    if isinstance(transform, MultiView):
        sides = [input_side(view) for view in transform.transforms]
        return None if None in sides else max(sides)  # type: ignore[type-var]
    for step in transform.transforms if isinstance(transform, T.Compose) else [transform]:
        if isinstance(step, (T.Compose, MultiView)):
            return input_side(step)
        if isinstance(step, T.Resize):
            return 2 * max(step.size) if step.size else None
        if isinstance(step, T.RandomResizedCrop):
            # The smallest crop (least area, most oblong) must still hold `size` pixels a side.
            narrowest = min(step.scale) * min(min(step.ratio), 1 / max(step.ratio), 1)
            return math.ceil(max(step.size) / math.sqrt(narrowest))
        if not isinstance(step, SCALE_FREE):
            return None
    return None


def strong_transforms(
    weak: Callable[[Any], Any],
    num_ops: int = 2,
    magnitude: int = 10,
    p_erase: float = 1.0,
    erase_scale: Sequence[float] = (0.02, 0.25),
) -> T.Compose:
    """A weak transform made strong: RandAugment before it, Cutout after it.

    Args:
        weak: A transform from a PIL image to a normalized tensor (e.g. `weak_transforms()`);
            RandAugment hands it a PIL image.
        num_ops: RandAugment operations per image.
        magnitude: Their strength, out of 31 levels.
        p_erase: The probability of erasing a patch (Cutout).
        erase_scale: The range of the erased area as a fraction of the image (0.25: a square of
            up to half the side, as in FixMatch).
    """
    return T.Compose(
        [
            ToPILImage(),
            T.RandAugment(num_ops=num_ops, magnitude=magnitude),
            weak,
            T.RandomErasing(p=p_erase, scale=tuple(erase_scale), value=0),  # 0: the normalized mean
        ]
    )

"""Image transforms for training and evaluation, built from torchvision.transforms.v2.

They take PIL images (what the image datasets and the predictor read) or uint8 tensors
`[C, H, W]` (what shard pools stream), augment the 8-bit pixels and convert them to normalized
floats once, at the end. A PIL image and the uint8 tensor of its pixels give the same output.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from PIL import Image
from torch import Tensor
from torchvision.transforms import InterpolationMode
from torchvision.transforms import v2 as T
from torchvision.transforms.v2.functional import to_pil_image

from sesemi.errors import SesemiError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class NormalizedFloat:
    """uint8 tensor `[C, H, W]` -> float32, scaled to [0, 1] and normalized with `mean` and `std`.

    The same arithmetic as `v2.ToDtype(torch.float32, scale=True)` then `v2.Normalize(mean, std)`
    (bit for bit), in one call without their dispatch: a third of the cost of a weak augmentation
    of a 32 px image.
    """

    def __init__(self, mean: Sequence[float], std: Sequence[float]):
        self.mean = torch.as_tensor(mean, dtype=torch.float32).view(-1, 1, 1)
        self.std = torch.as_tensor(std, dtype=torch.float32).view(-1, 1, 1)
        if not bool(self.std.all()):
            raise ValueError(f"std must not be 0, got {list(std)}")

    def __call__(self, image: Tensor) -> Tensor:
        return image.to(torch.float32).mul_(1.0 / 255).sub_(self.mean).div_(self.std)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(mean={self.mean.flatten().tolist()}, std={self.std.flatten().tolist()})"


class ToPILImage:
    """uint8 tensor `[C, H, W]` -> PIL image (a PIL image passes through), for transforms that
    are faster on Pillow's images than on tensors.

    torchvision's RandAugment on a uint8 tensor took 1.8 (32 px) to 4.4 (224 px) times as long as
    on the PIL image, conversions included (experiments/loading).
    """

    def __call__(self, image: Any) -> Any:
        if not isinstance(image, Tensor):
            return image
        if image.dtype != torch.uint8 or image.dim() != 3 or image.shape[0] not in (1, 3):
            return to_pil_image(image)
        pixels = image.permute(1, 2, 0).contiguous().numpy()  # [H, W, C]
        if image.shape[0] == 1:
            return Image.fromarray(pixels[:, :, 0], "L")
        return Image.frombuffer("RGB", (pixels.shape[1], pixels.shape[0]), pixels, "raw", "RGB", 0, 1)

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


def to_normalized_tensor(mean: Sequence[float], std: Sequence[float]) -> T.Compose:
    """PIL image or uint8 tensor -> float tensor (C, H, W), normalized."""
    return T.Compose(_to_normalized_tensor(mean, std))


def _to_normalized_tensor(mean: Sequence[float], std: Sequence[float]) -> list:
    # Plain tensors rather than tv_tensors.Image: the same pixels, and each transform of a small
    # image costs less without the tensor subclass. PILToTensor passes tensors through.
    return [T.PILToTensor(), NormalizedFloat(mean, std)]


def _check_sides(**sides: int) -> None:
    """Refuses an image side under one pixel (torchvision fails on the first image instead)."""
    for name, side in sides.items():
        if side < 1:
            raise SesemiError(f"{name} must be at least 1 pixel, not {side}")


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
    _check_sides(crop_dim=crop_dim, resize=resize)
    if not 0 <= padding < resize:  # reflection padding takes less than the side it reflects
        raise SesemiError(f"padding must be at least 0 and less than the resized side ({resize}), not {padding}")
    mode = InterpolationMode(interpolation)
    if random_resized_crop:
        crop = [T.RandomResizedCrop(crop_dim, scale=tuple(scale), interpolation=mode, antialias=True)]
    else:
        # Pad and crop the uint8 tensor, not a PIL image: the same pixels, but Pillow's
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
    _check_sides(crop_dim=crop_dim, resize=resize)
    mode = InterpolationMode(interpolation)
    return T.Compose(
        [
            T.Resize(resize, interpolation=mode, antialias=True),
            T.CenterCrop(crop_dim),
            *_to_normalized_tensor(mean, std),
        ]
    )

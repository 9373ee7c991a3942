"""Image transforms (sesemi/transforms/image.py)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from sesemi.errors import SesemiError
from sesemi.transforms import (
    center_crop_transforms,
    to_normalized_tensor,
    train_transforms,
    weak_transforms,
)


def _gradient_image(width: int, height: int) -> Image.Image:
    """An image whose left half is black and right half white, so flips are visible."""
    pixels = np.zeros((height, width, 3), np.uint8)
    pixels[:, width // 2 :] = 255
    return Image.fromarray(pixels)


def test_to_normalized_tensor_scales_and_normalizes():
    """uint8 pixels -> float (x / 255 - mean) / std, channels first."""
    image = Image.new("RGB", (4, 3), (255, 0, 51))
    tensor = to_normalized_tensor((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))(image)
    assert tensor.shape == (3, 3, 4) and tensor.dtype == torch.float32
    torch.testing.assert_close(tensor[:, 0, 0], torch.tensor([1.0, -1.0, -0.6]))


def test_default_train_transform_is_imagenet_style():
    """Random resized crop to 224 and ImageNet normalization by default."""
    output = train_transforms()(_gradient_image(64, 48))
    assert output.shape == (3, 224, 224)
    white = (1.0 - 0.485) / 0.229
    assert output[0].max() == pytest.approx(white, abs=1e-4)


def test_cifar_style_train_transform_shapes():
    """Resize + padded random crop yields crop_dim x crop_dim."""
    transform = train_transforms(random_resized_crop=False, resize=32, crop_dim=28, padding=2)
    assert transform(_gradient_image(40, 32)).shape == (3, 28, 28)


def test_padded_crop_is_a_window_of_the_reflected_image():
    """Each crop is one of the windows of the image padded by reflection (never zeros)."""
    pixels = np.random.default_rng(0).integers(1, 256, (12, 12, 3), dtype=np.uint8)
    padded = np.pad(pixels, ((2, 2), (2, 2), (0, 0)), mode="reflect")
    windows = {padded[y : y + 12, x : x + 12].tobytes() for y in range(5) for x in range(5)}
    transform = train_transforms(
        random_resized_crop=False, resize=12, crop_dim=12, padding=2, p_hflip=0.0, mean=(0,) * 3, std=(1,) * 3
    )
    for _ in range(20):
        crop = (transform(Image.fromarray(pixels)) * 255).round().to(torch.uint8).permute(1, 2, 0)
        assert crop.numpy().tobytes() in windows


def test_no_flip_with_p_hflip_zero_and_flip_with_one():
    """p_hflip=0 never flips (digits); p_hflip=1 always does."""
    image = _gradient_image(16, 16)
    keep = train_transforms(random_resized_crop=False, resize=16, crop_dim=16, p_hflip=0.0, mean=(0,) * 3, std=(1,) * 3)
    flip = train_transforms(random_resized_crop=False, resize=16, crop_dim=16, p_hflip=1.0, mean=(0,) * 3, std=(1,) * 3)
    kept, flipped = keep(image), flip(image)
    assert kept[0, 0, 0] == 0.0 and kept[0, 0, -1] == 1.0
    torch.testing.assert_close(flipped, kept.flip(-1))


def test_center_crop_shape_and_normalization():
    """Resize the short side, center-crop, normalize with the given statistics."""
    transform = center_crop_transforms(resize=40, crop_dim=32, mean=(0.5,) * 3, std=(0.5,) * 3)
    output = transform(Image.new("RGB", (80, 50), (255, 255, 255)))
    assert output.shape == (3, 32, 32)
    torch.testing.assert_close(output, torch.ones(3, 32, 32))


def test_center_crop_is_deterministic_and_centered():
    """Evaluation crops the middle: a wide image keeps its center column."""
    pixels = np.zeros((20, 60, 3), np.uint8)
    pixels[:, 25:35] = 255  # a white band in the middle
    output = center_crop_transforms(resize=20, crop_dim=20, mean=(0,) * 3, std=(1,) * 3)(Image.fromarray(pixels))
    assert output.shape == (3, 20, 20)
    assert output[:, :, 10].min() == 1.0 and output[:, :, 0].max() == 0.0


@pytest.mark.parametrize("interpolation", ["bilinear", "bicubic", "nearest"])
def test_interpolation_names(interpolation):
    """The documented interpolation names are accepted."""
    output = center_crop_transforms(resize=8, crop_dim=8, interpolation=interpolation)(_gradient_image(16, 16))
    assert output.shape == (3, 8, 8)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: weak_transforms(crop_dim=0), r"^crop_dim must be at least 1 pixel, not 0$"),
        (lambda: weak_transforms(padding=-3), r"^padding must be at least 0 and less than the resized side \(32\), not -3$"),
        (lambda: weak_transforms(crop_dim=16, padding=16), r"less than the resized side \(16\), not 16$"),
        (lambda: center_crop_transforms(resize=0), r"^resize must be at least 1 pixel, not 0$"),
    ],
)
def test_sides_no_image_can_have_are_refused_when_the_transform_is_made(make, message):
    """Not on the first image, after the data is decoded, in torchvision's words."""
    with pytest.raises(SesemiError, match=message):
        make()

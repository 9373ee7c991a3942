"""Multi-view transforms and the weak/strong augmentations (sesemi/transforms/views.py)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import default_collate

from sesemi.transforms import MultiView, strong_transforms, weak_transforms

HALF = {"mean": (0.5, 0.5, 0.5), "std": (0.5, 0.5, 0.5)}


def _image(size: int = 20) -> Image.Image:
    rng = np.random.default_rng(0)
    return Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8))


def test_multiview_applies_each_transform_to_the_same_image():
    views = MultiView([lambda x: x + 1, lambda x: x * 10])(2)
    assert views == (3, 20)


def test_multiview_needs_two_views():
    with pytest.raises(ValueError, match="two"):
        MultiView([weak_transforms()])


def test_default_collate_gives_a_tuple_of_view_batches():
    """Items ((weak, strong), label) collate to ([B, ...], [B, ...]), labels."""
    transform = MultiView(
        [weak_transforms(crop_dim=16), strong_transforms(weak_transforms(crop_dim=16))]
    )
    (weak, strong), labels = default_collate([(transform(_image()), -1) for _ in range(4)])
    assert weak.shape == strong.shape == (4, 3, 16, 16)
    assert labels.tolist() == [-1] * 4


def test_weak_transform_resizes_crops_and_normalizes():
    output = weak_transforms(crop_dim=16, p_hflip=0.0, **HALF)(_image(40))
    assert output.shape == (3, 16, 16) and output.dtype == torch.float32
    assert output.min() >= -1.0 and output.max() <= 1.0


def test_views_of_one_image_differ():
    torch.manual_seed(0)
    first, second = MultiView([weak_transforms(crop_dim=16)] * 2)(_image())
    assert not torch.equal(first, second)


def test_strong_transform_erases_a_patch():
    """With p_erase=1 a patch is set to 0 (the normalized mean), a value no pixel maps to exactly."""
    torch.manual_seed(0)
    output = strong_transforms(weak_transforms(crop_dim=16, **HALF), p_erase=1.0)(_image())
    assert output.shape == (3, 16, 16)
    assert (output == 0).all(dim=0).sum() >= 0.02 * 16 * 16

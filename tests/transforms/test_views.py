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


def test_input_side_is_the_size_the_first_resize_makes():
    """What a large image may be read at without changing what the views make of it."""
    from torchvision.transforms import v2 as T

    from sesemi.transforms import center_crop_transforms, train_transforms
    from sesemi.transforms.views import input_side

    weak = weak_transforms(crop_dim=96)  # resizes the short side to 96
    assert input_side(weak) == input_side(strong_transforms(weak)) == 192  # RandAugment first: scale-free
    assert input_side(MultiView([weak_transforms(crop_dim=32), strong_transforms(weak)])) == 192
    assert input_side(center_crop_transforms(resize=128, crop_dim=112)) == 256
    # The least crop (8% of the area, 3:4) of an image with a short side of 915 px is 224 px wide.
    assert input_side(train_transforms(crop_dim=224)) == 915
    assert input_side(T.Compose([T.CenterCrop(32), T.Resize(32)])) is None  # a crop of pixels first
    assert input_side(lambda image: image) is None and input_side(None) is None

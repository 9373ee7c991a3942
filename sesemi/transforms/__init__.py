"""Data transforms: images (torchvision) and audio waveforms."""

from sesemi.transforms.audio import (
    eval_audio_transforms,
    strong_audio_transforms,
    weak_audio_transforms,
)
from sesemi.transforms.image import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    center_crop_transforms,
    to_normalized_tensor,
    train_transforms,
)
from sesemi.transforms.views import MultiView, strong_transforms, weak_transforms

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "MultiView",
    "center_crop_transforms",
    "eval_audio_transforms",
    "strong_audio_transforms",
    "strong_transforms",
    "to_normalized_tensor",
    "train_transforms",
    "weak_audio_transforms",
    "weak_transforms",
]

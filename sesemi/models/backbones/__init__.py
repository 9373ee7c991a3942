"""Backbones: nn.Modules that map inputs to features `[B, out_features]`.

Names are imported on first use: a run with the ConvNet does not import timm (about a second).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS = {
    "AudioBackbone": "audio",
    "Backbone": "base",
    "ConvNet": "convnet",
    "LogMel": "audio",
    "PyTorchImageModels": "timm",
    "SpecAugment": "audio",
    "TorchVisionBackbone": "torchvision",
}

__all__ = [
    "AudioBackbone",
    "Backbone",
    "ConvNet",
    "LogMel",
    "PyTorchImageModels",
    "SpecAugment",
    "TorchVisionBackbone",
]

if TYPE_CHECKING:
    from sesemi.models.backbones.audio import AudioBackbone, LogMel, SpecAugment
    from sesemi.models.backbones.base import Backbone
    from sesemi.models.backbones.convnet import ConvNet
    from sesemi.models.backbones.timm import PyTorchImageModels
    from sesemi.models.backbones.torchvision import TorchVisionBackbone


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'sesemi.models.backbones' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"sesemi.models.backbones.{_EXPORTS[name]}"), name)
    globals()[name] = value
    return value

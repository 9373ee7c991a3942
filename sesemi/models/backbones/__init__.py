"""Backbones: nn.Modules that map inputs to features `[B, out_features]`."""

from sesemi.models.backbones.audio import AudioBackbone, LogMel, SpecAugment
from sesemi.models.backbones.base import Backbone
from sesemi.models.backbones.convnet import ConvNet
from sesemi.models.backbones.timm import PyTorchImageModels
from sesemi.models.backbones.torchvision import TorchVisionBackbone

__all__ = [
    "AudioBackbone",
    "Backbone",
    "ConvNet",
    "LogMel",
    "PyTorchImageModels",
    "SpecAugment",
    "TorchVisionBackbone",
]

"""sesemi: semi-supervised learning for image and audio classification.

The public API. Names are imported on first use, so `import sesemi` (and the command-line
help) stays fast; every name is also importable from its home module.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from sesemi.version import __version__

_EXPORTS = {
    "AudioBackbone": "sesemi.models.backbones.audio",
    "Classifier": "sesemi.learners.classifier",
    "ConvNet": "sesemi.models.backbones.convnet",
    "PolynomialLR": "sesemi.schedulers.lr",
    "PyTorchImageModels": "sesemi.models.backbones.timm",
    "RotationTransformer": "sesemi.collation",
    "SesemiError": "sesemi.errors",
    "TorchVisionBackbone": "sesemi.models.backbones.torchvision",
    "RunResult": "sesemi.results",
    "TrainingRun": "sesemi.api",
    "compose": "sesemi.config.compose",
    "dataset": "sesemi.datasets.registry",
    "register_dataset": "sesemi.datasets.registry",
    "resume": "sesemi.runner",
    "run": "sesemi.runner",
    "train": "sesemi.runner",
    "training_run": "sesemi.api",
}
_SUBPACKAGES = ("export", "hub")  # sesemi.hub.load(...) without `import sesemi.hub`

__all__ = [
    "AudioBackbone",
    "Classifier",
    "ConvNet",
    "PolynomialLR",
    "PyTorchImageModels",
    "RotationTransformer",
    "RunResult",
    "SesemiError",
    "TorchVisionBackbone",
    "TrainingRun",
    "__version__",
    "compose",
    "dataset",
    "export",
    "hub",
    "register_dataset",
    "resume",
    "run",
    "train",
    "training_run",
]

if TYPE_CHECKING:
    from sesemi import export, hub
    from sesemi.api import TrainingRun, training_run
    from sesemi.collation import RotationTransformer
    from sesemi.config.compose import compose
    from sesemi.datasets.registry import dataset, register_dataset
    from sesemi.errors import SesemiError
    from sesemi.learners.classifier import Classifier
    from sesemi.models.backbones.audio import AudioBackbone
    from sesemi.models.backbones.convnet import ConvNet
    from sesemi.models.backbones.timm import PyTorchImageModels
    from sesemi.models.backbones.torchvision import TorchVisionBackbone
    from sesemi.results import RunResult
    from sesemi.runner import resume, run, train
    from sesemi.schedulers.lr import PolynomialLR


def __getattr__(name: str) -> Any:
    if name in _SUBPACKAGES:
        return importlib.import_module(f"sesemi.{name}")
    if name not in _EXPORTS:
        raise AttributeError(f"module 'sesemi' has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value
    return value

"""Learners: LightningModules that train models from a config, and trained models for inference.

Names are imported on first use, so loading a trained model does not import the training code.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS = {
    "Classifier": "sesemi.learners.classifier",
    "TrainedModel": "sesemi.learners.trained",
}

__all__ = ["Classifier", "TrainedModel"]

if TYPE_CHECKING:
    from sesemi.learners.classifier import Classifier
    from sesemi.learners.trained import TrainedModel


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'sesemi.learners' has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value
    return value

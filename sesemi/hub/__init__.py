"""Publishing trained models to a repository and loading them by uid or name, through a cache.

    uid = sesemi.hub.publish("runs/digits/<time>", "digits-cnn", "1.0.0", "/shared/models")
    predictor = sesemi.hub.load(uid)                  # or "digits-cnn@1.0.0", "digits-cnn"
    predictions = predictor.predict(["7.png", "3.png"])  # a Prediction per file: label, score, ...
    sesemi.hub.models("/shared/models")               # what is published

A repository is a folder or any fsspec URL (s3://, gs://, memory://, ...); loads search
`$SESEMI_REPOSITORIES` when none is given and keep models in `$SESEMI_CACHE_ROOT`. Weights are
safetensors, configs may only build what `sesemi.trust` allows, and every id of a repository is
checked before it becomes a path in the cache: loading runs no code from the files and writes
nothing outside the cache. `load` is `sesemi.predictor.load` (which also loads run folders): it returns a
`Predictor` whose `info` is the model's `ModelInfo`. The design follows audmodel
(https://github.com/audeering/audmodel).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS = {
    "ModelInfo": "sesemi.hub.lookup",
    "cache_root": "sesemi.hub.cache",
    "info": "sesemi.hub.api",
    "load": "sesemi.predictor",
    "model_uid": "sesemi.hub.ids",
    "models": "sesemi.hub.api",
    "publish": "sesemi.hub.publishing",
    "url": "sesemi.hub.api",
}

__all__ = ["ModelInfo", "cache_root", "info", "load", "model_uid", "models", "publish", "url"]

if TYPE_CHECKING:
    from sesemi.hub.api import info, models, url
    from sesemi.hub.cache import cache_root
    from sesemi.hub.ids import model_uid
    from sesemi.hub.lookup import ModelInfo
    from sesemi.hub.publishing import publish
    from sesemi.predictor import load


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'sesemi.hub' has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value
    return value

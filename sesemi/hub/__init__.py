"""Publishing trained models to a repository and loading them by uid or name, through a cache.

    uid = sesemi.hub.publish("runs/digits/flexmatch/<time>", "digits-cnn", "1.0.0", "/shared/models")
    predictor = sesemi.hub.load(uid)                  # or "digits-cnn@1.0.0", "digits-cnn"
    sesemi.hub.models("/shared/models")               # what is published

`load` is `sesemi.predictor.load`: a `Predictor` whose `info` is the model's `ModelInfo`. See
docs/sharing.md; the design follows audmodel (https://github.com/audeering/audmodel).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sesemi.hub.cache import cache_root
from sesemi.hub.ids import model_uid
from sesemi.hub.lookup import ModelInfo
from sesemi.hub.repository import info, models, url

__all__ = ["ModelInfo", "cache_root", "info", "load", "model_uid", "models", "publish", "url"]

if TYPE_CHECKING:
    from sesemi.hub.publishing import publish
    from sesemi.predictor import load


def __getattr__(name: str) -> Any:
    """`load` and `publish` build networks: they (and torch) are imported on first use."""
    if name == "load":
        from sesemi.predictor import load as value
    elif name == "publish":
        from sesemi.hub.publishing import publish as value
    else:
        raise AttributeError(f"module 'sesemi.hub' has no attribute {name!r}")
    globals()[name] = value
    return value

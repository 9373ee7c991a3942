"""Backbones from torchvision's model zoo."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlparse

import torch
import torchvision
from torch import Tensor, nn

from sesemi.errors import SesemiError
from sesemi.models.backbones.base import Backbone, fetch_pretrained


class TorchVisionBackbone(Backbone):
    """A torchvision classification model with its final layer removed.

    Args:
        name: The model name, e.g. "resnet18" (see `torchvision.models.list_models()`).
        freeze: Whether to freeze the weights.
        pretrained: Whether to load the default pretrained weights (needs network or a cache).
    """

    def __init__(self, name: str = "resnet18", freeze: bool = False, pretrained: bool = False):
        super().__init__()
        available = torchvision.models.list_models(module=torchvision.models)
        if name not in available:
            raise SesemiError(f"torchvision has no classification model {name!r}")
        weights = "DEFAULT" if pretrained else None

        def create():
            return torchvision.models.get_model(name, weights=weights)

        model = fetch_pretrained(name, create, "download.pytorch.org", lambda: _cached(name)) if pretrained else create()
        self.out_features: int = _drop_classifier(model)
        self.encoder = model
        if freeze:
            self.freeze()

    def forward(self, x: Tensor) -> Tensor:
        return self.encoder(x).flatten(1)


def _cached(name: str) -> bool:
    """Whether torch.hub's cache holds the default weights of model `name`."""
    url = torchvision.models.get_model_weights(name).DEFAULT.url
    return (Path(torch.hub.get_dir()) / "checkpoints" / Path(urlparse(url).path).name).is_file()


def _drop_classifier(model: nn.Module) -> int:
    """Replaces the last linear layer with an identity; returns its input width."""
    for attribute in ("fc", "classifier", "head", "heads"):
        layer = getattr(model, attribute, None)
        if layer is None:
            continue
        linears = [m for m in layer.modules() if isinstance(m, nn.Linear)] if not isinstance(layer, nn.Linear) else [layer]
        if linears:
            setattr(model, attribute, nn.Identity())
            return linears[0].in_features
    raise SesemiError(f"cannot find the classifier layer of {type(model).__name__}")

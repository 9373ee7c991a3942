"""Backbones from timm (https://github.com/huggingface/pytorch-image-models)."""

from __future__ import annotations

import difflib
from typing import Any

import timm
from torch import Tensor

from sesemi.errors import SesemiError
from sesemi.models.backbones.base import Backbone, fetch_pretrained


class PyTorchImageModels(Backbone):
    """Any timm model without its classifier: images `(B, C, H, W)` -> features `(B, D)`.

    Args:
        name: The timm model name, e.g. "resnet50d" (see `timm.list_models()`).
        freeze: Whether to freeze the weights (e.g. to train only heads on pretrained features).
        pretrained: Whether to load pretrained weights (needs network access or a cache).
        global_pool: The pooling over space: "avg", "max", "avgmax", ...
        drop_rate: Dropout before the features are returned.
        in_chans: The number of input channels.
        **kwargs: Other arguments of `timm.create_model` (e.g. drop_path_rate).
    """

    def __init__(
        self,
        name: str = "resnet50d",
        freeze: bool = False,
        pretrained: bool = False,
        global_pool: str = "avg",
        drop_rate: float = 0.0,
        in_chans: int = 3,
        **kwargs: Any,
    ):
        super().__init__()
        if not timm.is_model(name):
            close = difflib.get_close_matches(name, timm.list_models(), n=8)
            hint = f"; similar names: {', '.join(close)}" if close else ""
            raise SesemiError(f"timm has no model {name!r}{hint}")

        def create():
            return timm.create_model(
                name,
                pretrained=pretrained,
                num_classes=0,
                global_pool=global_pool,
                drop_rate=drop_rate,
                in_chans=in_chans,
                **kwargs,
            )

        self.encoder = fetch_pretrained(name, create, "huggingface.co") if pretrained else create()
        self.out_features: int = self.encoder.num_features
        if freeze:
            self.freeze()

    def forward(self, x: Tensor) -> Tensor:
        return self.encoder(x)

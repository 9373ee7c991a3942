"""The ChannelsLast callback (sesemi/callbacks/channels_last.py)."""

from __future__ import annotations

import torch

from sesemi.callbacks import ChannelsLast
from sesemi.learners.classifier import Classifier


def test_setup_stores_convolutions_channels_last(make_hparams):
    """After setup, 4-D conv weights are NHWC and the model still computes the same logits."""
    model = Classifier(make_hparams()).eval()
    images = torch.rand(2, 3, 8, 8)
    before = model(images)
    ChannelsLast().setup(None, model, "fit")
    weight = model.backbone.encoder[0][0].weight
    assert weight.is_contiguous(memory_format=torch.channels_last)
    assert not weight.is_contiguous()
    torch.testing.assert_close(model(images), before)

"""torchvision backbones (sesemi/models/backbones/torchvision.py)."""

from __future__ import annotations

import urllib.error

import pytest
import torch

from sesemi.errors import SesemiError
from sesemi.models.backbones.torchvision import TorchVisionBackbone


def test_resnet18_output_is_batch_by_out_features():
    """The classifier is removed: images -> [B, 512] features."""
    backbone = TorchVisionBackbone("resnet18").eval()
    assert backbone.out_features == 512
    assert backbone(torch.rand(2, 3, 32, 32)).shape == (2, 512)
    assert isinstance(backbone.encoder.fc, torch.nn.Identity)


def test_sequential_classifier_is_removed():
    """Models whose classifier is a Sequential (mobilenet) also give pooled features."""
    backbone = TorchVisionBackbone("mobilenet_v3_small").eval()
    assert backbone.out_features == 576
    assert backbone(torch.rand(2, 3, 32, 32)).shape == (2, 576)


def test_freeze_stops_gradients():
    """freeze=True: nothing trainable, eval mode kept under .train()."""
    backbone = TorchVisionBackbone("resnet18", freeze=True)
    assert not any(p.requires_grad for p in backbone.parameters())
    backbone.train()
    assert not backbone.training


def test_unknown_name_is_a_sesemi_error():
    """A mistyped model name is a SesemiError naming it."""
    with pytest.raises(SesemiError, match="resnet181"):
        TorchVisionBackbone("resnet181")


def test_failed_weight_download_is_a_sesemi_error(monkeypatch, tmp_path, time_limit):
    """pretrained=True without reachable weights is one SesemiError line, quickly."""

    def no_network(*args, **kwargs):
        raise urllib.error.URLError("no network in tests")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", no_network)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    with time_limit(30), pytest.raises(SesemiError) as error:
        TorchVisionBackbone("resnet18", pretrained=True)
    assert "resnet18" in str(error.value) and "\n" not in str(error.value)

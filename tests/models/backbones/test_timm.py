"""timm backbones (sesemi/models/backbones/timm.py)."""

from __future__ import annotations

import pytest
import torch

from sesemi.errors import SesemiError
from sesemi.models.backbones.timm import PyTorchImageModels


@pytest.fixture(scope="module")
def resnet18() -> PyTorchImageModels:
    return PyTorchImageModels("resnet18")


def test_output_is_batch_by_out_features(resnet18):
    """A timm model without its classifier: images -> [B, out_features] pooled features."""
    assert resnet18.out_features == 512
    resnet18.eval()
    assert resnet18(torch.rand(2, 3, 32, 32)).shape == (2, 512)


def test_in_chans_and_global_pool_are_passed_to_timm():
    """Options reach timm.create_model (one input channel, max pooling)."""
    backbone = PyTorchImageModels("resnet18", in_chans=1, global_pool="max").eval()
    features = backbone(torch.rand(2, 1, 32, 32))
    assert features.shape == (2, 512)
    assert (features >= 0).all()  # max over post-ReLU activations


def test_freeze_stops_gradients():
    """freeze=True: no trainable parameters and eval mode even after .train()."""
    backbone = PyTorchImageModels("resnet18", freeze=True)
    assert not any(p.requires_grad for p in backbone.parameters())
    backbone.train()
    assert not backbone.training
    assert not backbone(torch.rand(1, 3, 32, 32)).requires_grad


def test_unknown_name_is_a_sesemi_error_with_suggestions():
    """A mistyped model name is a SesemiError suggesting similar names."""
    with pytest.raises(SesemiError) as error:
        PyTorchImageModels("resnet181")
    assert "resnet181" in str(error.value)
    assert "resnet18" in str(error.value).split("resnet181", 1)[1]


def test_pretrained_offline_fails_fast_with_a_sesemi_error(monkeypatch, tmp_path, time_limit):
    """Without network and without cached weights, pretrained=True is a SesemiError within
    seconds (not a hang, not a traceback)."""
    import huggingface_hub.constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hf" / "hub"))
    with time_limit(30), pytest.raises(SesemiError) as error:
        PyTorchImageModels("resnet18", pretrained=True)
    message = str(error.value)
    assert "resnet18" in message and "pretrained" in message
    assert "\n" not in message

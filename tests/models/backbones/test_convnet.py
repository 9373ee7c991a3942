"""The ConvNet backbone (sesemi/models/backbones/convnet.py)."""

from __future__ import annotations

import pytest
import torch

from sesemi.models.backbones.convnet import ConvNet


@pytest.mark.parametrize("widths, side", [([4, 8], 16), ([4, 8, 6], 32), ([5], 9)])
def test_output_is_batch_by_out_features(widths, side):
    """Images [B, C, H, W] -> features [B, widths[-1]] for any image size."""
    backbone = ConvNet(widths=widths)
    assert backbone.out_features == widths[-1]
    assert backbone(torch.rand(2, 3, side, side)).shape == (2, widths[-1])


def test_in_chans_sets_the_input_channels():
    """Grayscale input works with in_chans=1 and fails with the default 3 channels."""
    assert ConvNet(widths=[4], in_chans=1)(torch.rand(2, 1, 8, 8)).shape == (2, 4)
    with pytest.raises(RuntimeError):
        ConvNet(widths=[4])(torch.rand(2, 1, 8, 8))


def test_freeze_stops_gradients_and_batchnorm_updates():
    """A frozen ConvNet has no trainable parameters and stays in eval mode under .train()."""
    backbone = ConvNet(widths=[4, 8], freeze=True)
    assert not any(p.requires_grad for p in backbone.parameters())
    backbone.train()
    assert not backbone.training
    norm = backbone.encoder[0][1]
    before = norm.running_mean.clone()
    out = backbone(torch.rand(4, 3, 8, 8) + 5)
    assert not out.requires_grad
    torch.testing.assert_close(norm.running_mean, before)


def test_unfrozen_backbone_trains():
    """Without freeze, gradients reach the first convolution."""
    backbone = ConvNet(widths=[4, 8])
    backbone(torch.rand(2, 3, 8, 8)).sum().backward()
    assert backbone.encoder[0][0].weight.grad.abs().sum() > 0


def test_dropout_is_active_only_in_training():
    """drop_rate applies in train mode; eval mode is deterministic."""
    torch.manual_seed(0)
    backbone = ConvNet(widths=[4, 8], drop_rate=0.5)
    x = torch.rand(2, 3, 8, 8)
    backbone.eval()
    torch.testing.assert_close(backbone(x), backbone(x))
    backbone.train()
    assert not torch.allclose(backbone(x), backbone(x))

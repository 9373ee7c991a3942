"""The rotation-prediction loss head (sesemi/models/heads/loss/rotation.py)."""

from __future__ import annotations

import torch

from sesemi.collation import RotationTransformer
from sesemi.learners.encoding import encode
from sesemi.models.backbones.convnet import ConvNet
from sesemi.models.heads.loss import RotationPredictionLossHead, StepContext, feature_key


def _setup(batch_size: int = 3):
    torch.manual_seed(0)
    backbone = ConvNet(widths=[4, 8])
    head = RotationPredictionLossHead("rotation_prediction", "backbone")
    head.build({"backbone": backbone}, {})
    images = [(torch.rand(3, 8, 8), -1) for _ in range(batch_size)]
    data = {"rotation_prediction": RotationTransformer()(images)}
    return backbone, head, data


def _losses(backbone, head, data):
    features = encode(head.feature_requests(data), {"backbone": backbone})
    return head(StepContext(data, features, {"backbone": backbone}, {}, step=0)).losses


def test_build_sizes_the_rotation_classifier_from_the_backbone():
    """`build` makes a linear layer from the backbone's features to the 4 rotations."""
    backbone, head, _ = _setup()
    assert head.fc.in_features == backbone.out_features == 8
    assert head.fc.out_features == 4


def test_requests_the_rotated_images_under_the_conventional_key():
    """The head asks for its loader's images, encoded by its backbone, with gradients."""
    _, head, data = _setup()
    (request,) = head.feature_requests(data)
    assert request.key == feature_key("rotation_prediction", "backbone") == "rotation_prediction@backbone"
    assert request.inputs is data["rotation_prediction"][0]
    assert request.backbone == "backbone" and not request.target


def test_per_sample_losses_are_finite_with_shape_4b():
    """One unreduced cross-entropy loss per rotated image."""
    backbone, head, data = _setup(batch_size=3)
    features = encode(head.feature_requests(data), {"backbone": backbone})
    outputs = head(StepContext(data, features, {"backbone": backbone}, {}, step=0))
    assert outputs.losses.shape == (12,)
    assert torch.isfinite(outputs.losses).all() and (outputs.losses >= 0).all()
    assert outputs.weights is None


def test_losses_use_the_rotation_labels():
    """The loss depends on the rotation targets (shifted targets give other losses)."""
    backbone, head, data = _setup()
    backbone.eval()
    images, labels = data["rotation_prediction"]
    true = _losses(backbone, head, data)
    shifted = _losses(backbone, head, {"rotation_prediction": (images, (labels + 1) % 4)})
    assert not torch.allclose(true, shifted)
    logits = head.fc(backbone(images))
    torch.testing.assert_close(true, torch.nn.functional.cross_entropy(logits, labels, reduction="none"))


def test_gradients_reach_the_backbone_and_the_head():
    """Backpropagating the loss trains both the backbone and the rotation classifier."""
    backbone, head, data = _setup()
    _losses(backbone, head, data).mean().backward()
    assert head.fc.weight.grad is not None and head.fc.weight.grad.abs().sum() > 0
    first_conv = backbone.encoder[0][0].weight
    assert first_conv.grad is not None and first_conv.grad.abs().sum() > 0

"""The jigsaw-prediction loss head (sesemi/models/heads/loss/jigsaw.py)."""

from __future__ import annotations

import torch

from sesemi.collation import JigsawCollator
from sesemi.learners.encoding import encode
from sesemi.models.backbones.convnet import ConvNet
from sesemi.models.heads.loss import JigsawPredictionLossHead, StepContext


def _setup(num_permutations: int = 5):
    torch.manual_seed(0)
    backbones = {"backbone": ConvNet(widths=[4, 8])}
    loss_head = JigsawPredictionLossHead("jigsaw_prediction", num_permutations=num_permutations)
    loss_head.build(backbones, {})
    items = [(torch.rand(3, 9, 9), -1) for _ in range(4)]
    data = {
        "jigsaw_prediction": JigsawCollator(grid_size=3, num_permutations=num_permutations)(items)
    }
    return backbones, loss_head, data


def test_classifier_has_one_output_per_permutation():
    backbones, loss_head, _ = _setup(num_permutations=5)
    assert loss_head.fc.in_features == backbones["backbone"].out_features
    assert loss_head.fc.out_features == 5


def test_loss_is_the_cross_entropy_of_the_permutation_labels_with_gradients():
    backbones, loss_head, data = _setup()
    features = encode(loss_head.feature_requests(data), backbones)
    outputs = loss_head(StepContext(data, features, backbones, {}, step=0))
    puzzles, labels = data["jigsaw_prediction"]
    expected = torch.nn.functional.cross_entropy(
        loss_head.fc(features["jigsaw_prediction@backbone"]), labels, reduction="none"
    )
    torch.testing.assert_close(outputs.losses, expected)
    outputs.losses.mean().backward()
    assert loss_head.fc.weight.grad.abs().sum() > 0
    assert backbones["backbone"].encoder[0][0].weight.grad.abs().sum() > 0

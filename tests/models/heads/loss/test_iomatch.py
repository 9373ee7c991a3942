"""IOMatch: detectors of its own keep likely outliers out of the pseudo-label loss, and an open-set
classifier learns from every unlabeled input, outliers as an "other" class (iomatch.py)."""

from __future__ import annotations

import pytest
import torch

from sesemi.errors import SesemiError
from sesemi.learners.encoding import encode
from sesemi.models.backbones.convnet import ConvNet
from sesemi.models.heads import LinearHead
from sesemi.models.heads.loss import IOMatchLossHead, StepContext
from sesemi.models.heads.loss.base import FeatureRequest
from sesemi.models.heads.loss.iomatch import open_set_targets

NUM_CLASSES = 3


def test_open_set_targets_split_each_class_between_itself_and_other():
    probs = torch.tensor([[0.7, 0.2, 0.1]])
    inlier = torch.tensor([[0.9, 0.5, 0.0]])
    targets = open_set_targets(probs, inlier)
    # p_c o_c per class, and sum_c p_c (1 - o_c) for "other"
    torch.testing.assert_close(targets, torch.tensor([[0.63, 0.1, 0.0, 0.07 + 0.1 + 0.1]]))
    assert targets.sum().item() == pytest.approx(1.0)


def _setup(say_mine: bool):
    torch.manual_seed(0)
    backbones = {"backbone": ConvNet(widths=[4, 8])}
    heads = {"head": LinearHead(8, NUM_CLASSES)}
    loss_head = IOMatchLossHead("fixmatch", projection_dim=4, threshold=0.0)
    loss_head.build(backbones, heads)
    with torch.no_grad():  # a constant projection, and detectors that all say "mine" (or "not mine")
        loss_head.projection[2].weight.zero_()
        loss_head.projection[2].bias.fill_(1.0)
        loss_head.detectors.weight.zero_()
        loss_head.detectors.weight[NUM_CLASSES:].fill_(2.5 if say_mine else -2.5)  # "mine" logits +-10
    views = (torch.rand(6, 3, 8, 8), torch.rand(6, 3, 8, 8))
    batch = {"fixmatch": (views, torch.full((6,), -1)), "supervised": (torch.rand(4, 3, 8, 8), torch.tensor([0, 1, 2, 0]))}
    requests = [*loss_head.feature_requests(batch), FeatureRequest("supervised", batch["supervised"][0])]
    features = encode(requests, backbones)
    return loss_head, StepContext(batch, features, backbones, heads, step=0)


def test_outliers_get_no_pseudo_label_but_teach_the_open_set_classifier_their_class():
    loss_head, context = _setup(say_mine=False)
    outputs = loss_head(context)
    assert outputs.weights.tolist() == [0.0] * 6  # a zero threshold would pass them all
    stats = loss_head.statistics()
    assert stats["out_of_class"] == 1.0 and sum(stats["pseudo_labeled_per_class"]) == 0
    outputs.extra.backward()
    # every target is "other": the open-set classifier's gradient raises that logit
    assert loss_head.open_set.bias.grad[NUM_CLASSES] < 0 and (loss_head.open_set.bias.grad[:NUM_CLASSES] > 0).all()


def test_inliers_are_pseudo_labeled_and_the_detectors_learn_from_the_labeled_batch():
    loss_head, context = _setup(say_mine=True)
    outputs = loss_head(context)
    assert outputs.weights.tolist() == [1.0] * 6
    assert outputs.extra is not None and outputs.extra.ndim == 0
    ((outputs.losses * outputs.weights).mean() + outputs.extra).backward()
    assert loss_head.detectors.weight.grad.abs().sum() > 0
    assert next(context.backbones["backbone"].parameters()).grad is not None
    stats = loss_head.statistics()
    assert stats["out_of_class"] == 0.0 and sum(stats["pseudo_labeled_per_class"]) == pytest.approx(1.0)


def test_openmatch_s_filter_is_refused_beside_iomatch_s_own():
    with pytest.raises(SesemiError, match="drop outlier_filter"):
        IOMatchLossHead("fixmatch", outlier_filter=True)
    with pytest.raises(SesemiError, match="projection_dim"):
        IOMatchLossHead("fixmatch", projection_dim=0)

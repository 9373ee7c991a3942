"""Open-set pools: one-vs-all detectors keep out-of-class inputs out of FixMatch's loss, and the
head reports what it did with its pool (pseudo_labels.py, fixmatch.py, heads/one_vs_all.py)."""

from __future__ import annotations

import math

import pytest
import torch

from sesemi.errors import SesemiError
from sesemi.learners.encoding import encode
from sesemi.models.backbones.convnet import ConvNet
from sesemi.models.heads import LinearHead, OneVsAllHead
from sesemi.models.heads.loss import FixMatchLossHead, StepContext
from sesemi.models.heads.loss.base import FeatureRequest
from sesemi.models.heads.loss.pseudo_labels import (
    PoolStatistics,
    inlier_mask,
    one_vs_all_consistency,
    one_vs_all_entropy,
    one_vs_all_loss,
)


def _detectors(inlier: list[list[float]]) -> torch.Tensor:
    """Detector logits `[N, 2, C]` whose probability of "mine" is `inlier`."""
    q = torch.tensor(inlier)
    return torch.stack([torch.log1p(-q), torch.log(q)], dim=1)


def test_the_one_vs_all_loss_is_the_true_class_and_the_hardest_other_class():
    inlier = [[0.9, 0.2, 0.6], [0.5, 0.5, 0.1]]
    losses = one_vs_all_loss(_detectors(inlier), torch.tensor([0, 2]))
    # -log q_y - min_{k != y} log(1 - q_k)
    expected = [-math.log(0.9) - math.log(1 - 0.6), -math.log(0.1) - math.log(1 - 0.5)]
    torch.testing.assert_close(losses, torch.tensor(expected))


def test_consistency_entropy_and_inlier_mask_follow_their_formulas():
    a, b = _detectors([[0.9, 0.2]]), _detectors([[0.6, 0.2]])
    torch.testing.assert_close(one_vs_all_consistency(a, b), torch.tensor([2 * 0.3**2]))
    binary = [-(q * math.log(q) + (1 - q) * math.log(1 - q)) for q in (0.9, 0.2)]
    torch.testing.assert_close(one_vs_all_entropy(a), torch.tensor([sum(binary) / 2]))
    assert inlier_mask(a, torch.tensor([0])).tolist() == [True]
    assert inlier_mask(a, torch.tensor([1])).tolist() == [False]


def _setup(say_mine: bool):
    torch.manual_seed(0)
    backbones = {"backbone": ConvNet(widths=[4, 8])}
    heads = {"head": OneVsAllHead(8, 3)}
    with torch.no_grad():  # every detector says "mine" (or "not mine") whatever the input
        heads["head"].one_vs_all.weight.zero_()
        heads["head"].one_vs_all.bias.copy_(torch.tensor([0.0] * 3 + [10.0 if say_mine else -10.0] * 3))
    loss_head = FixMatchLossHead("fixmatch", threshold=0.0, outlier_filter=True)
    loss_head.build(backbones, heads)
    views = (torch.rand(6, 3, 8, 8), torch.rand(6, 3, 8, 8))
    batch = {"fixmatch": (views, torch.full((6,), -1)), "supervised": (torch.rand(4, 3, 8, 8), torch.tensor([0, 1, 2, 0]))}
    requests = [*loss_head.feature_requests(batch), FeatureRequest("supervised", batch["supervised"][0])]
    features = encode(requests, backbones)
    return loss_head, heads, StepContext(batch, features, backbones, heads, step=0)


def test_inputs_judged_out_of_class_get_no_pseudo_label_loss():
    loss_head, _, context = _setup(say_mine=False)
    outputs = loss_head(context)
    assert outputs.weights.tolist() == [0.0] * 6  # a zero threshold would pass them all
    stats = loss_head.statistics()
    assert stats["seen"] == 6 and stats["out_of_class"] == 1.0 and sum(stats["pseudo_labeled_per_class"]) == 0


def test_inliers_are_pseudo_labeled_and_the_detectors_learn_from_the_labeled_batch():
    loss_head, heads, context = _setup(say_mine=True)
    outputs = loss_head(context)
    assert outputs.weights.tolist() == [1.0] * 6
    assert outputs.extra is not None and outputs.extra.ndim == 0
    ((outputs.losses * outputs.weights).mean() + outputs.extra).backward()
    assert heads["head"].one_vs_all.weight.grad.abs().sum() > 0
    stats = loss_head.statistics()
    assert stats["out_of_class"] == 0.0 and sum(stats["pseudo_labeled_per_class"]) == pytest.approx(1.0)


def test_the_filter_needs_one_vs_all_detectors():
    with pytest.raises(SesemiError, match="OneVsAllHead"):
        FixMatchLossHead("fixmatch", outlier_filter=True).build({"backbone": ConvNet(widths=[4, 8])}, {"head": LinearHead(8, 3)})


def test_pool_statistics_describe_the_last_window_of_samples():
    pool = PoolStatistics(num_classes=3, window=4)
    assert pool.summary() is None
    pool.record(torch.tensor([0, 0, 1, 2, 2]), torch.tensor([1.0, 1.0, 0.0, 1.0, 1.0]))
    # the window keeps the last 4: (0 counted), (1 not counted), (2 counted), (2 counted)
    assert pool.summary() == {
        "seen": 4,
        "pseudo_labeled_per_class": [0.25, 0.0, 0.5],
        "out_of_class": None,
        "predicted_per_class": [0.25, 0.25, 0.5],
    }
    # aligned pseudo-labels 1, 1 of inputs the model itself predicted as 0, 0; one judged out of class
    pool.record(torch.tensor([1, 1]), torch.tensor([1.0, 1.0]), torch.tensor([True, False]), torch.tensor([0, 0]))
    assert pool.summary() == {
        "seen": 4,
        "pseudo_labeled_per_class": [0.0, 0.25, 0.5],
        "out_of_class": 0.25,
        "predicted_per_class": [0.5, 0.0, 0.5],
    }

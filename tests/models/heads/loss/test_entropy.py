"""The entropy-minimization loss head (sesemi/models/heads/loss/entropy.py)."""

from __future__ import annotations

import math

import torch

from sesemi.learners.encoding import encode
from sesemi.models.backbones.convnet import ConvNet
from sesemi.models.heads.linear import LinearHead
from sesemi.models.heads.loss import EntropyMinimizationLossHead, StepContext


def _setup(batch_size: int = 4, threshold: float = 0.0):
    torch.manual_seed(0)
    backbones = {"backbone": ConvNet(widths=[4, 8])}
    heads = {"head": LinearHead(8, 3)}
    loss_head = EntropyMinimizationLossHead("unlabeled", threshold=threshold)
    loss_head.build(backbones, heads)
    data = {"unlabeled": (torch.rand(batch_size, 3, 8, 8), torch.full((batch_size,), -1))}
    return backbones, heads, loss_head, data


def _run(backbones, heads, loss_head, data):
    features = encode(loss_head.feature_requests(data), backbones)
    return loss_head(StepContext(data, features, backbones, heads, step=0))


def test_per_sample_entropies_are_finite_and_bounded():
    """One entropy per image, between 0 and log C; no weights."""
    outputs = _run(*_setup(batch_size=4))
    assert outputs.losses.shape == (4,) and outputs.weights is None
    assert torch.isfinite(outputs.losses).all()
    assert (outputs.losses >= 0).all() and (outputs.losses <= math.log(3) + 1e-6).all()


def test_entropy_is_log_c_for_uniform_and_zero_for_certain_predictions():
    """H(uniform) = log C; a near one-hot prediction has near-zero entropy."""
    backbones, heads, loss_head, data = _setup()
    fc = heads["head"].fc
    with torch.no_grad():
        fc.weight.zero_()
        fc.bias.zero_()
    torch.testing.assert_close(
        _run(backbones, heads, loss_head, data).losses, torch.full((4,), math.log(3))
    )
    with torch.no_grad():
        fc.bias.copy_(torch.tensor([100.0, 0.0, 0.0]))
    assert _run(backbones, heads, loss_head, data).losses.max() < 1e-6


def test_gradients_reach_the_backbone_and_the_head():
    """Minimizing the entropy trains the classifier and the backbone."""
    backbones, heads, loss_head, data = _setup()
    loss = _run(backbones, heads, loss_head, data).losses.mean()
    assert loss.ndim == 0 and torch.isfinite(loss)
    loss.backward()
    assert heads["head"].fc.weight.grad.abs().sum() > 0
    assert backbones["backbone"].encoder[0][0].weight.grad.abs().sum() > 0


def test_threshold_counts_only_images_the_model_is_already_sure_of():
    """No image counts while predictions are unsure, every one once they pass the threshold."""
    backbones, heads, loss_head, data = _setup(threshold=0.8)
    fc = heads["head"].fc
    with torch.no_grad():
        fc.weight.zero_()
        fc.bias.zero_()  # uniform: top probability 1/3
    torch.testing.assert_close(_run(backbones, heads, loss_head, data).weights, torch.zeros(4))
    with torch.no_grad():
        fc.bias.copy_(torch.tensor([3.0, 0.0, 0.0]))  # top probability 0.91
    outputs = _run(backbones, heads, loss_head, data)
    torch.testing.assert_close(outputs.weights, torch.ones(4))
    assert not outputs.weights.requires_grad


def test_distribution_alignment_discounts_the_class_the_model_favors():
    """Aligned to a uniform prior, predictions that all lean to one class are less sure of it.

    The running mean is updated from detached predictions: gradients reach the model, never the
    buffer, so no graph is kept from one step to the next.
    """
    backbones, heads, loss_head, data = _setup()
    aligned_head = EntropyMinimizationLossHead("unlabeled", distribution_alignment=True)
    aligned_head.build(backbones, heads)
    aligned_head.alignment.momentum = 0.0  # the running mean is this batch's mean
    fc = heads["head"].fc
    with torch.no_grad():
        fc.bias.copy_(torch.tensor([2.0, 0.0, 0.0]))  # every image leans to class 0
    skewed = _run(backbones, heads, loss_head, data).losses
    outputs = _run(backbones, heads, aligned_head, data)
    assert (outputs.losses > skewed).all()  # class 0 is discounted: less confident, more entropy
    assert not aligned_head.alignment.model_probs.requires_grad
    assert aligned_head.alignment.model_probs[0] > 0.5
    outputs.losses.mean().backward()
    assert fc.weight.grad.abs().sum() > 0

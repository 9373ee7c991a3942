"""Fused encoding of a training step's inputs (sesemi/learners/encoding.py)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from sesemi.errors import SesemiError
from sesemi.learners.encoding import encode
from sesemi.models.backbones.convnet import ConvNet
from sesemi.models.heads.loss.base import FeatureRequest


class Counting(nn.Module):
    """Wraps a backbone and records each call's batch size."""

    def __init__(self, inner: nn.Module):
        super().__init__()
        self.inner = inner
        self.batch_sizes: list[int] = []

    def forward(self, x):
        self.batch_sizes.append(len(x))
        return self.inner(x)


@pytest.fixture
def backbone():
    torch.manual_seed(0)
    return Counting(ConvNet(widths=[4, 8]))


def _inputs(*sizes, side=8):
    return [torch.rand(n, 3, side, side) for n in sizes]


def test_fused_call_runs_the_backbone_once(backbone):
    """Requests for one backbone with equal shapes are encoded in a single forward pass."""
    a, b, c = _inputs(2, 3, 4)
    features = encode(
        [FeatureRequest("a", a), FeatureRequest("b", b), FeatureRequest("c", c)], {"backbone": backbone}
    )
    assert backbone.batch_sizes == [9]
    assert {k: v.shape for k, v in features.items()} == {"a": (2, 8), "b": (3, 8), "c": (4, 8)}


def test_fused_features_equal_separate_calls_in_eval_mode(backbone):
    """Splitting the fused output gives each request its own features (eval mode)."""
    backbone.eval()
    a, b = _inputs(2, 3)
    requests = [FeatureRequest("a", a), FeatureRequest("b", b)]
    fused = encode(requests, {"backbone": backbone})
    separate = encode(requests, {"backbone": backbone}, fuse=False)
    assert backbone.batch_sizes == [5, 2, 3]
    torch.testing.assert_close(fused["a"], separate["a"])
    torch.testing.assert_close(fused["b"], separate["b"])
    torch.testing.assert_close(fused["b"], backbone.inner(b))


def test_requests_fuse_only_within_their_group(backbone):
    """A request in its own group gets its own pass; the others still share one."""
    a, b, c = _inputs(2, 3, 4)
    requests = [FeatureRequest("a", a, group="labeled"), FeatureRequest("b", b), FeatureRequest("c", c)]
    features = encode(requests, {"backbone": backbone})
    assert sorted(backbone.batch_sizes) == [2, 7]
    assert {k: v.shape for k, v in features.items()} == {"a": (2, 8), "b": (3, 8), "c": (4, 8)}


def test_duplicate_keys_are_encoded_once(backbone):
    """Two heads asking for the same key share one encoding."""
    (a,) = _inputs(2)
    features = encode([FeatureRequest("x", a), FeatureRequest("x", a)], {"backbone": backbone})
    assert backbone.batch_sizes == [2]
    assert features["x"].shape == (2, 8)


def test_different_shapes_are_encoded_separately(backbone):
    """Inputs of different sizes cannot be concatenated; each gets its own pass."""
    small, large = _inputs(2, side=8)[0], _inputs(3, side=12)[0]
    features = encode([FeatureRequest("s", small), FeatureRequest("l", large)], {"backbone": backbone})
    assert sorted(backbone.batch_sizes) == [2, 3]
    assert features["s"].shape == (2, 8) and features["l"].shape == (3, 8)


def test_grad_false_requests_have_no_grad(backbone):
    """target=True features (teachers, targets) carry no graph; the others do."""
    a, b = _inputs(2, 2)
    features = encode(
        [FeatureRequest("student", a), FeatureRequest("teacher", b, target=True)], {"backbone": backbone}
    )
    assert features["student"].requires_grad
    assert not features["teacher"].requires_grad
    assert sorted(backbone.batch_sizes) == [2, 2]


def test_targets_join_the_shared_pass_only_without_forward_only_targets(backbone):
    """Without forward_only_targets a target shares its backbone's pass (with gradients), but a
    teacher of its own (another backbone) still runs without autograd."""
    a, b, c = _inputs(2, 2, 3)
    teacher = Counting(ConvNet(widths=[4, 8]))
    requests = [
        FeatureRequest("student", a),
        FeatureRequest("weak", b, target=True),
        FeatureRequest("teacher", c, "teacher", target=True),
    ]
    features = encode(requests, {"backbone": backbone, "teacher": teacher}, forward_only_targets=False)
    assert backbone.batch_sizes == [4] and teacher.batch_sizes == [3]
    assert features["weak"].requires_grad
    assert not features["teacher"].requires_grad


def test_no_grad_context_is_respected(backbone):
    """Under torch.no_grad even grad=True requests produce no graph."""
    (a,) = _inputs(2)
    with torch.no_grad():
        features = encode([FeatureRequest("a", a)], {"backbone": backbone})
    assert not features["a"].requires_grad


def test_each_backbone_gets_its_own_pass():
    """Requests naming different backbones go to the right backbone."""
    torch.manual_seed(0)
    first, second = Counting(ConvNet(widths=[4])), Counting(ConvNet(widths=[6]))
    a, b = _inputs(2, 3)
    features = encode(
        [FeatureRequest("a", a, "first"), FeatureRequest("b", b, "second")], {"first": first, "second": second}
    )
    assert first.batch_sizes == [2] and second.batch_sizes == [3]
    assert features["a"].shape == (2, 4) and features["b"].shape == (3, 6)


def test_unknown_backbone_lists_the_available_ones(backbone):
    """A request for a missing backbone names the ones that exist."""
    (a,) = _inputs(1)
    with pytest.raises((KeyError, SesemiError)) as error:
        encode([FeatureRequest("a", a, "ema")], {"backbone": backbone})
    assert "'ema'" in str(error.value) and "backbone" in str(error.value)


def _running_stats(module: nn.Module) -> list[torch.Tensor]:
    return [b.clone() for name, b in module.named_buffers() if "running" in name]


def test_only_the_stats_group_updates_batch_norm_running_statistics(backbone):
    """Evaluation's statistics come from the labeled pass alone: other passes in the same step
    normalize with their own batch statistics but leave the running ones as they were."""
    labeled, unlabeled = _inputs(4, 6)
    unlabeled = 5 * unlabeled + 3  # a different distribution, as rotated copies or strong views
    alone = Counting(ConvNet(widths=[4, 8]))
    alone.load_state_dict(backbone.state_dict())
    encode([FeatureRequest("l", labeled, group="labeled")], {"backbone": alone})
    requests = [FeatureRequest("l", labeled, group="labeled"), FeatureRequest("u", unlabeled)]
    features = encode(requests, {"backbone": backbone}, stats_group="labeled")
    for kept, expected in zip(_running_stats(backbone), _running_stats(alone), strict=True):
        torch.testing.assert_close(kept, expected)
    sum(f.sum() for f in features.values()).backward()  # both passes still have their graphs
    unnormalized = backbone.inner(unlabeled)  # still batch statistics for the other pass
    torch.testing.assert_close(features["u"], unnormalized)


def test_without_the_stats_group_every_pass_updates_the_running_statistics(backbone):
    """Self-supervised pre-training has no labeled pass: then all passes update them."""
    (unlabeled,) = _inputs(6)
    before = _running_stats(backbone)
    encode([FeatureRequest("u", unlabeled)], {"backbone": backbone}, stats_group="labeled")
    assert any(not torch.equal(a, b) for a, b in zip(before, _running_stats(backbone), strict=True))

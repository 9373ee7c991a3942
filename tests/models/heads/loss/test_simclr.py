"""The SimCLR loss head (sesemi/models/heads/loss/simclr.py)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from sesemi.errors import SesemiError
from sesemi.learners.encoding import encode
from sesemi.models.backbones.convnet import ConvNet
from sesemi.models.heads.loss import SimCLRLossHead, StepContext
from sesemi.models.heads.loss.simclr import nt_xent


def test_nt_xent_is_the_papers_formula():
    """l_i = -log(exp(sim(i, pos) / t) / sum over the 2N - 1 others of exp(sim(i, k) / t))."""
    torch.manual_seed(0)
    z_a, z_b, t = torch.randn(3, 5), torch.randn(3, 5), 0.5
    z = F.normalize(torch.cat([z_a, z_b]), dim=1)
    expected = []
    for i in range(6):
        others = [k for k in range(6) if k != i]
        positive = (i + 3) % 6
        denominator = sum(math.exp(float(z[i] @ z[k]) / t) for k in others)
        expected.append(-math.log(math.exp(float(z[i] @ z[positive]) / t) / denominator))
    torch.testing.assert_close(nt_xent(z_a, z_b, t), torch.tensor(expected))


def test_nt_xent_is_low_when_the_two_views_agree():
    """Matching projections of each item score better than unrelated ones."""
    torch.manual_seed(0)
    z = torch.randn(8, 16)
    assert nt_xent(z, z, 0.5).mean() < nt_xent(z, torch.randn(8, 16), 0.5).mean()


def test_head_trains_the_backbone_through_both_views():
    """Both views are encoded with gradients, one loss per view, and the backbone learns from it."""
    torch.manual_seed(0)
    backbone = ConvNet(widths=[4, 8])
    head = SimCLRLossHead("simclr", projection_dim=4)
    head.build({"backbone": backbone}, {})
    data = {"simclr": ((torch.rand(3, 3, 8, 8), torch.rand(3, 3, 8, 8)), torch.full((3,), -1))}
    requests = head.feature_requests(data)
    assert [r.key for r in requests] == ["simclr/a@backbone", "simclr/b@backbone"] and not any(
        r.target for r in requests
    )
    features = encode(requests, {"backbone": backbone})
    losses = head(StepContext(data, features, {"backbone": backbone}, {}, step=0)).losses
    assert losses.shape == (6,) and torch.isfinite(losses).all()
    losses.mean().backward()
    assert backbone.encoder[0][0].weight.grad.abs().sum() > 0


@pytest.mark.parametrize("options", [{"temperature": 0.0}, {"projection_dim": 0}])
def test_bad_options_are_refused_in_one_line(options):
    with pytest.raises(SesemiError, match="must be"):
        SimCLRLossHead("simclr", **options)

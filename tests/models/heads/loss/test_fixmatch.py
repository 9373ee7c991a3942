"""The FixMatch loss head and its FlexMatch/FreeMatch/SoftMatch thresholds (fixmatch.py)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from sesemi.errors import SesemiError
from sesemi.learners.encoding import encode
from sesemi.models.backbones.convnet import ConvNet
from sesemi.models.heads.linear import LinearHead
from sesemi.models.heads.loss import FixMatchLossHead, StepContext
from sesemi.models.heads.loss.pseudo_labels import Thresholding

EVERY_THRESHOLDING = [t.value for t in Thresholding]


def _setup(batch_size: int = 6, **options):
    torch.manual_seed(0)
    backbones = {"backbone": ConvNet(widths=[4, 8])}
    heads = {"head": LinearHead(8, 3)}
    loss_head = FixMatchLossHead("fixmatch", **options)
    loss_head.build(backbones, heads)
    views = (torch.rand(batch_size, 3, 8, 8), torch.rand(batch_size, 3, 8, 8))
    return backbones, heads, loss_head, {"fixmatch": (views, torch.full((batch_size,), -1))}


def _run(backbones, heads, loss_head, data):
    features = encode(loss_head.feature_requests(data), backbones)
    return loss_head(StepContext(data, features, backbones, heads, step=0)), features


def test_the_weak_view_only_makes_targets():
    """The weak view is asked for as a target (encoded forward-only), the strong one trains."""
    _, _, loss_head, data = _setup()
    weak, strong = loss_head.feature_requests(data)
    assert weak.inputs is data["fixmatch"][0][0] and strong.inputs is data["fixmatch"][0][1]
    assert weak.backbone == strong.backbone == "backbone" and weak.target and not strong.target
    assert weak.key != strong.key


def test_all_pass_a_zero_threshold_and_the_loss_is_cross_entropy_on_the_strong_view():
    backbones, heads, loss_head, data = _setup(threshold=0.0)
    outputs, features = _run(backbones, heads, loss_head, data)
    assert outputs.weights.tolist() == [1.0] * 6
    weak_logits = heads["head"](features[loss_head._key("weak")])
    strong_logits = heads["head"](features[loss_head._key("strong")])
    expected = F.cross_entropy(strong_logits, weak_logits.argmax(dim=1), reduction="none")
    torch.testing.assert_close(outputs.losses, expected)


def test_no_sample_passes_an_unreachable_threshold():
    backbones, heads, loss_head, data = _setup(threshold=1.01)
    outputs, _ = _run(backbones, heads, loss_head, data)
    assert outputs.weights.sum() == 0
    loss = (outputs.losses * outputs.weights).mean()
    assert torch.isfinite(loss) and loss == 0


def test_gradients_flow_through_the_strong_view_only():
    """Pseudo-labels come from the detached weak view; the strong view trains the model."""
    backbones, heads, loss_head, data = _setup(threshold=0.0)
    outputs, features = _run(backbones, heads, loss_head, data)
    weak, strong = features[loss_head._key("weak")], features[loss_head._key("strong")]
    assert not weak.requires_grad  # encoded forward-only: no graph kept for it
    strong.retain_grad()
    loss = (outputs.losses * outputs.weights).mean()
    assert loss.ndim == 0 and torch.isfinite(loss)
    loss.backward()
    assert strong.grad.abs().sum() > 0
    assert heads["head"].fc.weight.grad.abs().sum() > 0
    assert backbones["backbone"].encoder[0][0].weight.grad.abs().sum() > 0


@pytest.mark.parametrize("thresholding", EVERY_THRESHOLDING)
def test_every_thresholding_runs_and_keeps_its_state_in_buffers(thresholding):
    backbones, heads, loss_head, data = _setup(
        thresholding=thresholding, distribution_alignment=True
    )
    outputs, _ = _run(backbones, heads, loss_head, data)
    assert outputs.losses.shape == outputs.weights.shape == (6,)
    assert ((outputs.weights >= 0) & (outputs.weights <= 1)).all()
    if thresholding != "softmatch":  # the one with soft weights
        assert set(outputs.weights.unique().tolist()) <= {0.0, 1.0}
    state = loss_head.state_dict()
    assert "alignment.model_probs" in state
    if thresholding != "fixed":
        assert any(key.startswith("thresholds.") for key in state)


@pytest.mark.parametrize("thresholding", EVERY_THRESHOLDING)
def test_trains_under_bfloat16_autocast_with_float32_statistics(thresholding):
    """`trainer.precision=bf16-mixed` (on a GPU or a CPU): running statistics stay float32."""
    backbones, heads, loss_head, data = _setup(
        thresholding=thresholding, distribution_alignment=True, threshold=0.0
    )
    with torch.autocast("cpu", dtype=torch.bfloat16):
        outputs, _ = _run(backbones, heads, loss_head, data)
    (outputs.losses * outputs.weights).mean().backward()
    assert torch.isfinite(outputs.losses).all()
    assert all(buffer.dtype in (torch.float32, torch.long) for buffer in loss_head.buffers())
    assert not torch.allclose(loss_head.alignment.model_probs, torch.full((3,), 1 / 3))


def test_options_reach_the_threshold_class():
    _, _, loss_head, _ = _setup(thresholding="freematch", threshold_options={"momentum": 0.9})
    assert loss_head.thresholds.momentum == 0.9 and loss_head.alignment is None


def test_fairness_adds_freematchs_term_with_its_weight_and_follows_the_pool_in_training():
    backbones, heads, loss_head, data = _setup(thresholding="freematch", threshold=0.0, fairness=0.5)
    outputs, features = _run(backbones, heads, loss_head, data)
    strong_logits = heads["head"](features[loss_head._key("strong")])
    fairness = loss_head.class_fairness
    torch.testing.assert_close(outputs.extra, 0.5 * fairness(strong_logits, outputs.weights))
    assert outputs.extra.requires_grad  # it trains the strong view
    moved = fairness.class_histogram.clone()
    assert not torch.allclose(moved, torch.full((3,), 1 / 3))
    loss_head.eval()
    _run(backbones, heads, loss_head, data)
    assert torch.equal(fairness.class_histogram, moved)


def test_without_fairness_the_head_has_no_term_and_no_state_of_it():
    """The default (0): a checkpoint of a run without the term loads as before."""
    _, _, loss_head, data = _setup(thresholding="freematch")
    assert loss_head.class_fairness is None and not any("fairness" in key for key in loss_head.state_dict())
    with pytest.raises(SesemiError, match="fairness is the weight of a term, at least 0"):
        FixMatchLossHead("fixmatch", fairness=-0.01)


def test_unknown_thresholding_is_refused_with_the_choices():
    with pytest.raises(SesemiError) as error:
        FixMatchLossHead("fixmatch", thresholding="flex")
    assert str(error.value) == "thresholding must be one of fixed, flexmatch, freematch, softmatch, not 'flex'"


@pytest.mark.parametrize("thresholding", EVERY_THRESHOLDING)
def test_a_floor_above_the_threshold_is_refused(thresholding):
    """threshold 0.7 with min_threshold 0.8 would train at 0.8: refused, naming both values."""
    with pytest.raises(SesemiError, match="min_threshold 0.8 is above threshold 0.7"):
        FixMatchLossHead("fixmatch", thresholding=thresholding, threshold=0.7, min_threshold=0.8)


def _probs(confidence: float, num_classes: int = 3) -> torch.Tensor:
    """Two predictions of classes 0 and 1 with the given top probability."""
    probs = torch.full((2, num_classes), (1.0 - confidence) / (num_classes - 1))
    probs[[0, 1], [0, 1]] = confidence
    return probs


def test_fixed_threshold_trains_at_the_threshold_given_not_the_floor():
    """The configs' pair (0.95, floor 0.8): a fixed threshold keeps 0.95, the floor is unused."""
    _, _, loss_head, _ = _setup(thresholding="fixed", threshold=0.95, min_threshold=0.8)
    assert loss_head.thresholds.threshold == 0.95
    assert loss_head.thresholds(_probs(0.94)).tolist() == [0.0, 0.0]
    assert loss_head.thresholds(_probs(0.96)).tolist() == [1.0, 1.0]


@pytest.mark.parametrize("thresholding", ["flexmatch", "freematch"])
def test_adaptive_thresholds_start_at_the_floor_below_the_threshold(thresholding):
    """The configs' pair (0.95, floor 0.8): adaptive thresholds start at the floor."""
    _, _, loss_head, _ = _setup(thresholding=thresholding, threshold=0.95, min_threshold=0.8)
    torch.testing.assert_close(loss_head.thresholds.class_thresholds(), torch.full((3,), 0.8))
    loss_head.eval()
    assert loss_head.thresholds(_probs(0.79)).tolist() == [0.0, 0.0]
    assert loss_head.thresholds(_probs(0.81)).tolist() == [1.0, 1.0]


def test_the_pool_prior_scores_the_pool_under_its_estimate_and_is_reported():
    """With pool_prior, both views are scored under the estimated prior; the estimate moves in
    training, is reported with the pool's statistics, and excludes distribution alignment."""
    backbones, heads, loss_head, data = _setup(threshold=0.0, pool_prior=True)
    loss_head.prior.prior.copy_(torch.tensor([0.7, 0.2, 0.1]))
    outputs, features = _run(backbones, heads, loss_head, data)
    log_prior = torch.tensor([0.7, 0.2, 0.1]).log()
    weak_logits = heads["head"](features[loss_head._key("weak")]) + log_prior
    strong_logits = heads["head"](features[loss_head._key("strong")]) + log_prior
    expected = F.cross_entropy(strong_logits, weak_logits.argmax(dim=1), reduction="none")
    torch.testing.assert_close(outputs.losses, expected)
    moved = loss_head.prior.prior.clone()
    torch.testing.assert_close(moved, 0.99 * torch.tensor([0.7, 0.2, 0.1]) + 0.01 * weak_logits.softmax(dim=1).mean(dim=0))
    assert loss_head.statistics()["estimated_pool_prior"] == [round(float(p), 4) for p in moved]
    assert loss_head.alignment is None
    with pytest.raises(SesemiError, match="set distribution_alignment=false to use pool_prior"):
        FixMatchLossHead("fixmatch", pool_prior=True, distribution_alignment=True)

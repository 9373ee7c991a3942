"""Pi-model and mean-teacher loss heads (sesemi/models/heads/loss/consistency.py)."""

from __future__ import annotations

import copy

import pytest
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader

from sesemi.callbacks import EMA
from sesemi.errors import SesemiError
from sesemi.learners.classifier import Classifier
from sesemi.learners.encoding import encode
from sesemi.models.backbones.convnet import ConvNet
from sesemi.models.heads.linear import LinearHead
from sesemi.models.heads.loss import MeanTeacherLossHead, PiModelLossHead, StepContext


def _models(teacher: bool):
    torch.manual_seed(0)
    backbones = {"backbone": ConvNet(widths=[4, 8])}
    heads = {"head": LinearHead(8, 3)}
    if teacher:
        backbones["backbone_ema"] = copy.deepcopy(backbones["backbone"])
        heads["head_ema"] = copy.deepcopy(heads["head"])
    return backbones, heads


def _data(same_views: bool = False, batch_size: int = 4):
    first = torch.rand(batch_size, 3, 8, 8)
    second = first.clone() if same_views else torch.rand(batch_size, 3, 8, 8)
    return {"consistency": ((first, second), torch.full((batch_size,), -1))}


def _run(loss_head, backbones, heads, data, forward_only_targets=True):
    features = encode(loss_head.feature_requests(data), backbones, forward_only_targets=forward_only_targets)
    return loss_head(StepContext(data, features, backbones, heads, step=0)), features


def test_pi_model_asks_for_its_second_view_as_a_target():
    """Both views go through the student, under distinct keys; the second only makes targets."""
    loss_head = PiModelLossHead("consistency")
    student, target = loss_head.feature_requests(_data())
    assert student.backbone == target.backbone == "backbone"
    assert not student.target and target.target and student.key != target.key


@pytest.mark.parametrize("forward_only", [True, False])
def test_pi_model_target_gets_no_gradient(forward_only):
    """Gradients flow through the first view only: the second view's prediction is a target,
    encoded forward-only (no graph at all) or in the shared pass and detached."""
    backbones, heads = _models(teacher=False)
    loss_head = PiModelLossHead("consistency")
    outputs, features = _run(loss_head, backbones, heads, _data(), forward_only)
    student_key, target_key = loss_head._keys()
    assert features[target_key].requires_grad is not forward_only
    if not forward_only:
        features[target_key].retain_grad()
    features[student_key].retain_grad()
    loss = outputs.losses.mean()
    assert outputs.losses.shape == (4,) and outputs.weights is None and torch.isfinite(loss)
    loss.backward()
    assert features[student_key].grad.abs().sum() > 0
    assert forward_only or features[target_key].grad is None
    assert backbones["backbone"].encoder[0][0].weight.grad.abs().sum() > 0


def test_pi_model_compares_two_different_views():
    """In eval mode (no dropout or batch statistics) two different views still disagree."""
    backbones, heads = _models(teacher=False)
    backbones["backbone"].eval()
    loss_head = PiModelLossHead("consistency")
    assert _run(loss_head, backbones, heads, _data())[0].losses.sum() > 0
    torch.testing.assert_close(
        _run(loss_head, backbones, heads, _data(same_views=True))[0].losses, torch.zeros(4)
    )


def test_mean_teacher_runs_the_ema_model_without_gradients():
    """The teacher's view is encoded by backbone_ema as a target (forward-only)."""
    loss_head = MeanTeacherLossHead("consistency")
    student, teacher = loss_head.feature_requests(_data())
    assert (student.backbone, student.target) == ("backbone", False)
    assert (teacher.backbone, teacher.target) == ("backbone_ema", True)


def test_mean_teacher_loss_is_nonzero_when_teacher_and_student_differ():
    """Same views, different weights: the loss must see the difference (no self-comparison)."""
    backbones, heads = _models(teacher=True)
    for module in (*backbones.values(), *heads.values()):
        module.eval()
    loss_head = MeanTeacherLossHead("consistency")
    data = _data(same_views=True)
    torch.testing.assert_close(_run(loss_head, backbones, heads, data)[0].losses, torch.zeros(4))
    with torch.no_grad():
        heads["head_ema"].fc.weight.add_(torch.randn_like(heads["head_ema"].fc.weight))
    assert _run(loss_head, backbones, heads, data)[0].losses.min() > 0


def test_mean_teacher_gradients_reach_the_student_only():
    """The student's backbone and head get gradients; the EMA teacher gets none."""
    backbones, heads = _models(teacher=True)
    with torch.no_grad():
        heads["head_ema"].fc.bias.add_(1.0)
    outputs, _ = _run(MeanTeacherLossHead("consistency"), backbones, heads, _data())
    outputs.losses.mean().backward()
    assert heads["head"].fc.weight.grad.abs().sum() > 0
    assert backbones["backbone"].encoder[0][0].weight.grad.abs().sum() > 0
    teacher = [*backbones["backbone_ema"].parameters(), *heads["head_ema"].parameters()]
    assert all(p.grad is None for p in teacher)


@pytest.mark.parametrize("threshold, passing", [(0.0, 4), (0.3, 4), (0.99, 0)])
def test_threshold_masks_images_the_teacher_is_unsure_of(threshold, passing):
    """The top probability of 3 classes is at least 1/3 and a fresh model is barely surer:
    0.99 masks every image, 0.3 none; without a threshold there is no mask at all."""
    backbones, heads = _models(teacher=True)
    outputs, _ = _run(MeanTeacherLossHead("consistency", threshold=threshold), backbones, heads, _data())
    if threshold == 0.0:
        assert outputs.weights is None
    else:
        assert outputs.weights.sum() == passing


def test_mean_teacher_without_the_ema_callback_says_so():
    """Without backbone_ema the encoder fails with a hint to add the EMA callback."""
    backbones, heads = _models(teacher=False)
    loss_head = MeanTeacherLossHead("consistency")
    with pytest.raises(SesemiError, match="EMA"):
        encode(loss_head.feature_requests(_data()), backbones)


def test_mean_teacher_trains_inside_the_classifier_with_the_ema_callback(make_hparams, tmp_path):
    """Two fit steps: the EMA callback supplies the teacher and the consistency loss is logged."""
    hparams = make_hparams(rotation=False)
    hparams["model"]["regularization_loss_heads"] = {
        "consistency": {
            "head": {
                "_target_": "sesemi.models.heads.loss.MeanTeacherLossHead",
                "input_data": "consistency",
            },
            "reduction": "mean",
            "scale_factor": 1.0,
        }
    }
    labeled = [(torch.rand(3, 8, 8), i % 3) for i in range(4)]
    unlabeled = [((torch.rand(3, 8, 8), torch.rand(3, 8, 8)), -1) for _ in range(4)]
    loaders = {
        "supervised": DataLoader(labeled, batch_size=4),
        "consistency": DataLoader(unlabeled, batch_size=4),
    }
    model = Classifier(hparams)
    trainer = pl.Trainer(
        max_steps=2,
        callbacks=[EMA(decay=0.5)],
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
    )
    trainer.fit(model, train_dataloaders=loaders)
    assert "backbone_ema" in model.backbones and "head_ema" in model.heads
    loss = trainer.callback_metrics["train/consistency_loss"]
    assert torch.isfinite(loss) and loss > 0


@pytest.mark.parametrize("head_class", [PiModelLossHead, MeanTeacherLossHead])
def test_distribution_alignment_evens_out_the_targets(head_class):
    """Aligned targets spread over the classes even when the teacher favors one of them."""
    backbones, heads = _models(teacher=True)
    for name in ("head", "head_ema"):
        with torch.no_grad():
            heads[name].fc.bias.copy_(torch.tensor([3.0, 0.0, 0.0]))  # every target leans to class 0
    plain = head_class("consistency")
    aligned = head_class("consistency", distribution_alignment=True)
    for loss_head in (plain, aligned):
        loss_head.build(backbones, heads)
    aligned.alignment.momentum = 0.0  # the running mean is this batch's mean
    data = _data()
    plain_outputs, _ = _run(plain, backbones, heads, data)
    aligned_outputs, _ = _run(aligned, backbones, heads, data)
    assert plain.alignment is None
    assert aligned.alignment.model_probs[0] > 0.8
    # The student leans to class 0 like the teacher, so only the aligned targets disagree with it.
    assert (aligned_outputs.losses > plain_outputs.losses).all()
    aligned_outputs.losses.mean().backward()
    assert heads["head"].fc.weight.grad.abs().sum() > 0

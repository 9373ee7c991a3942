"""Consistency regularization: Pi model and mean teacher.

Laine & Aila, "Temporal Ensembling for Semi-Supervised Learning" (the Pi model), ICLR 2017,
https://arxiv.org/abs/1610.02242; Tarvainen & Valpola, "Mean teachers are better role models",
NeurIPS 2017, https://arxiv.org/abs/1703.01780. Read two stochastic views of each unlabeled
image, e.g. with `sesemi.transforms.MultiView([augment, augment])`. The optional confidence
threshold on the teacher follows French et al., "Self-ensembling for visual domain
adaptation", ICLR 2018, https://arxiv.org/abs/1706.05208; the optional distribution
alignment of its targets follows ReMixMatch (Berthelot et al. 2020,
https://arxiv.org/abs/1911.09785).
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from sesemi.models.heads.loss.base import (
    Batch,
    FeatureRequest,
    LossHead,
    LossOutputs,
    StepContext,
    feature_key,
)
from sesemi.models.heads.loss.pseudo_labels import (
    DistributionAlignment,
    confidence_mask,
    num_classes_of,
)


class ConsistencyLossHead(LossHead):
    """||f_student(view_1) - f_teacher(view_2)||^2 of the class probabilities, per image.

    `batch[input_data]` is `((view_1, view_2), labels)`; the labels are ignored. The student
    always sees the first view and the teacher the second, so the two never compare a view
    with itself. The teacher's prediction is a target: no gradient flows through it. The loss
    sums over classes (the papers' mean times the number of classes), so its weight does not
    shrink as classes are added.

    With a `threshold`, only images whose teacher prediction is at least that confident count
    (the per-sample weights are the mask): a weak early teacher's near-uniform guesses would
    otherwise pull the student away from what the labels teach it. With
    `distribution_alignment`, the teacher's predictions are divided by their running mean over
    unlabeled batches (renormalized) before they become targets, so that the targets do not
    drift onto the classes the model already favors.

    Args:
        input_data: The training loader with the two views.
        input_backbone: The student's backbone.
        predict_head: The student's classification head.
        teacher_backbone: The teacher's backbone (e.g. `backbone_ema`).
        teacher_head: The teacher's classification head (e.g. `head_ema`).
        threshold: The least top probability of the teacher for an image to count (0: all do).
        distribution_alignment: Whether to align the teacher's predictions to a uniform class prior.
    """

    def __init__(
        self,
        input_data: str,
        input_backbone: str = "backbone",
        predict_head: str = "head",
        teacher_backbone: str = "backbone",
        teacher_head: str = "head",
        threshold: float = 0.0,
        distribution_alignment: bool = False,
    ):
        super().__init__(input_data, input_backbone)
        self.predict_head = predict_head
        self.teacher_backbone = teacher_backbone
        self.teacher_head = teacher_head
        self.threshold = threshold
        self.distribution_alignment = distribution_alignment
        self.alignment: DistributionAlignment | None = None  # made by build()

    def build(self, backbones: Mapping[str, nn.Module], heads: Mapping[str, nn.Module]) -> None:
        num_classes = num_classes_of(heads[self.predict_head])
        self.alignment = DistributionAlignment(num_classes) if self.distribution_alignment else None

    def _keys(self) -> tuple[str, str]:
        return (
            feature_key(self.input_data, self.input_backbone, "student"),
            feature_key(self.input_data, self.teacher_backbone, "teacher"),
        )

    def feature_requests(self, batch: Batch) -> list[FeatureRequest]:
        student_view, teacher_view = batch[self.input_data][0]
        student_key, teacher_key = self._keys()
        return [
            FeatureRequest(student_key, student_view, self.input_backbone),
            FeatureRequest(teacher_key, teacher_view, self.teacher_backbone, target=True),
        ]

    def forward(self, context: StepContext) -> LossOutputs:
        student_key, teacher_key = self._keys()
        with torch.no_grad():
            targets = context.heads[self.teacher_head](context.features[teacher_key]).softmax(dim=1)
            if self.alignment is not None:
                targets = self.alignment(targets)
        probs = context.heads[self.predict_head](context.features[student_key]).softmax(dim=1)
        mask = confidence_mask(targets, self.threshold) if self.threshold > 0 else None
        return LossOutputs((probs - targets).pow(2).sum(dim=1), mask)


class PiModelLossHead(ConsistencyLossHead):
    """The Pi model: the student's prediction on the second view is the target for the first."""

    def __init__(
        self,
        input_data: str,
        input_backbone: str = "backbone",
        predict_head: str = "head",
        threshold: float = 0.0,
        distribution_alignment: bool = False,
    ):
        super().__init__(
            input_data,
            input_backbone,
            predict_head,
            input_backbone,
            predict_head,
            threshold,
            distribution_alignment,
        )


class MeanTeacherLossHead(ConsistencyLossHead):
    """Mean teacher: the target comes from the exponential moving average of the student.

    Needs the `sesemi.callbacks.EMA` callback, which provides `backbone_ema` and `head_ema`
    and makes the average the model that is evaluated and saved.
    """

    def __init__(
        self,
        input_data: str,
        input_backbone: str = "backbone",
        predict_head: str = "head",
        teacher_backbone: str = "backbone_ema",
        teacher_head: str = "head_ema",
        threshold: float = 0.0,
        distribution_alignment: bool = False,
    ):
        super().__init__(
            input_data,
            input_backbone,
            predict_head,
            teacher_backbone,
            teacher_head,
            threshold,
            distribution_alignment,
        )

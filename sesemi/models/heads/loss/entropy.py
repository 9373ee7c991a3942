"""Entropy minimization: make the predictions on unlabeled images confident.

Grandvalet & Bengio, "Semi-supervised Learning by Entropy Minimization", NeurIPS 2004,
https://papers.nips.cc/paper/2740-semi-supervised-learning-by-entropy-minimization. The
optional confidence threshold is the one pseudo-labeling uses (Sohn et al., FixMatch, 2020);
the optional distribution alignment follows ReMixMatch (Berthelot et al. 2020,
https://arxiv.org/abs/1911.09785).
"""

from __future__ import annotations

from collections.abc import Mapping

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


class EntropyMinimizationLossHead(LossHead):
    """The entropy H(p) = -sum_c p_c log p_c of each unlabeled image's class prediction.

    `batch[input_data]` is `(images, labels)`; the labels are ignored. With a `threshold`, only
    images whose top probability already reaches it count: sharpening a weak model's unsure
    guesses makes it confident in its mistakes, and they pull against the labels. With
    `distribution_alignment`, the entropy is that of the predictions divided by their running
    mean over unlabeled batches (renormalized): sharpening then cannot pile the predictions onto
    the classes the model already favors.

    Args:
        input_data: The training loader of unlabeled images.
        input_backbone: The backbone that encodes them.
        predict_head: The classification head whose predictions are sharpened.
        threshold: The least top probability for an image to count (0: all do, as in the paper).
        distribution_alignment: Whether to align the predictions to a uniform class prior.
    """

    def __init__(
        self,
        input_data: str,
        input_backbone: str = "backbone",
        predict_head: str = "head",
        threshold: float = 0.0,
        distribution_alignment: bool = False,
    ):
        super().__init__(input_data, input_backbone)
        self.predict_head = predict_head
        self.threshold = threshold
        self.distribution_alignment = distribution_alignment
        self.alignment: DistributionAlignment | None = None  # made by build()

    def build(self, backbones: Mapping[str, nn.Module], heads: Mapping[str, nn.Module]) -> None:
        num_classes = num_classes_of(heads[self.predict_head])
        self.alignment = DistributionAlignment(num_classes) if self.distribution_alignment else None

    def _key(self) -> str:
        return feature_key(self.input_data, self.input_backbone)

    def feature_requests(self, batch: Batch) -> list[FeatureRequest]:
        return [FeatureRequest(self._key(), batch[self.input_data][0], self.input_backbone)]

    def forward(self, context: StepContext) -> LossOutputs:
        logits = context.heads[self.predict_head](context.features[self._key()])
        if self.alignment is not None:
            logits = self.alignment.align_logits(logits)
        log_probs = logits.log_softmax(dim=1)
        probs = log_probs.exp()
        mask = confidence_mask(probs.detach(), self.threshold) if self.threshold > 0 else None
        return LossOutputs(-(probs * log_probs).sum(dim=1), mask)

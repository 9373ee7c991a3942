"""Entropy minimization: make the predictions on unlabeled images confident.

Grandvalet & Bengio, "Semi-supervised Learning by Entropy Minimization", NeurIPS 2004,
https://papers.nips.cc/paper/2740-semi-supervised-learning-by-entropy-minimization. The
optional confidence threshold is the one pseudo-labeling uses (Sohn et al., FixMatch, 2020).
"""

from __future__ import annotations

from collections.abc import Mapping

from torch import Tensor, nn

from sesemi.models.heads.loss.base import Batch, FeatureRequest, LossHead, LossOutputs, feature_key
from sesemi.models.heads.loss.pseudo_labels import confidence_mask


class EntropyMinimizationLossHead(LossHead):
    """The entropy H(p) = -sum_c p_c log p_c of each unlabeled image's class prediction.

    `data[input_data]` is `(images, labels)`; the labels are ignored. With a `threshold`, only
    images whose top probability already reaches it count: sharpening a weak model's unsure
    guesses makes it confident in its mistakes, and they pull against the labels.

    Args:
        input_data: The training loader of unlabeled images.
        input_backbone: The backbone that encodes them.
        predict_head: The classification head whose predictions are sharpened.
        threshold: The least top probability for an image to count (0: all do, as in the paper).
    """

    def __init__(
        self,
        input_data: str,
        input_backbone: str = "backbone",
        predict_head: str = "head",
        threshold: float = 0.0,
    ):
        super().__init__(input_data, input_backbone)
        self.predict_head = predict_head
        self.threshold = threshold

    def _key(self) -> str:
        return feature_key(self.input_data, self.input_backbone)

    def feature_requests(self, data: Batch) -> list[FeatureRequest]:
        return [FeatureRequest(self._key(), data[self.input_data][0], self.input_backbone)]

    def forward(
        self,
        data: Batch,
        backbones: Mapping[str, nn.Module],
        heads: Mapping[str, nn.Module],
        features: Mapping[str, Tensor],
        step: int,
    ) -> LossOutputs:
        log_probs = heads[self.predict_head](features[self._key()]).log_softmax(dim=1)
        probs = log_probs.exp()
        mask = confidence_mask(probs.detach(), self.threshold) if self.threshold > 0 else None
        return LossOutputs(-(probs * log_probs).sum(dim=1), mask)

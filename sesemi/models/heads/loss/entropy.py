"""Entropy minimization: make the predictions on unlabeled images confident.

Grandvalet & Bengio, "Semi-supervised Learning by Entropy Minimization", NeurIPS 2004,
https://papers.nips.cc/paper/2740-semi-supervised-learning-by-entropy-minimization
"""

from __future__ import annotations

from collections.abc import Mapping

from torch import Tensor, nn

from sesemi.models.heads.loss.base import Batch, FeatureRequest, LossHead, LossOutputs, feature_key


class EntropyMinimizationLossHead(LossHead):
    """The entropy H(p) = -sum_c p_c log p_c of each unlabeled image's class prediction.

    `data[input_data]` is `(images, labels)`; the labels are ignored.

    Args:
        input_data: The training loader of unlabeled images.
        input_backbone: The backbone that encodes them.
        predict_head: The classification head whose predictions are sharpened.
    """

    def __init__(
        self, input_data: str, input_backbone: str = "backbone", predict_head: str = "head"
    ):
        super().__init__(input_data, input_backbone)
        self.predict_head = predict_head

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
        return LossOutputs(-(log_probs.exp() * log_probs).sum(dim=1))

"""Rotation prediction: classify by how much each unlabeled image was rotated.

Gidaris et al., "Unsupervised Representation Learning by Predicting Image Rotations",
ICLR 2018, https://arxiv.org/abs/1803.07728. Pair it with `sesemi.collation.RotationTransformer`.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch.nn.functional as F
from torch import Tensor, nn

from sesemi.collation import NUM_ROTATIONS
from sesemi.models.heads.loss.base import Batch, FeatureRequest, LossHead, LossOutputs, feature_key


class RotationPredictionLossHead(LossHead):
    """Cross-entropy of a linear rotation classifier on the backbone's features.

    `data[input_data]` is `(rotated_images, rotation_labels, ...)` as RotationTransformer makes it.
    """

    def build(self, backbones: Mapping[str, nn.Module], heads: Mapping[str, nn.Module]) -> None:
        self.fc = nn.Linear(backbones[self.input_backbone].out_features, NUM_ROTATIONS)

    def feature_requests(self, data: Batch) -> list[FeatureRequest]:
        images = data[self.input_data][0]
        return [FeatureRequest(feature_key(self.input_data, self.input_backbone), images, self.input_backbone)]

    def forward(
        self,
        data: Batch,
        backbones: Mapping[str, nn.Module],
        heads: Mapping[str, nn.Module],
        features: Mapping[str, Tensor],
        step: int,
    ) -> LossOutputs:
        rotation_labels = data[self.input_data][1]
        logits = self.fc(features[feature_key(self.input_data, self.input_backbone)])
        return LossOutputs(F.cross_entropy(logits, rotation_labels, reduction="none"))

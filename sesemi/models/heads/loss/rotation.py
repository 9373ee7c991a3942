"""Rotation prediction: classify by how much each unlabeled image was rotated.

Gidaris et al., "Unsupervised Representation Learning by Predicting Image Rotations",
ICLR 2018, https://arxiv.org/abs/1803.07728. Pair it with `sesemi.collation.RotationTransformer`.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch.nn.functional as F
from torch import nn

from sesemi.collation import NUM_ROTATIONS
from sesemi.models.heads.loss.base import (
    Batch,
    FeatureRequest,
    LossHead,
    LossOutputs,
    StepContext,
    feature_key,
)


class RotationPredictionLossHead(LossHead):
    """Cross-entropy of a linear rotation classifier on the backbone's features.

    `batch[input_data]` is `(rotated_images, rotation_labels, ...)` as RotationTransformer makes it.
    """

    def build(self, backbones: Mapping[str, nn.Module], heads: Mapping[str, nn.Module]) -> None:
        self.fc = nn.Linear(backbones[self.input_backbone].out_features, NUM_ROTATIONS)

    def _key(self) -> str:
        return feature_key(self.input_data, self.input_backbone)

    def feature_requests(self, batch: Batch) -> list[FeatureRequest]:
        return [FeatureRequest(self._key(), batch[self.input_data][0], self.input_backbone)]

    def forward(self, context: StepContext) -> LossOutputs:
        rotation_labels = context.batch[self.input_data][1]
        logits = self.fc(context.features[self._key()])
        return LossOutputs(F.cross_entropy(logits, rotation_labels, reduction="none"))

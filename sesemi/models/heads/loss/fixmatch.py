"""FixMatch and its adaptive-threshold variants FlexMatch and FreeMatch.

Sohn et al., "FixMatch: Simplifying Semi-Supervised Learning with Consistency and Confidence",
NeurIPS 2020, https://arxiv.org/abs/2001.07685. The thresholds of FlexMatch
(https://arxiv.org/abs/2110.08263) and FreeMatch (https://arxiv.org/abs/2205.07246) and
distribution alignment are in `pseudo_labels.py`. Read weak and strong views of each unlabeled
image, e.g. with `sesemi.transforms.MultiView([weak, strong])`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from sesemi.errors import one_of
from sesemi.models.heads.loss.base import (
    Batch,
    FeatureRequest,
    LossHead,
    LossOutputs,
    StepContext,
    feature_key,
)
from sesemi.models.heads.loss.pseudo_labels import (
    THRESHOLDS,
    DistributionAlignment,
    Thresholding,
    check_floor,
    num_classes_of,
)

VIEWS = ("weak", "strong")


class FixMatchLossHead(LossHead):
    """Cross-entropy of the strong view against the confident hard pseudo-labels of the weak view.

    `batch[input_data]` is `((weak_images, strong_images), labels)`; the labels are ignored. The
    per-sample weights are the confidence mask, so with "mean" reduction the loss is averaged
    over all unlabeled images, as in the paper. The weak view shares the fused forward pass with
    the other inputs (one batch-norm pass); its predictions are detached.

    Args:
        input_data: The training loader with the two views.
        input_backbone: The backbone that encodes them.
        predict_head: The classification head that predicts both views.
        thresholding: "fixed" (FixMatch), "flexmatch" or "freematch" (see `pseudo_labels.py`).
        threshold: The confidence threshold (FreeMatch: an upper bound of its global threshold).
        min_threshold: A floor under the adaptive thresholds, which otherwise start near 0 and
            stay there for classes the model never gets confident about. A fixed threshold has
            no floor and ignores it. A floor above `threshold` is refused: it would replace it.
        distribution_alignment: Whether to align the weak predictions to a uniform class prior
            before thresholding.
        threshold_options: More arguments of the threshold class (e.g. FreeMatch's `momentum`).
    """

    def __init__(
        self,
        input_data: str,
        input_backbone: str = "backbone",
        predict_head: str = "head",
        thresholding: Thresholding | str = "fixed",
        threshold: float = 0.95,
        min_threshold: float = 0.0,
        distribution_alignment: bool = False,
        threshold_options: Mapping[str, Any] | None = None,
    ):
        super().__init__(input_data, input_backbone)
        self.thresholding = one_of(Thresholding, thresholding, "thresholding")
        check_floor(threshold, min_threshold)
        self.predict_head = predict_head
        self.threshold = threshold
        self.min_threshold = min_threshold
        self.distribution_alignment = distribution_alignment
        self.threshold_options = dict(threshold_options or {})

    def build(self, backbones: Mapping[str, nn.Module], heads: Mapping[str, nn.Module]) -> None:
        num_classes = num_classes_of(heads[self.predict_head])
        options = dict(self.threshold_options)
        if self.thresholding is not Thresholding.FIXED:
            options["min_threshold"] = self.min_threshold
        self.thresholds = THRESHOLDS[self.thresholding](num_classes, self.threshold, **options)
        self.alignment = DistributionAlignment(num_classes) if self.distribution_alignment else None

    def _key(self, view: str) -> str:
        return feature_key(self.input_data, self.input_backbone, view)

    def feature_requests(self, batch: Batch) -> list[FeatureRequest]:
        weak, strong = batch[self.input_data][0]
        return [
            FeatureRequest(self._key("weak"), weak, self.input_backbone, target=True),
            FeatureRequest(self._key("strong"), strong, self.input_backbone),
        ]

    def forward(self, context: StepContext) -> LossOutputs:
        head = context.heads[self.predict_head]
        with torch.no_grad():
            # float32 under mixed precision: bfloat16 cannot tell 0.95 from 0.949
            probs_weak = head(context.features[self._key("weak")]).float().softmax(dim=1)
            if self.alignment is not None:
                probs_weak = self.alignment(probs_weak)
            mask = self.thresholds(probs_weak)
            pseudo_labels = probs_weak.argmax(dim=1)
        logits_strong = head(context.features[self._key("strong")])
        # l_u = 1/(mu B) sum_b 1[max p_weak >= tau] H(argmax p_weak, p_strong); the mask is the weight
        return LossOutputs(F.cross_entropy(logits_strong, pseudo_labels, reduction="none"), mask)

"""IOMatch: pseudo-labels for the inliers of an open-set pool, and an "other" class for its outliers.

Li, Qi, Shi and Gao, "IOMatch: Simplifying Open-Set Semi-Supervised Learning with Joint Inliers
and Outliers Utilization", ICCV 2023, https://arxiv.org/abs/2308.13168. On a projection of the
backbone's features, C one-vs-all detectors learn on the labeled batch which inputs belong to
each class. An unlabeled input's outlier score is its detectors' "not mine" weighted by the
model's class probabilities, sum_c p_c (1 - o_c); at 0.5 or more it gets no pseudo-label (the
FixMatch loss of `fixmatch.py` with its thresholds, on the inliers). Unlike the outlier filter
of `fixmatch.py`, the pool's outliers are not thrown away: a (C + 1)-way open-set classifier on
the same projection learns from every unlabeled input, the strong view against the weak view's
soft open-set target q = (p_1 o_1, ..., p_C o_C, sum_c p_c (1 - o_c)), where it is confident
(max q at least `open_set_threshold`). The detectors need no labels of outliers and no
unlabeled-data terms of their own, which is what makes them usable with a few labels per class.

Differences from the paper: the unlabeled loss's schedule (`run.rampup`) stands in for its first
epoch without the open-set loss, and the outlier score uses the model's probabilities before
distribution alignment. The projection, detectors and open-set classifier only serve training:
they are saved in checkpoints, not with the published model.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor, nn

from sesemi.errors import SesemiError
from sesemi.models.heads.loss.base import LABELED, StepContext, projection_mlp
from sesemi.models.heads.loss.fixmatch import FixMatchLossHead, labeled_features
from sesemi.models.heads.loss.pseudo_labels import num_classes_of, one_vs_all_loss


def open_set_targets(probs: Tensor, inlier: Tensor) -> Tensor:
    """IOMatch's open-set targets `[N, C + 1]` from class probabilities `[N, C]` and the detectors'
    probabilities of "mine" `[N, C]`: p_c o_c for each class, and sum_c p_c (1 - o_c) for "other"."""
    return torch.cat([probs * inlier, (probs * (1 - inlier)).sum(dim=1, keepdim=True)], dim=1)


class IOMatchLossHead(FixMatchLossHead):
    """FixMatch on the inliers of the pool, and an open-set classifier trained on all of it.

    Args:
        input_data: The training loader with the weak and strong views.
        input_backbone: The backbone that encodes them.
        predict_head: The classification head that predicts both views.
        projection_dim: The size of the projection the detectors and the open-set classifier
            read (the paper's 128).
        open_set_threshold: The confidence in the open-set target at which an input trains the
            open-set classifier (the paper's 0.5).
        outlier_threshold: The outlier score at which an input gets no pseudo-label (0.5).
        **options: The options of `FixMatchLossHead` (thresholding, threshold, min_threshold,
            distribution_alignment, ...); its `outlier_filter` is OpenMatch's and is refused.
    """

    def __init__(
        self,
        input_data: str,
        input_backbone: str = "backbone",
        predict_head: str = "head",
        projection_dim: int = 128,
        open_set_threshold: float = 0.5,
        outlier_threshold: float = 0.5,
        **options: Any,
    ):
        if options.get("outlier_filter"):
            raise SesemiError(
                "IOMatch judges outliers with detectors of its own: drop outlier_filter "
                "(OpenMatch's filter of method=fixmatch)"
            )
        options.pop("outlier_filter", None)
        super().__init__(input_data, input_backbone, predict_head, outlier_threshold=outlier_threshold, **options)
        if projection_dim < 1:
            raise SesemiError(f"projection_dim must be at least 1, not {projection_dim}")
        self.projection_dim = projection_dim
        self.open_set_threshold = open_set_threshold

    def build(self, backbones: Mapping[str, nn.Module], heads: Mapping[str, nn.Module]) -> None:
        super().build(backbones, heads)
        num_classes = num_classes_of(heads[self.predict_head])
        width = backbones[self.input_backbone].out_features
        self.projection = projection_mlp(width, self.projection_dim)
        self.detectors = nn.Linear(self.projection_dim, 2 * num_classes, bias=False)
        self.open_set = nn.Linear(self.projection_dim, num_classes + 1)
        nn.init.xavier_normal_(self.detectors.weight)
        nn.init.xavier_normal_(self.open_set.weight)
        nn.init.zeros_(self.open_set.bias)

    def _detector_logits(self, projected: Tensor) -> Tensor:
        """The detectors' logits `[N, 2, C]` (`[:, 1]`: of class c, `[:, 0]`: not)."""
        return self.detectors(projected).float().view(len(projected), 2, -1)

    def weak_detectors(self, context: StepContext) -> Tensor:
        return self._detector_logits(self.projection(context.features[self._key("weak")]))

    def judge_outliers(self, probs: Tensor, detectors_weak: Tensor) -> Tensor:
        outlier_score = (probs * (1 - detectors_weak.softmax(dim=1)[:, 1])).sum(dim=1)
        return outlier_score >= self.outlier_threshold

    def open_set_loss(self, context: StepContext, probs: Tensor, detectors_weak: Tensor) -> Tensor:
        detectors = self._detector_logits(self.projection(labeled_features(context)))
        detector_loss = one_vs_all_loss(detectors, context.batch[LABELED][1]).mean()
        targets = open_set_targets(probs, detectors_weak.softmax(dim=1)[:, 1])
        confident = (targets.max(dim=1).values >= self.open_set_threshold).float()
        logits = self.open_set(self.projection(context.features[self._key("strong")])).float()
        # soft cross-entropy of the strong view against the weak view's open-set target
        open_set = -(targets * logits.log_softmax(dim=1)).sum(dim=1)
        return detector_loss + (open_set * confident).mean()

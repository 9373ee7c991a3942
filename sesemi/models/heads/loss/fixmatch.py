"""FixMatch and its adaptive-threshold variants FlexMatch, FreeMatch and SoftMatch.

Sohn et al., "FixMatch: Simplifying Semi-Supervised Learning with Consistency and Confidence",
NeurIPS 2020, https://arxiv.org/abs/2001.07685. The thresholds of FlexMatch
(https://arxiv.org/abs/2110.08263) and FreeMatch (https://arxiv.org/abs/2205.07246), FreeMatch's
fairness term, SoftMatch's weights (https://arxiv.org/abs/2301.10921) and distribution
alignment are in `pseudo_labels.py`.
Read weak and strong views of each unlabeled image, e.g. with
`sesemi.transforms.MultiView([weak, strong])`.

`outlier_filter` keeps files of classes nobody labeled out of the pseudo-label loss, as OpenMatch
does (Saito et al., NeurIPS 2021, https://arxiv.org/abs/2105.14148): one-vs-all detectors
(`sesemi.models.heads.OneVsAllHead`) learn on the labeled batch which inputs belong to each
class (hard-negative mining), are kept consistent between the weak and strong views of
unlabeled inputs (soft open-set consistency) and confident (entropy minimization), and an
unlabeled input whose predicted class's detector says "not mine" gets no pseudo-label and does
not move the thresholds or the distribution alignment. Unlike OpenMatch, which selects inliers
once an epoch after a warm-up, the filter applies at every step from the start (the loss
ramps up meanwhile), and the consistency term's target is the weak view, detached.

An open-set method replaces the filter's parts (`weak_detectors`, `judge_outliers`,
`open_set_loss`) and keeps the rest of the step: IOMatch (`iomatch.py`) does. A method that
shapes the pseudo-labels or adds a term of its own replaces `calibrate` and `extra_loss`:
SimMatch (`simmatch.py`) does.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from sesemi.errors import SesemiError, one_of
from sesemi.models.heads.loss.base import (
    LABELED,
    Batch,
    FeatureRequest,
    LossHead,
    LossOutputs,
    StepContext,
    feature_key,
)
from sesemi.models.heads.loss.pseudo_labels import (
    THRESHOLDS,
    ClassFairness,
    DistributionAlignment,
    PoolPrior,
    PoolStatistics,
    Thresholding,
    check_floor,
    inlier_mask,
    num_classes_of,
    one_vs_all_consistency,
    one_vs_all_entropy,
    one_vs_all_loss,
)

# OpenMatch's weights of the detectors' consistency and entropy terms on unlabeled inputs.
CONSISTENCY_WEIGHT = 0.5
ENTROPY_WEIGHT = 0.1


def labeled_features(context: StepContext) -> Tensor:
    """The labeled batch's features, which an outlier judge learns from."""
    if LABELED not in context.features:
        raise SesemiError("the outlier judge trains on the labeled batch: keep the supervised loss")
    return context.features[LABELED]


class FixMatchLossHead(LossHead):
    """Cross-entropy of the strong view against the confident hard pseudo-labels of the weak view.

    `batch[input_data]` is `((weak_images, strong_images), labels)`; the labels are ignored. The
    per-sample weights are the confidence mask, so with "mean" reduction the loss is averaged
    over all unlabeled images, as in the paper. The weak view is encoded in a pass of its own,
    without autograd (or, with `model.forward_only_targets=false`, in the fused pass of the
    other inputs); its predictions are detached.

    Args:
        input_data: The training loader with the two views.
        input_backbone: The backbone that encodes them.
        predict_head: The classification head that predicts both views.
        thresholding: "fixed" (FixMatch), "flexmatch", "freematch" or "softmatch" (see
            `pseudo_labels.py`).
        threshold: The confidence threshold (FreeMatch, SoftMatch: an upper bound of the
            threshold they learn).
        min_threshold: A floor under the adaptive thresholds, which otherwise start near 0 and
            stay there for classes the model never gets confident about. A fixed threshold has
            no floor and ignores it. A floor above `threshold` is refused: it would replace it.
        distribution_alignment: Whether to align the weak predictions to a uniform class prior
            before thresholding.
        pool_prior: Whether to estimate the unlabeled pool's own class prior and score the pool
            under it (`PoolPrior`), for a pool more skewed than the labels; it replaces
            distribution alignment, which aims at a uniform prior.
        threshold_options: More arguments of the threshold class (e.g. FreeMatch's `momentum`).
        fairness: The weight of FreeMatch's self-adaptive fairness term (`ClassFairness`, USB's
            default 0.01), which spreads the counted strong views' predictions over the classes;
            0 leaves it out. It follows the pool with the thresholds' `momentum` (0.999).
        outlier_filter: Whether to keep inputs that look out of class out of the pseudo-label
            loss, and train the one-vs-all detectors that judge them (OpenMatch, see the module
            docstring). Needs `predict_head` to be a `sesemi.models.heads.OneVsAllHead`.
        outlier_threshold: The detector's probability of "mine" under which an input counts as
            out of class (OpenMatch's 0.5).
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
        pool_prior: bool = False,
        threshold_options: Mapping[str, Any] | None = None,
        outlier_filter: bool = False,
        outlier_threshold: float = 0.5,
        fairness: float = 0.0,
    ):
        super().__init__(input_data, input_backbone)
        self.thresholding = one_of(Thresholding, thresholding, "thresholding")
        check_floor(threshold, min_threshold)
        if pool_prior and distribution_alignment:
            raise SesemiError(
                "pool_prior and distribution_alignment both set the pool's class prior (its own "
                "estimate, or uniform): set distribution_alignment=false to use pool_prior"
            )
        self.predict_head = predict_head
        self.threshold = threshold
        self.min_threshold = min_threshold
        self.distribution_alignment = distribution_alignment
        self.pool_prior = pool_prior
        self.threshold_options = dict(threshold_options or {})
        self.outlier_filter = outlier_filter
        self.outlier_threshold = outlier_threshold
        if fairness < 0:
            raise SesemiError(f"fairness is the weight of a term, at least 0 (0 leaves it out), not {fairness}")
        self.fairness = fairness

    def build(self, backbones: Mapping[str, nn.Module], heads: Mapping[str, nn.Module]) -> None:
        num_classes = num_classes_of(heads[self.predict_head])
        options = dict(self.threshold_options)
        if self.thresholding is not Thresholding.FIXED:
            options["min_threshold"] = self.min_threshold
        self.thresholds = THRESHOLDS[self.thresholding](num_classes, self.threshold, **options)
        self.alignment = DistributionAlignment(num_classes) if self.distribution_alignment else None
        self.prior = PoolPrior(num_classes) if self.pool_prior else None
        self.pool = PoolStatistics(num_classes)
        momentum = self.threshold_options.get("momentum", 0.999)
        self.class_fairness = ClassFairness(num_classes, momentum) if self.fairness else None
        if self.outlier_filter and not hasattr(heads[self.predict_head], "one_vs_all_logits"):
            raise SesemiError(
                "outlier_filter needs one-vs-all detectors in the classification head: set "
                "'learner.hparams.model.head={_target_:sesemi.models.heads.OneVsAllHead}', or outlier_filter=false"
            )

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
        weak, strong = context.features[self._key("weak")], context.features[self._key("strong")]
        with torch.no_grad():
            # float32 under mixed precision: bfloat16 cannot tell 0.95 from 0.949
            log_prior = 0.0 if self.prior is None else self.prior.log_prior()  # before this batch moves it
            probs_model = (head(weak).float() + log_prior).softmax(dim=1)
            predicted = probs_model.argmax(dim=1)
            detectors_weak = self.weak_detectors(context)
            outliers = None if detectors_weak is None else self.judge_outliers(probs_model, detectors_weak)
            inliers = slice(None) if outliers is None else ~outliers
            mask = torch.zeros(len(probs_model), device=probs_model.device)
            kept = probs_model[inliers]  # may be empty: the statistics still update on every process
            if self.alignment is not None:
                kept = self.alignment(kept)
            if len(kept):
                kept = self.calibrate(context, kept, inliers)
            if self.prior is not None:
                self.prior.update(kept)
            if self.class_fairness is not None and self.training:
                self.class_fairness.update(kept)
            mask[inliers] = self.thresholds(kept)
            probs_weak = probs_model.clone()
            probs_weak[inliers] = kept
            pseudo_labels = probs_weak.argmax(dim=1)
            if self.training:
                self.pool.record(pseudo_labels, mask, outliers, predicted)
        logits_strong = head(strong) + log_prior  # float32 with a prior, as the weak view's
        # l_u = 1/(mu B) sum_b 1[max p_weak >= tau] H(argmax p_weak, p_strong); the mask is the weight
        losses = F.cross_entropy(logits_strong, pseudo_labels, reduction="none")
        extra = self.extra_loss(context, probs_model, probs_weak, detectors_weak)
        if self.class_fairness is not None:
            fairness = self.fairness * self.class_fairness(logits_strong, mask)
            extra = fairness if extra is None else extra + fairness
        return LossOutputs(losses, mask, extra)

    def calibrate(self, context: StepContext, probs: Tensor, inliers: slice | Tensor) -> Tensor:
        """The class probabilities `[M, C]` the thresholds judge and the pseudo-labels come from,
        given the (aligned) probabilities of the weak views `context.features[...][inliers]`;
        called without autograd. FixMatch takes them as they are; SimMatch (`simmatch.py`) mixes
        in what the labeled neighbours say."""
        return probs

    def extra_loss(
        self, context: StepContext, probs: Tensor, targets: Tensor, detectors_weak: Tensor | None
    ) -> Tensor | None:
        """Terms beside the pseudo-label loss, reduced to one number (None: there are none), given
        the model's probabilities on the weak views `[N, C]`, the pseudo-labels' probabilities
        after alignment and `calibrate` `[N, C]`, and the detectors' logits: the outlier
        detectors' training (`open_set_loss`) when this head judges outliers."""
        return None if detectors_weak is None else self.open_set_loss(context, probs, detectors_weak)

    def weak_detectors(self, context: StepContext) -> Tensor | None:
        """The outlier detectors' logits on the weak views `[N, 2, C]` (`[:, 1]`: of class c), or
        None when this head judges no outliers; called without autograd, once a step."""
        if not self.outlier_filter:
            return None
        return context.heads[self.predict_head].one_vs_all_logits(context.features[self._key("weak")])

    def judge_outliers(self, probs: Tensor, detectors_weak: Tensor) -> Tensor:
        """Which unlabeled inputs look out of class `[N]`, given the model's probabilities on
        their weak views `[N, C]` and the detectors' logits there: those whose predicted class's
        detector says "not mine"."""
        return ~inlier_mask(detectors_weak, probs.argmax(dim=1), self.outlier_threshold)

    def open_set_loss(self, context: StepContext, probs: Tensor, detectors_weak: Tensor) -> Tensor:
        """The terms that train the outlier detectors, reduced to one number: OpenMatch's loss on
        the labeled batch, and consistency with the weak views' (detached) detectors and
        confidence on the strong views."""
        head = context.heads[self.predict_head]
        detectors_strong = head.one_vs_all_logits(context.features[self._key("strong")])
        return (
            one_vs_all_loss(head.one_vs_all_logits(labeled_features(context)), context.batch[LABELED][1]).mean()
            + CONSISTENCY_WEIGHT * one_vs_all_consistency(detectors_strong, detectors_weak).mean()
            + ENTROPY_WEIGHT * one_vs_all_entropy(detectors_strong).mean()
        )

    def statistics(self) -> dict[str, Any] | None:
        """The share of the last 4096 unlabeled inputs pseudo-labeled per class, and judged out of
        class (with `outlier_filter`), and with `pool_prior` the estimated prior
        (`estimated_pool_prior`, by class index)."""
        summary = self.pool.summary()
        if summary is not None and self.prior is not None:
            summary["estimated_pool_prior"] = [round(float(p), 4) for p in self.prior.prior]
        return summary

"""Shared mechanics of pseudo-labeling heads: confidence masks, thresholds, distribution alignment.

Thresholds decide which pseudo-labels count; `THRESHOLDS` maps a `Thresholding` to a class:
- "fixed": FixMatch, Sohn et al. 2020, https://arxiv.org/abs/2001.07685
- "flexmatch": curriculum pseudo-labeling, Zhang et al. 2021, https://arxiv.org/abs/2110.08263
- "freematch": self-adaptive thresholds, Wang et al. 2023, https://arxiv.org/abs/2205.07246
- "softmatch": a soft threshold (truncated Gaussian weights), Chen et al. 2023,
  https://arxiv.org/abs/2301.10921
Distribution alignment: ReMixMatch, Berthelot et al. 2020, https://arxiv.org/abs/1911.09785
The pool's own class prior (`PoolPrior`): estimated by expectation-maximization as in Saerens et
al., "Adjusting the outputs of a classifier to new a priori probabilities", Neural Computation
2002, and applied as a logit adjustment on the pool only, as SimPro does (Du et al. 2024,
https://arxiv.org/abs/2402.13505)
One-vs-all outlier detection (`one_vs_all_loss`, `one_vs_all_consistency`, `one_vs_all_entropy`,
`inlier_mask`): OpenMatch, Saito et al. 2021, https://arxiv.org/abs/2105.14148
What a head saw of its pool (`PoolStatistics`): the numbers results.json reports.

Adaptive state lives in registered buffers, so checkpoints save it and resuming restores it.
All updates happen only in training mode and under `torch.no_grad` (callers pass detached
probabilities). In a distributed run each update reads the batch of every process (`gathered`),
as one process with the whole batch would, so the statistics are the same on every process; an
update is therefore called on every process at every training step, with an empty batch if need
be, never skipped on some.
"""

from __future__ import annotations

from enum import Enum
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch import distributed as dist

from sesemi.errors import SesemiError


def gathered(tensor: Tensor) -> Tensor:
    """`tensor` `[N, ...]` of every process of a distributed run, concatenated in rank order
    (the processes' N may differ); this process's alone otherwise. Every process must call it."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return tensor
    from torchmetrics.utilities.distributed import gather_all_tensors

    return torch.cat(gather_all_tensors(tensor))


def num_classes_of(head: nn.Module) -> int:
    """The number of outputs of a classification head: its `out_features`, else those of its
    last linear layer."""
    if isinstance(getattr(head, "out_features", None), int):
        return head.out_features
    linears = [m for m in head.modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise ValueError(
            f"cannot tell the number of classes of {type(head).__name__}: it has no nn.Linear"
        )
    return linears[-1].out_features


def confidence_mask(probs: Tensor, threshold: float | Tensor) -> Tensor:
    """1.0 where the top probability reaches the threshold, else 0.0.

    Args:
        probs: Class probabilities `[N, C]`.
        threshold: One threshold, or one per class `[C]` (applied to each sample's top class).
    """
    confidence, labels = probs.max(dim=1)
    if isinstance(threshold, Tensor) and threshold.ndim == 1:
        threshold = threshold[labels]
    return (confidence >= threshold).to(probs.dtype)


def check_floor(threshold: float, min_threshold: float) -> None:
    """Refuses a floor above the threshold: the floor would silently replace it."""
    if min_threshold > threshold:
        raise SesemiError(
            f"min_threshold {min_threshold} is above threshold {threshold}, which then never "
            f"applies: set min_threshold to at most {threshold}, or raise threshold"
        )


class FixedThreshold(nn.Module):
    """FixMatch: a pseudo-label counts when its confidence reaches `threshold`.

    Args:
        num_classes: Unused; every threshold class takes it, so they are built alike.
        threshold: The confidence threshold tau (it has no floor: it is the threshold).
    """

    def __init__(self, num_classes: int, threshold: float = 0.95):
        super().__init__()
        self.threshold = threshold

    def forward(self, probs: Tensor) -> Tensor:
        return confidence_mask(probs, self.threshold)


class FlexMatchThreshold(nn.Module):
    """FlexMatch: lower thresholds for classes the model is still learning.

    sigma(c) counts recent confident (>= threshold) predictions of class c and beta(c) =
    sigma(c) / max(max_c sigma, unused); the threshold of class c is threshold * beta / (2 - beta).
    The paper counts over the whole unlabeled set by sample index; the loaders yield no indices,
    so sigma counts over a window of the last `window` confident predictions instead, and
    `unused` is the window's still-empty slots (the paper's threshold warm-up).

    Args:
        num_classes: The number of classes.
        threshold: The upper threshold tau.
        window: How many confident predictions sigma counts over (about the unlabeled set size).
        min_threshold: A floor under every class threshold, at most `threshold`. The paper's
            thresholds start at 0 and stay near 0 for classes the model is never confident
            about, so on hard data with few labels every guess becomes a pseudo-label; a floor
            keeps them out.
    """

    def __init__(
        self, num_classes: int, threshold: float = 0.95, window: int = 4096, min_threshold: float = 0.0
    ):
        super().__init__()
        check_floor(threshold, min_threshold)
        self.num_classes = num_classes
        self.threshold = threshold
        self.min_threshold = min_threshold
        self.register_buffer("recent", torch.full((window,), -1, dtype=torch.long))  # -1: unused
        self.register_buffer("position", torch.zeros((), dtype=torch.long))

    def class_thresholds(self) -> Tensor:
        """The current threshold of each class `[C]`."""
        used = (self.recent >= 0).float()
        sigma = torch.bincount(self.recent.clamp(min=0), weights=used, minlength=self.num_classes)
        unused = len(self.recent) - used.sum()
        beta = sigma / torch.maximum(sigma.max(), unused).clamp(min=1.0)
        return (self.threshold * beta / (2.0 - beta)).clamp(min=self.min_threshold)

    def forward(self, probs: Tensor) -> Tensor:
        mask = confidence_mask(probs, self.class_thresholds())
        if self.training:
            confidence, labels = gathered(probs).max(dim=1)
            window = len(self.recent)
            confident = labels[confidence >= self.threshold][-window:]
            slots = (self.position + torch.arange(len(confident), device=probs.device)) % window
            self.recent[slots] = confident
            self.position.copy_((self.position + len(confident)) % window)
        return mask


class ConfidenceTracker(nn.Module):
    """What FreeMatch and SoftMatch share: tau_t = m tau_{t-1} + (1 - m) mean(max p), the model's
    running confidence on the pool, from 1/C, kept between a floor and a cap.

    Args:
        num_classes: The number of classes.
        threshold: An upper bound of tau_t (1 leaves it free, as in the papers).
        momentum: The EMA momentum m.
        min_threshold: A floor under every threshold, at most `threshold` (see `FlexMatchThreshold`).
    """

    def __init__(
        self, num_classes: int, threshold: float = 1.0, momentum: float = 0.999, min_threshold: float = 0.0
    ):
        super().__init__()
        check_floor(threshold, min_threshold)
        self.threshold = threshold
        self.momentum = momentum
        self.min_threshold = min_threshold
        self.register_buffer("global_threshold", torch.tensor(1.0 / num_classes))

    def track(self, confidence: Tensor) -> None:
        """Moves tau_t towards the mean of a batch's top probabilities `[N]` (float32, gathered)."""
        self.global_threshold.lerp_(confidence.mean(), 1.0 - self.momentum)


class FreeMatchThreshold(ConfidenceTracker):
    """FreeMatch: a global threshold tau_t times a class-wise factor, both learned as EMAs.

    tau_t = m tau_{t-1} + (1 - m) mean(max p);  p_t = m p_{t-1} + (1 - m) mean(p);
    the threshold of class c is MaxNorm(p_t)(c) * tau_t, at least `min_threshold`. Both start
    from 1/C, so early on nearly every pseudo-label counts (pair it with a loss ramp-up).
    Arguments: those of `ConfidenceTracker`.
    """

    def __init__(
        self, num_classes: int, threshold: float = 1.0, momentum: float = 0.999, min_threshold: float = 0.0
    ):
        super().__init__(num_classes, threshold, momentum, min_threshold)
        self.register_buffer("class_probs", torch.full((num_classes,), 1.0 / num_classes))

    def class_thresholds(self) -> Tensor:
        """The current threshold of each class `[C]`."""
        global_threshold = self.global_threshold.clamp(max=self.threshold)
        return (global_threshold * self.class_probs / self.class_probs.max()).clamp(min=self.min_threshold)

    def forward(self, probs: Tensor) -> Tensor:
        probs = probs.float()  # the running statistics stay float32 under mixed precision
        if self.training and len(everyone := gathered(probs)):
            self.track(everyone.max(dim=1).values)
            self.class_probs.lerp_(everyone.mean(dim=0), 1.0 - self.momentum)
        return confidence_mask(probs, self.class_thresholds())


class SoftMatchWeight(ConfidenceTracker):
    """SoftMatch: every pseudo-label counts, weighted by how its confidence compares with the
    confidences seen so far, instead of counting fully or not at all.

    mu_t (tau_t of `ConfidenceTracker`, between `min_threshold` and `threshold`) and sigma_t^2,
    the same EMA of the batches' variance of the top probability (from 1), describe the model's
    confidence on the pool. A pseudo-label of confidence c >= mu_t weighs 1, one below weighs
    exp(-(c - mu_t)^2 / (2 (sigma_t / 2)^2)): the paper's truncated Gaussian, at two standard
    deviations as in its code. A threshold cuts the unsure part of the pool off; this keeps
    learning from it, as much as the spread of the model's confidences says it can be trusted.
    Early on nearly every pseudo-label weighs close to 1 (pair it with a loss ramp-up).
    Arguments: those of `ConfidenceTracker`.
    """

    def __init__(
        self, num_classes: int, threshold: float = 1.0, momentum: float = 0.999, min_threshold: float = 0.0
    ):
        super().__init__(num_classes, threshold, momentum, min_threshold)
        self.register_buffer("variance", torch.tensor(1.0))

    def forward(self, probs: Tensor) -> Tensor:
        confidence = probs.float().max(dim=1).values  # float32 under mixed precision
        if self.training and len(everyone := gathered(confidence)) > 1:
            self.track(everyone)
            self.variance.lerp_(everyone.var(), 1.0 - self.momentum)
        mean = self.global_threshold.clamp(self.min_threshold, self.threshold)
        shortfall = (confidence - mean).clamp(max=0.0)
        return torch.exp(-(shortfall**2) / (2.0 * self.variance.clamp_min(1e-8) / 4.0)).to(probs.dtype)


class Thresholding(str, Enum):
    """The thresholds of pseudo-labels a config can name (`thresholding: fixed`, ...)."""

    FIXED = "fixed"
    FLEXMATCH = "flexmatch"
    FREEMATCH = "freematch"
    SOFTMATCH = "softmatch"


THRESHOLDS: dict[Thresholding, type[nn.Module]] = {
    Thresholding.FIXED: FixedThreshold,
    Thresholding.FLEXMATCH: FlexMatchThreshold,
    Thresholding.FREEMATCH: FreeMatchThreshold,
    Thresholding.SOFTMATCH: SoftMatchWeight,
}


class ClassFairness(nn.Module):
    """FreeMatch's self-adaptive fairness (SAF): a term that pushes the predictions on the strong
    views a batch counts to spread over the classes.

    p_t = m p_{t-1} + (1 - m) mean(p) and h_t = m h_{t-1} + (1 - m) hist(argmax p) follow the
    pool's mean prediction and class histogram (both from 1/C); the term is
    -H(SumNorm(p_t / h_t), SumNorm(mean(q) / hist(argmax q))), H the cross-entropy, over the
    predictions q on the strong views a batch counts, each mean divided by its histogram as in
    the paper.

    Args:
        num_classes: The number of classes.
        momentum: The EMA momentum m.
    """

    def __init__(self, num_classes: int, momentum: float = 0.999):
        super().__init__()
        self.num_classes = num_classes
        self.momentum = momentum
        self.register_buffer("class_probs", torch.full((num_classes,), 1.0 / num_classes))
        self.register_buffer("class_histogram", torch.full((num_classes,), 1.0 / num_classes))

    def _histogram(self, probs: Tensor) -> Tensor:
        return torch.bincount(probs.argmax(dim=1), minlength=self.num_classes).to(probs.dtype) / len(probs)

    def update(self, probs: Tensor) -> None:
        """Moves p_t and h_t towards a batch's weak-view probabilities `[N, C]`; every process calls it."""
        everyone = gathered(probs.float())
        if len(everyone):
            self.class_probs.lerp_(everyone.mean(dim=0), 1.0 - self.momentum)
            self.class_histogram.lerp_(self._histogram(everyone), 1.0 - self.momentum)

    def forward(self, logits_strong: Tensor, weights: Tensor) -> Tensor:
        """The term, given the strong views' logits `[N, C]` and their weights `[N]` (those above
        0 count); 0 when none counts."""
        probs = logits_strong[weights > 0].float().softmax(dim=1)
        if not len(probs):
            return logits_strong.new_zeros((), dtype=torch.float32)
        target = _sum_normalized(self.class_probs * _reciprocal(self.class_histogram))
        batch = _sum_normalized(probs.mean(dim=0) * _reciprocal(self._histogram(probs)))
        return (target * torch.log(batch + 1e-12)).sum()


def _reciprocal(tensor: Tensor) -> Tensor:
    """1 / x, with 0 where x is 0 (a class no prediction fell into)."""
    return torch.where(tensor > 0, 1.0 / tensor.clamp_min(1e-30), torch.zeros_like(tensor))


def _sum_normalized(tensor: Tensor) -> Tensor:
    return tensor / tensor.sum()


class DistributionAlignment(nn.Module):
    """Scales predictions so that, on average, they follow the target class distribution.

    p~ = Normalize(p * p_target / p_model), with p_model a running mean of the predictions on
    unlabeled data and p_target uniform. This keeps pseudo-labels from collapsing onto the
    classes the model already favors.

    Args:
        num_classes: The number of classes.
        momentum: The EMA momentum of p_model (0.99 averages over about the last 100 batches).
    """

    def __init__(self, num_classes: int, momentum: float = 0.99):
        super().__init__()
        self.momentum = momentum
        self.register_buffer("model_probs", torch.full((num_classes,), 1.0 / num_classes))

    def _track(self, probs: Tensor) -> None:
        """Moves p_model towards the mean of `probs` (of every process)."""
        if len(everyone := gathered(probs.float())):  # float32 under mixed precision
            self.model_probs.lerp_(everyone.mean(dim=0), 1.0 - self.momentum)

    def forward(self, probs: Tensor) -> Tensor:
        if self.training:
            self._track(probs)
        # p_target is uniform, a constant factor that the normalization removes
        aligned = probs / self.model_probs
        return aligned / aligned.sum(dim=1, keepdim=True)

    def align_logits(self, logits: Tensor) -> Tensor:
        """Logits whose softmax is the aligned softmax of `logits` (in log space, so stable)."""
        if self.training:
            self._track(logits.detach().softmax(dim=1))
        return logits - self.model_probs.log()


class PoolPrior(nn.Module):
    """The unlabeled pool's class prior, estimated as training goes, and the logits under it.

    A pool may be skewed where the labels are balanced. The network's logits `f(x)` keep the
    labeled set's prior; on the pool, class y scores f_y(x) + log pi_y, and pi is re-estimated
    from the pool's posteriors under the current pi (the M step of expectation-maximization,
    kept as a running mean over batches). Pseudo-labels and the unlabeled loss use the adjusted
    logits, so the network itself does not learn the pool's skew and still predicts balanced
    classes (the validation set's) with its plain logits. pi starts uniform, where the
    adjustment changes nothing.

    Args:
        num_classes: The number of classes.
        momentum: The running mean's momentum (0.99 averages over about the last 100 batches).
    """

    def __init__(self, num_classes: int, momentum: float = 0.99):
        super().__init__()
        self.momentum = momentum
        self.register_buffer("prior", torch.full((num_classes,), 1.0 / num_classes))

    def log_prior(self) -> Tensor:
        """log pi `[C]`, a copy: add it to float32 logits to score them under the pool's prior."""
        return self.prior.clamp_min(1e-8).log()

    def update(self, posteriors: Tensor) -> None:
        """Moves the prior toward the mean posterior `[N, C]` of a batch of the pool (of every process)."""
        if self.training and len(everyone := gathered(posteriors.float())):
            self.prior.lerp_(everyone.mean(dim=0), 1.0 - self.momentum)


def one_vs_all_loss(logits: Tensor, labels: Tensor) -> Tensor:
    """OpenMatch's loss of the one-vs-all detectors on labeled inputs, per sample `[N]`.

    L_ova = -log q_y(x) - min_{k != y} log(1 - q_k(x)): the detector of the true class says
    "mine", and the hardest of the others (hard-negative mining) says "not mine".

    Args:
        logits: The detectors' logits `[N, 2, C]` (`[:, 1]`: of class c, `[:, 0]`: not).
        labels: The true classes `[N]`.
    """
    log_probs = logits.float().log_softmax(dim=1)
    positive = -log_probs[:, 1].gather(1, labels[:, None]).squeeze(1)
    own = F.one_hot(labels, logits.shape[2]).bool()
    negative = (-log_probs[:, 0]).masked_fill(own, float("-inf")).max(dim=1).values
    return positive + negative


def one_vs_all_consistency(logits: Tensor, target_logits: Tensor) -> Tensor:
    """OpenMatch's soft open-set consistency, per sample `[N]`: the squared distance between the
    detectors' probabilities on two views, summed over classes and both outputs.

    Args:
        logits: The detectors' logits on one view `[N, 2, C]`.
        target_logits: Their logits on the other view `[N, 2, C]` (detached by the caller when
            that view only makes targets).
    """
    return (logits.float().softmax(dim=1) - target_logits.float().softmax(dim=1)).pow(2).sum(dim=(1, 2))


def one_vs_all_entropy(logits: Tensor) -> Tensor:
    """The detectors' mean binary entropy, per sample `[N]` (OpenMatch minimizes it on unlabeled
    inputs, so each detector makes up its mind)."""
    log_probs = logits.float().log_softmax(dim=1)
    return -(log_probs.exp() * log_probs).sum(dim=1).mean(dim=1)


def inlier_mask(logits: Tensor, classes: Tensor, threshold: float = 0.5) -> Tensor:
    """True where the detector of each input's class `[N]` says "mine" with at least `threshold`."""
    inlier = logits.float().softmax(dim=1)[:, 1].gather(1, classes[:, None]).squeeze(1)
    return inlier >= threshold


# What `PoolStatistics` records of a sample besides its pseudo-label's class (>= 0).
_EMPTY, _UNUSED, _OUTLIER = -1, -2, -3


class PoolStatistics(nn.Module):
    """What a pseudo-labeling head did with the last `window` unlabeled samples it saw.

    Each sample was pseudo-labeled (with a class), left out (not confident enough), or judged
    out of class; and the model predicted a class for it before any alignment, which tells the
    pool's apparent class shares even where distribution alignment evens out the pseudo-labels.
    `summary()` is what the head reports for results.json.

    Args:
        num_classes: The number of classes.
        window: How many of the most recent samples to describe.
    """

    STATE_ADDED_LATER = True  # checkpoints of earlier releases lack it: loaded empty (see below)

    def __init__(self, num_classes: int, window: int = 4096):
        super().__init__()
        self.num_classes = num_classes
        # saved in checkpoints, so that a resumed run describes the samples an unbroken one does;
        # a checkpoint of an earlier release, without them, loads with them empty
        self.register_buffer("recent", torch.full((window,), _EMPTY, dtype=torch.long))
        self.register_buffer("predicted", torch.full((window,), _EMPTY, dtype=torch.long))
        self.register_buffer("position", torch.zeros((), dtype=torch.long))
        self.register_buffer("judged", torch.zeros((), dtype=torch.long))  # 1: outliers judged

    def _load_from_state_dict(
        self, state_dict: dict[str, Any], prefix: str, local_metadata: dict[str, Any], strict: bool,
        missing_keys: list[str], unexpected_keys: list[str], error_msgs: list[str],
    ) -> None:
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs)
        # Lightning's restore of a run; `sesemi.checkpoints.load_weights` excuses them itself
        if not any(key.startswith(prefix) for key in state_dict):  # an earlier release's checkpoint
            missing_keys[:] = [key for key in missing_keys if not key.startswith(prefix)]

    def record(self, labels: Tensor, mask: Tensor, outliers: Tensor | None = None, predicted: Tensor | None = None) -> None:
        """Records a batch: pseudo-labels `[N]`, the weight each counted with `[N]` (a sample
        counts as pseudo-labeled from 0.5 up), whether each was judged out of class `[N]` (None:
        the head does not judge), and the model's own class for each `[N]` before any alignment
        (None: the pseudo-labels')."""
        outcome = torch.where(mask >= 0.5, labels, torch.full_like(labels, _UNUSED))
        if outliers is not None:
            outcome = torch.where(outliers, torch.full_like(labels, _OUTLIER), outcome)
            self.judged.fill_(1)
        window = len(self.recent)
        both = gathered(torch.stack([outcome, labels if predicted is None else predicted], dim=1))[-window:]
        slots = (self.position + torch.arange(len(both), device=both.device)) % window
        self.recent[slots], self.predicted[slots] = both[:, 0], both[:, 1]
        self.position.copy_((self.position + len(both)) % window)

    def summary(self) -> dict[str, Any] | None:
        """`seen` (samples described), `pseudo_labeled_per_class` (the share of them pseudo-labeled
        with each class, by class index), `out_of_class` (the share judged out of class, None
        when the head does not judge) and `predicted_per_class` (the share the model predicted
        as each class); None before any sample."""
        seen = int((self.recent != _EMPTY).sum())
        if seen == 0:
            return None
        counts = torch.bincount(self.recent[self.recent >= 0], minlength=self.num_classes)
        outliers = float((self.recent == _OUTLIER).sum()) / seen if bool(self.judged) else None
        predicted = torch.bincount(self.predicted[self.predicted >= 0], minlength=self.num_classes)
        return {
            "seen": seen,
            "pseudo_labeled_per_class": [round(float(c) / seen, 4) for c in counts],
            "out_of_class": None if outliers is None else round(outliers, 4),
            "predicted_per_class": [round(float(c) / seen, 4) for c in predicted],
        }

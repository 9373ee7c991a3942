"""SimMatch: pseudo-labels corrected by how much an unlabeled input resembles each labeled one.

Zheng, You, Wang, Qian, Zhang and Xu, "SimMatch: Semi-supervised Learning with Similarity
Matching", CVPR 2022, https://arxiv.org/abs/2203.06915. On a projection of the backbone's
features, a bank holds the embeddings of recent labeled inputs with their labels. An unlabeled
input's weak view is compared with the bank (a softmax over the similarities, `q`), and the two
views of its label agree with each other both ways:

- aggregation: the class probabilities the pseudo-label comes from are mixed with the bank's
  vote, the similarity mass of each class's labeled inputs: p' = a p + (1 - a) agg(q);
- unfolding: the similarity target is reweighted by the class probabilities of each bank entry's
  label, q'_k = q_k p'[label_k] (normalized), and the strong view's similarities learn it:
  H(q', softmax(sim(strong) / T)).

The second term teaches the features from every unlabeled input, confident or not, with targets
anchored on the labeled inputs, which is what SimMatch adds to FixMatch when labels are few.

Differences from the paper: the bank is a queue of the last `bank_size` labeled embeddings (each
step's labeled batch of every process, detached) instead of one slot per labeled input; the
pseudo-label loss is the FixMatch head's, hard labels with its thresholds (see `fixmatch.py`),
on the probabilities after distribution alignment and aggregation; unfolding reweighs by those
probabilities. The projection and the bank only serve training: they are
saved in checkpoints, not with the published model.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from sesemi.errors import SesemiError
from sesemi.models.heads.loss.base import LABELED, LossOutputs, StepContext, projection_mlp
from sesemi.models.heads.loss.fixmatch import FixMatchLossHead, labeled_features
from sesemi.models.heads.loss.pseudo_labels import gathered, num_classes_of


def aggregate(similarity: Tensor, bank_labels: Tensor, num_classes: int) -> Tensor:
    """The bank's vote `[N, C]`: the similarity distributions `[N, K]` summed over each class's
    entries (`bank_labels` `[K]`)."""
    return similarity.new_zeros(len(similarity), num_classes).index_add_(1, bank_labels, similarity)


def unfold(similarity: Tensor, probs: Tensor, bank_labels: Tensor) -> Tensor:
    """The similarity targets `[N, K]`: each entry's similarity times the probability `probs`
    `[N, C]` gives its label, normalized."""
    unfolded = similarity * probs[:, bank_labels]
    return unfolded / unfolded.sum(dim=1, keepdim=True).clamp_min(1e-12)


class SimMatchLossHead(FixMatchLossHead):
    """FixMatch with pseudo-labels and features that agree with the labeled inputs' embeddings.

    Args:
        input_data: The training loader with the weak and strong views.
        input_backbone: The backbone that encodes them.
        predict_head: The classification head that predicts both views.
        projection_dim: The size of the projection the bank holds (the paper's 128).
        temperature: The softmax temperature of the similarities (the paper's 0.1).
        smoothing: The weight `a` of the model's own probabilities against the bank's vote (the
            paper's 0.9); 1 switches aggregation off.
        bank_size: How many labeled embeddings the bank keeps (a few labeled batches).
        similarity_weight: The weight of the similarity loss against the pseudo-label loss (the
            paper's 1).
        **options: The options of `FixMatchLossHead` (thresholding, threshold, min_threshold,
            distribution_alignment, ...); its `outlier_filter` is refused.
    """

    def __init__(
        self,
        input_data: str,
        input_backbone: str = "backbone",
        predict_head: str = "head",
        projection_dim: int = 128,
        temperature: float = 0.1,
        smoothing: float = 0.9,
        bank_size: int = 256,
        similarity_weight: float = 1.0,
        **options: Any,
    ):
        if options.pop("outlier_filter", False):
            raise SesemiError("SimMatch has no outlier filter: drop outlier_filter (method=fixmatch has it)")
        super().__init__(input_data, input_backbone, predict_head, **options)
        if projection_dim < 1 or bank_size < 1:
            raise SesemiError(f"projection_dim and bank_size must be at least 1, not {projection_dim} and {bank_size}")
        if temperature <= 0:
            raise SesemiError(f"temperature must be positive, not {temperature}")
        if not 0 <= smoothing <= 1:
            raise SesemiError(f"smoothing is a weight between 0 and 1, not {smoothing}")
        self.projection_dim = projection_dim
        self.temperature = temperature
        self.smoothing = smoothing
        self.bank_size = bank_size
        self.similarity_weight = similarity_weight

    def build(self, backbones: Mapping[str, nn.Module], heads: Mapping[str, nn.Module]) -> None:
        super().build(backbones, heads)
        self.num_classes = num_classes_of(heads[self.predict_head])
        width = backbones[self.input_backbone].out_features
        self.projection = projection_mlp(width, self.projection_dim)
        self.register_buffer("bank", torch.zeros(self.bank_size, self.projection_dim))
        self.register_buffer("bank_labels", torch.zeros(self.bank_size, dtype=torch.long))
        self.register_buffer("bank_count", torch.zeros((), dtype=torch.long))  # entries ever written

    def _embed(self, features: Tensor) -> Tensor:
        return F.normalize(self.projection(features).float(), dim=1)

    def _written(self) -> Tensor:
        """Which of the bank's slots hold an embedding `[K]` (all but at the very start)."""
        return torch.arange(self.bank_size, device=self.bank.device) < self.bank_count

    @torch.no_grad()
    def _remember(self, context: StepContext) -> None:
        """Writes the labeled batch's embeddings (every process's) into the bank, over the oldest ones."""
        embeddings, labels = self._embed(labeled_features(context)), context.batch[LABELED][1]
        embeddings, labels = gathered(embeddings)[-self.bank_size :], gathered(labels)[-self.bank_size :]
        slots = (self.bank_count + torch.arange(len(labels), device=labels.device)) % self.bank_size
        self.bank[slots] = embeddings.to(self.bank.dtype)
        self.bank_labels[slots] = labels
        self.bank_count += len(labels)

    def _similarity(self, features: Tensor) -> Tensor:
        """The similarity logits `[N, K]` of inputs' features to the bank's entries (-inf for
        empty slots); computed on the device, with no host synchronization."""
        logits = self._embed(features) @ self.bank.T / self.temperature
        return logits.masked_fill(~self._written(), float("-inf"))

    def forward(self, context: StepContext) -> LossOutputs:
        self._remember(context)  # before the pseudo-labels, so the bank is never empty
        return super().forward(context)

    def calibrate(self, context: StepContext, probs: Tensor, inliers: slice | Tensor) -> Tensor:
        if self.smoothing == 1:
            return probs
        similarity = self._similarity(context.features[self._key("weak")][inliers]).softmax(dim=1)
        vote = aggregate(similarity, self.bank_labels, self.num_classes)
        return self.smoothing * probs + (1 - self.smoothing) * vote

    def extra_loss(
        self, context: StepContext, probs: Tensor, targets: Tensor, detectors_weak: Tensor | None
    ) -> Tensor:
        with torch.no_grad():
            similarity = self._similarity(context.features[self._key("weak")]).softmax(dim=1)
            unfolded = unfold(similarity, targets, self.bank_labels)
        log_student = self._similarity(context.features[self._key("strong")]).log_softmax(dim=1)
        log_student = log_student.masked_fill(~self._written(), 0.0)  # 0 x -inf would be nan
        return self.similarity_weight * -(unfolded * log_student).sum(dim=1).mean()

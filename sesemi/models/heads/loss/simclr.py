"""SimCLR: learn features from unlabeled data by telling two views of an item from all others.

Chen et al., "A Simple Framework for Contrastive Learning of Visual Representations", ICML 2020,
https://arxiv.org/abs/2002.05709. The NT-Xent loss (normalized temperature-scaled cross-entropy)
on a projection of the backbone's features; the projection head is trained with the model and
only serves this loss. Read two strongly augmented views of each unlabeled item, e.g. a loader
with `views: [strong, strong]` (images or audio alike).
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from sesemi.errors import SesemiError
from sesemi.models.heads.loss.base import (
    Batch,
    FeatureRequest,
    LossHead,
    LossOutputs,
    StepContext,
    feature_key,
    projection_mlp,
)

VIEWS = ("a", "b")


def nt_xent(z_a: Tensor, z_b: Tensor, temperature: float) -> Tensor:
    """Per-anchor NT-Xent losses `[2N]` of two batches of projections `[N, D]` (row i of each: one item).

    For anchor i the positive is the other view of item i, the negatives the other 2N - 2 views:
    l_i = -log(exp(s(i, pos) / t) / sum_{k != i} exp(s(i, k) / t)), s the cosine similarity.
    """
    z = F.normalize(torch.cat([z_a, z_b]).float(), dim=1)
    n = z_a.shape[0]
    similarity = z @ z.T / temperature
    similarity = similarity.masked_fill(
        torch.eye(2 * n, dtype=torch.bool, device=z.device), float("-inf")
    )
    positives = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)]).to(z.device)
    return F.cross_entropy(similarity, positives, reduction="none")


class SimCLRLossHead(LossHead):
    """NT-Xent between the projections of two views of each unlabeled item.

    `batch[input_data]` is `((view_a, view_b), labels)`; the labels are ignored. Both views are
    encoded with gradients (each is the other's target). The losses are per view, `[2N]`.

    Args:
        input_data: The training loader with the two views.
        input_backbone: The backbone that encodes them.
        temperature: The softmax temperature of the similarities (the paper: 0.1-1; 0.5 for
            small batches).
        projection_dim: The size of the projection the loss compares.
        hidden_dim: The projection head's hidden size; None: the backbone's feature size.
    """

    def __init__(
        self,
        input_data: str,
        input_backbone: str = "backbone",
        temperature: float = 0.5,
        projection_dim: int = 64,
        hidden_dim: int | None = None,
    ):
        super().__init__(input_data, input_backbone)
        if temperature <= 0:
            raise SesemiError(f"temperature must be positive, not {temperature}")
        if projection_dim < 1 or (hidden_dim is not None and hidden_dim < 1):
            raise SesemiError(
                f"projection_dim and hidden_dim must be at least 1, not {projection_dim} and {hidden_dim}"
            )
        self.temperature = temperature
        self.projection_dim = projection_dim
        self.hidden_dim = hidden_dim

    def build(self, backbones: Mapping[str, nn.Module], heads: Mapping[str, nn.Module]) -> None:
        features = backbones[self.input_backbone].out_features
        self.projection = projection_mlp(features, self.projection_dim, self.hidden_dim)

    def _key(self, view: str) -> str:
        return feature_key(self.input_data, self.input_backbone, view)

    def feature_requests(self, batch: Batch) -> list[FeatureRequest]:
        views = batch[self.input_data][0]
        return [
            FeatureRequest(self._key(name), inputs, self.input_backbone)
            for name, inputs in zip(VIEWS, views, strict=True)
        ]

    def forward(self, context: StepContext) -> LossOutputs:
        z_a, z_b = (self.projection(context.features[self._key(name)]) for name in VIEWS)
        return LossOutputs(nt_xent(z_a, z_b, self.temperature))

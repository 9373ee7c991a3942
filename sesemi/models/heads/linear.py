"""Classification heads: features -> logits."""

from __future__ import annotations

from torch import Tensor, nn


class LinearHead(nn.Module):
    """A linear layer from `in_features` to `out_features` logits, with optional dropout."""

    def __init__(self, in_features: int, out_features: int, drop_rate: float = 0.0):
        super().__init__()
        self.dropout = nn.Dropout(drop_rate)
        self.fc = nn.Linear(in_features, out_features)

    def forward(self, features: Tensor) -> Tensor:
        return self.fc(self.dropout(features))

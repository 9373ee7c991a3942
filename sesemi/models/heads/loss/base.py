"""The loss-head contract.

A loss head adds one regularization term to training. It names the training loader it reads
(`input_data`) and the backbone that encodes it (`input_backbone`), creates its own layers in
`build`, and returns *unreduced* per-sample losses; the Classifier reduces them, scales them
by `scale_factor` and the head's weight schedule, and adds them to the total loss.

To share one forward pass with the other heads, a head lists the inputs it needs encoded in
`feature_requests`; the Classifier encodes all requests for the same backbone together (one
BatchNorm pass) and hands the results to `forward` as `features[key]`. A head that returns no
requests opts out and runs its backbone itself.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from torch import Tensor, nn

Batch = Mapping[str, Any]


@dataclass
class LossOutputs:
    """Per-sample losses `[N]` and optional per-sample weights `[N]` (e.g. a confidence mask)."""

    losses: Tensor
    weights: Tensor | None = None


@dataclass
class FeatureRequest:
    """An input a head wants encoded by a backbone.

    Attributes:
        key: The name under which the features are returned; equal keys are encoded once.
        inputs: The batch of inputs `[N, ...]`.
        backbone: The name of the backbone that encodes them.
        grad: Whether gradients flow through the features (False for teachers and targets).
        group: Requests are fused into one forward pass only within a group (batch norm then
            normalizes them together).
    """

    key: str
    inputs: Tensor
    backbone: str = "backbone"
    grad: bool = True
    group: str = ""


def feature_key(input_data: str, backbone: str, view: str = "") -> str:
    """The conventional key of a loader's (view's) features under a backbone."""
    return f"{input_data}{'/' + view if view else ''}@{backbone}"


class LossHead(nn.Module):
    """Base class of regularization loss heads.

    Args:
        input_data: The training loader this head reads.
        input_backbone: The backbone that encodes it.
    """

    def __init__(self, input_data: str, input_backbone: str = "backbone"):
        super().__init__()
        self.input_data = input_data
        self.input_backbone = input_backbone

    def build(self, backbones: Mapping[str, nn.Module], heads: Mapping[str, nn.Module]) -> None:
        """Creates the head's own layers once the backbones and heads exist."""

    def feature_requests(self, data: Batch) -> list[FeatureRequest]:
        """The inputs to encode for this head in the shared forward pass."""
        return []

    def forward(
        self,
        data: Batch,
        backbones: Mapping[str, nn.Module],
        heads: Mapping[str, nn.Module],
        features: Mapping[str, Tensor],
        step: int,
    ) -> LossOutputs:
        raise NotImplementedError

"""Encodes every input of a training step with as few backbone calls as possible."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import Tensor, nn

from sesemi.errors import SesemiError
from sesemi.models.heads.loss.base import FeatureRequest


def encode(
    requests: Sequence[FeatureRequest], backbones: Mapping[str, nn.Module], fuse: bool = True
) -> dict[str, Tensor]:
    """Runs each backbone once on all inputs requested of it; returns features by key.

    Requests with the same key are encoded once. Requests for the same backbone, with the same
    gradient setting, input shape and group, are concatenated into one batch (so batch norm sees
    them together) and split back afterwards. With `fuse=False` every request gets its own
    forward pass (for comparison).
    """
    unique: dict[str, FeatureRequest] = {}
    for request in requests:
        unique.setdefault(request.key, request)
    groups: dict[tuple, list[FeatureRequest]] = {}
    for request in unique.values():
        group = (request.backbone, request.grad, tuple(request.inputs.shape[1:]), request.group)
        groups.setdefault(group if fuse else (request.key,), []).append(request)
    features: dict[str, Tensor] = {}
    for members in groups.values():
        first = members[0]
        if first.backbone not in backbones:
            hint = "; add the sesemi.callbacks.EMA callback" if first.backbone.endswith("_ema") else ""
            raise SesemiError(f"no backbone {first.backbone!r} (available: {', '.join(backbones)}){hint}")
        inputs = torch.cat([m.inputs for m in members]) if len(members) > 1 else first.inputs
        with torch.set_grad_enabled(first.grad and torch.is_grad_enabled()):
            outputs = backbones[first.backbone](inputs)
        for member, output in zip(members, outputs.split([len(m.inputs) for m in members]), strict=True):
            features[member.key] = output
    return features

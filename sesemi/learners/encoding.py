"""Encodes every input of a training step with as few backbone calls as possible."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, nullcontext

import torch
from torch import Tensor, nn
from torch.nn.modules.batchnorm import _BatchNorm

from sesemi.errors import SesemiError
from sesemi.models.heads.loss.base import FeatureRequest


@contextmanager
def running_stats_kept(module: nn.Module) -> Iterator[None]:
    """Batch norm inside the block normalizes with batch statistics as usual, but its running
    statistics (what evaluation normalizes with) are left as they were.

    The layers stop tracking running statistics while the block runs (in training mode they then
    neither read nor update them), which costs a flag per layer instead of copies of their buffers.
    """
    layers = [m for m in module.modules() if isinstance(m, _BatchNorm) and m.track_running_stats]
    for layer in layers:
        layer.track_running_stats = False
    try:
        yield
    finally:
        for layer in layers:
            layer.track_running_stats = True


def encode(
    requests: Sequence[FeatureRequest],
    backbones: Mapping[str, nn.Module],
    fuse: bool = True,
    stats_group: str | None = None,
    forward_only_targets: bool = True,
) -> dict[str, Tensor]:
    """Runs each backbone once on all inputs requested of it; returns features by key.

    Requests with the same key are encoded once. Requests for the same backbone, with the same
    input shape and group, are concatenated into one batch (so batch norm sees them together)
    and split back afterwards; targets may run apart (below). With `fuse=False` every request
    gets its own forward pass (for comparison).

    A pass of requests that only make targets (`target=True`: FixMatch's weak view, a teacher's
    view) runs without autograd: no activations are kept for a backward pass that would not use
    them. With `forward_only_targets`, such requests always get a pass of their own, which saves
    about half the work of a FixMatch step; without it they join the other inputs of their
    backbone (with gradients), as the FixMatch reference code does. Batch norm normalizes a
    target pass with its own batch statistics, as in training mode.

    When a request is in `stats_group`, only the passes of that group update batch norm's running
    statistics. The labeled batch is that group when it runs apart: evaluation then normalizes
    with statistics of the images the classifier was trained on, not of rotated copies, shuffled
    tiles or strongly augmented views (USB keeps them the same way for its unlabeled passes).
    """
    unique: dict[str, FeatureRequest] = {}
    for request in requests:
        unique.setdefault(request.key, request)
    groups: dict[tuple, list[FeatureRequest]] = {}
    for request in unique.values():
        apart = request.target and forward_only_targets
        group = (request.backbone, apart, tuple(request.inputs.shape[1:]), request.group)
        groups.setdefault(group if fuse else (request.key,), []).append(request)
    keep_stats = stats_group is not None and any(r.group == stats_group for r in unique.values())
    features: dict[str, Tensor] = {}
    for members in groups.values():
        first = members[0]
        grad = not all(m.target for m in members)  # a pass of targets alone needs no autograd
        if first.backbone not in backbones:
            hint = "; add the sesemi.callbacks.EMA callback" if first.backbone.endswith("_ema") else ""
            raise SesemiError(f"no backbone {first.backbone!r} (available: {', '.join(backbones)}){hint}")
        inputs = torch.cat([m.inputs for m in members]) if len(members) > 1 else first.inputs
        backbone = backbones[first.backbone]
        kept = running_stats_kept(backbone) if keep_stats and first.group != stats_group else nullcontext()
        with torch.set_grad_enabled(grad and torch.is_grad_enabled()), kept:
            outputs = backbone(inputs)
        for member, output in zip(members, outputs.split([len(m.inputs) for m in members]), strict=True):
            features[member.key] = output
    return features

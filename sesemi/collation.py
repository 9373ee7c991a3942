"""Batch-level transforms: collate functions that build self-supervised targets.

Rotation prediction: Gidaris et al., "Unsupervised Representation Learning by Predicting Image
Rotations", ICLR 2018, https://arxiv.org/abs/1803.07728
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

NUM_ROTATIONS = 4


class RotationTransformer:
    """Collates `(image, label)` items into every rotation of every image.

    Each image (C, H, W) appears rotated by 0, 90, 180 and 270 degrees; the target is the
    rotation index 0-3. The batch is `(images [4B, C, H, W], rotation_labels [4B])`, plus the
    original labels `[4B]` when `return_supervised_labels` is set.
    """

    def __init__(self, return_supervised_labels: bool = False):
        self.return_supervised_labels = return_supervised_labels

    def __call__(self, batch: Sequence[tuple[Tensor, int]]) -> tuple[Tensor, ...]:
        images = torch.stack([image for image, _ in batch])  # (B, C, H, W)
        rotated = torch.cat([torch.rot90(images, k, dims=(2, 3)) for k in range(NUM_ROTATIONS)])
        rotation_labels = torch.arange(NUM_ROTATIONS).repeat_interleave(len(batch))
        if not self.return_supervised_labels:
            return rotated, rotation_labels
        labels = torch.as_tensor([label for _, label in batch]).repeat(NUM_ROTATIONS)
        return rotated, rotation_labels, labels

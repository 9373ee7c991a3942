"""Test-time augmentation: fixed copies of each input, predicted in the same forward pass as the
input and averaged with it. Training taught the model one answer for the variants its
augmentations make, so the copies are such variants: an image's horizontal flip (one only when
the training's views flip images: not for text or digits, which `p_hflip: 0` keeps upright); an
audio window shifted by plus and minus the training's largest shift, zero-filled as `TimeShift`
fills."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from sesemi.transforms.audio import DEFAULT_MAX_SHIFT, shift


@dataclass(frozen=True)
class Augmentation:
    """The copies of a batch that test-time augmentation predicts, and their average.

    Attributes:
        audio: Waveforms `[B, T]` (shifted copies) rather than images `[B, C, H, W]` (a flip).
        max_shift: Audio: the shift of the copies as a fraction of the window.
    """

    audio: bool
    max_shift: float = DEFAULT_MAX_SHIFT

    @property
    def copies(self) -> int:
        """How many inputs each input becomes, itself included."""
        return 3 if self.audio else 2

    def __call__(self, inputs: Tensor) -> Tensor:
        """`[copies * B, ...]`: the inputs, then each kind of copy of them in turn."""
        if not self.audio:
            return torch.cat([inputs, inputs.flip(-1)])
        samples = int(self.max_shift * inputs.shape[-1])  # TimeShift's largest shift
        return torch.cat([inputs, shift(inputs, samples), shift(inputs, -samples)])

    def mean(self, outputs: Tensor) -> Tensor:
        """`[copies * B, ...]` outputs -> `[B, ...]`, the mean over each input's copies."""
        return outputs.reshape(self.copies, -1, *outputs.shape[1:]).mean(dim=0)

"""An exponential moving average (EMA) of the model's weights.

The average is what validation sees and what checkpoints store (the raw weights are kept beside
them for resuming), and loss heads can use it as a teacher: the Classifier exposes it as the
backbone `backbone_ema` and the head `head_ema`.

Tarvainen & Valpola, "Mean teachers are better role models", NeurIPS 2017,
https://arxiv.org/abs/1703.01780
"""

from __future__ import annotations

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import WeightAveraging
from torch import Tensor


class EMA(WeightAveraging):
    """Keeps `ema = decay_t * ema + (1 - decay_t) * weights` after every optimizer step.

    With `warmup`, decay_t = min(decay, (1 + n) / (10 + n)) after n updates, so the average
    follows the fast early changes of a short run instead of lagging at its random start.
    Integer buffers (e.g. BatchNorm's batch counter) are copied.

    Args:
        decay: The decay of the average (0.999 averages over about the last 1000 steps).
        warmup: Whether to ramp the decay up from 0.1 (see above).
        use_buffers: Whether to average buffers such as BatchNorm statistics too.
    """

    def __init__(self, decay: float = 0.999, warmup: bool = True, use_buffers: bool = True):
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"EMA decay must be in [0, 1), not {decay}")
        self.decay = decay
        self.warmup = warmup
        super().__init__(use_buffers=use_buffers, multi_avg_fn=self._update)

    def decay_at(self, num_updates: int) -> float:
        """The decay used for the update after `num_updates` previous updates."""
        return min(self.decay, (1 + num_updates) / (10 + num_updates)) if self.warmup else self.decay

    @torch.no_grad()
    def _update(self, averaged: list[Tensor], current: list[Tensor], num_updates: Tensor) -> None:
        weight = 1.0 - self.decay_at(int(num_updates))
        for average, value in zip(averaged, current, strict=True):
            if average.is_floating_point():
                average.lerp_(value, weight)
            else:
                average.copy_(value)

    @property
    def average_model(self) -> pl.LightningModule | None:
        """The averaged copy of the LightningModule (None before fitting starts)."""
        return self._average_model.module if self._average_model is not None else None

"""Stores convolution weights channels-last (NHWC), which is faster on CPUs and tensor cores.

Inputs need no change: a convolution with channels-last weights returns channels-last outputs,
so the format propagates through the network.
https://pytorch.org/tutorials/intermediate/memory_format_tutorial.html
"""

from __future__ import annotations

import pytorch_lightning as pl
import torch


class ChannelsLast(pl.Callback):
    """Converts the model to `torch.channels_last` when fitting, validating or testing starts."""

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        pl_module.to(memory_format=torch.channels_last)

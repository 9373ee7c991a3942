"""An exponential moving average (EMA) of the model's weights.

The average is what validation sees and what checkpoints store (the raw weights are kept beside
them for resuming), and loss heads can use it as a teacher: the Classifier exposes it as the
backbone `backbone_ema` and the head `head_ema`.

Tarvainen & Valpola, "Mean teachers are better role models", NeurIPS 2017,
https://arxiv.org/abs/1703.01780
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import WeightAveraging
from torch import Tensor, nn


class EMA(WeightAveraging):
    """Keeps `ema = decay_t * ema + (1 - decay_t) * weights` after every optimizer step.

    The first update copies the weights. With `warmup`, decay_t = min(decay, (1 + n) / (10 + n))
    after n updates (2/11 for the second), so the average follows the fast early changes of a
    short run instead of lagging at its random start. Integer buffers (e.g. BatchNorm's batch
    counter) are copied.

    Args:
        decay: The decay of the average (0.999 averages over about the last 1000 steps).
        warmup: Whether to ramp the decay up as above.
        use_buffers: Whether to average buffers such as BatchNorm statistics too; if not, the
            average takes the model's own at every step (as mean teacher implementations do).
    """

    def __init__(self, decay: float = 0.999, warmup: bool = True, use_buffers: bool = True):
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"EMA decay must be in [0, 1), not {decay}")
        self.decay = decay
        self.warmup = warmup
        super().__init__(use_buffers=use_buffers, multi_avg_fn=self._update)
        self._split: _Split | None = (
            None  # the tensors of the average and the model, see _step_update
        )
        self._updates = 0
        self._raw_after_fit: dict[str, Tensor] | None = None

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._split = None  # set-up and resuming may have replaced tensors since they were listed
        self._raw_after_fit = None

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Puts the average in place of the weights (Lightning's end of a fit), keeping the raw
        weights for the checkpoints saved after it (the run's last validation, `_finish`)."""
        self._raw_after_fit = {name: tensor.detach().clone() for name, tensor in pl_module.state_dict().items()}
        super().on_train_end(trainer, pl_module)

    def on_save_checkpoint(self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict[str, Any]) -> None:
        """The average as the weights, the raw weights beside them for training on; after the fit
        the model holds the average, so the raw weights are those kept at its end."""
        super().on_save_checkpoint(trainer, pl_module, checkpoint)
        if self._raw_after_fit is not None and "current_model_state" in checkpoint:
            checkpoint["current_model_state"] = self._raw_after_fit

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, *args: Any
    ) -> None:
        """Updates the average after every optimizer step (as WeightAveraging does, faster)."""
        if trainer.global_step > self._latest_update_step and self.should_update(
            step_idx=trainer.global_step - 1
        ):
            self._step_update(pl_module)
            self._latest_update_step = trainer.global_step

    @torch.no_grad()
    def _step_update(self, pl_module: pl.LightningModule) -> None:
        """AveragedModel.update_parameters on lists of tensors made at the first update of a fit:
        walking the module tree (metrics included) and updating tensor by tensor at every step
        took 0.6 ms on the digits ConvNet, the foreach kernels on these lists 0.06 ms."""
        average = self._average_model
        if self._split is None:
            modules = (average.module, pl_module)
            averaged, current = ([*m.parameters(), *m.buffers()] for m in modules)
            self._split = _Split.of(averaged, current, copy_buffers=not self._use_buffers)
            self._updates = int(average.n_averaged)
        self._split.update(1.0 - self.decay_at(self._updates) if self._updates else 1.0)
        average.n_averaged += 1
        self._updates += 1

    def decay_at(self, num_updates: int) -> float:
        """The decay used for the update after `num_updates` previous updates."""
        return (
            min(self.decay, (1 + num_updates) / (10 + num_updates)) if self.warmup else self.decay
        )

    @torch.no_grad()
    def _update(
        self, averaged: list[Tensor], current: list[Tensor], num_updates: Tensor | int
    ) -> None:
        _Split.of(averaged, current).update(1.0 - self.decay_at(int(num_updates)))

    @property
    def average_model(self) -> pl.LightningModule | None:
        """The averaged copy of the LightningModule (None before fitting starts)."""
        return self._average_model.module if self._average_model is not None else None


@dataclass
class _Split:
    """Tensors of an average and of the model, floating-point ones (averaged) apart from the
    others (copied), so that an update is one foreach kernel per list instead of one operation
    per tensor."""

    averaged_floats: list[Tensor]
    current_floats: list[Tensor]
    averaged_others: list[Tensor]
    current_others: list[Tensor]

    @classmethod
    def of(cls, averaged: list[Tensor], current: list[Tensor], copy_buffers: bool = False) -> _Split:
        """With `copy_buffers`, floating-point buffers are copied too, not averaged."""
        pairs = list(zip(averaged, current, strict=True))

        def is_averaged(tensor: Tensor) -> bool:
            return tensor.is_floating_point() and (isinstance(tensor, nn.Parameter) or not copy_buffers)

        floats = [pair for pair in pairs if is_averaged(pair[0])]
        others = [pair for pair in pairs if not is_averaged(pair[0])]
        return cls(
            [a for a, _ in floats],
            [c for _, c in floats],
            [a for a, _ in others],
            [c for _, c in others],
        )

    def update(self, weight: float) -> None:
        """average += weight * (current - average) for floats (1 copies them); others are copied."""
        if self.averaged_floats:
            torch._foreach_lerp_(self.averaged_floats, self.current_floats, weight)
        if self.averaged_others:
            torch._foreach_copy_(self.averaged_others, self.current_others)

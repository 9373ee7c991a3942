"""Progress of a run, counted in steps (a run's length is its steps: an epoch of a few labels
may be one step).

In a terminal, `StepProgressBar` draws Lightning's rich bar over the run's steps. A progress bar
needs a terminal; piped to a file, a CI log or a batch system's output it turns into control
characters. `PlainProgress` writes instead, about twenty times a run:

    step 250/800 (31%) | 4.2 it/s | ETA 2m 11s | loss 0.412 | val/top1 0.973
"""

from __future__ import annotations

import sys
import time
from typing import Any

import pytorch_lightning as pl
from pytorch_lightning.callbacks import ProgressBar, RichProgressBar

LINES_PER_RUN = 20


def _duration(seconds: float) -> str:
    seconds = max(0, round(seconds))
    if seconds >= 3600:
        return f"{seconds // 3600}h {seconds % 3600 // 60:02d}m"
    return f"{seconds // 60}m {seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


class PlainProgress(ProgressBar):
    """Prints `step, it/s, ETA, loss, latest val/top1` to stderr every `every` steps (by default
    about twenty lines a run), and the metrics after each validation.

    A `ProgressBar` to Lightning, so it takes the place of the default bar.

    Args:
        every: Steps between lines; None picks it from the run's length.
    """

    def __init__(self, every: int | None = None):
        super().__init__()
        self.every = every
        self._enabled = True
        self._started: float | None = None
        self._started_step = 0

    def disable(self) -> None:
        self._enabled = False

    def enable(self) -> None:
        self._enabled = True

    def _interval(self, trainer: pl.Trainer) -> int:
        if self.every:
            return self.every
        total = trainer.max_steps if trainer.max_steps > 0 else trainer.num_training_batches * max(trainer.max_epochs or 1, 1)
        return max(1, int(total) // LINES_PER_RUN) if total and total != float("inf") else 50

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._started, self._started_step = time.perf_counter(), trainer.global_step

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, *args: Any) -> None:
        step = trainer.global_step
        if not self._enabled or not trainer.is_global_zero or self._started is None or step % self._interval(trainer):
            return
        elapsed = time.perf_counter() - self._started
        rate = (step - self._started_step) / elapsed if elapsed > 0 else 0.0
        parts = [f"step {step}"]
        if trainer.max_steps > 0:
            parts[0] += f"/{trainer.max_steps} ({100 * step // trainer.max_steps}%)"
            if rate > 0:
                parts.append(f"ETA {_duration((trainer.max_steps - step) / rate)}")
        parts.insert(1, f"{rate:.1f} it/s")
        metrics = trainer.callback_metrics
        for name, label in (("train/loss", "loss"), ("val/top1", "val/top1")):
            if name in metrics:
                parts.append(f"{label} {float(metrics[name]):.4g}")
        print(" | ".join(parts), file=sys.stderr, flush=True)

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # At step 0 a run only evaluates (run.mode=VALIDATE): its result line says the same.
        if not self._enabled or trainer.sanity_checking or not trainer.is_global_zero or not trainer.global_step:
            return
        shown = ", ".join(f"{k} {float(v):.4g}" for k, v in trainer.callback_metrics.items() if k.startswith("val/"))
        if shown:
            print(f"validated at step {trainer.global_step}: {shown}", file=sys.stderr, flush=True)


class StepProgressBar(RichProgressBar):
    """Lightning's rich bar, over the run's steps (`run.num_iterations`) rather than each epoch's
    batches: one bar, with the speed and time left of the whole run. A run of epochs keeps
    Lightning's bar of each epoch."""

    @property
    def total_train_batches(self) -> int | float:
        steps = self.trainer.max_steps
        return steps if steps > 0 else super().total_train_batches

    def _get_train_description(self, current_epoch: int) -> str:
        return "train" if self.trainer.max_steps > 0 else super()._get_train_description(current_epoch)

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        by_steps = trainer.max_steps > 0
        if by_steps and self.train_progress_bar_id is not None:
            return  # one bar for the run, not reset each epoch
        super().on_train_epoch_start(trainer, pl_module)
        if by_steps and self.progress is not None:  # a resumed run starts at its step: no leap in its speed
            self.progress.reset(self.train_progress_bar_id, total=trainer.max_steps, completed=trainer.global_step)

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, *args: Any) -> None:
        if trainer.max_steps <= 0:
            super().on_train_batch_end(trainer, pl_module, *args)
            return
        self._update(self.train_progress_bar_id, trainer.global_step)  # steps, not the epoch's batches
        self._update_metrics(trainer, pl_module)
        self.refresh()

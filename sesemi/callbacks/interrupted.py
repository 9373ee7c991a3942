"""Saves a checkpoint when fitting stops on an exception, so the run can resume from it."""

from __future__ import annotations

from pathlib import Path

import pytorch_lightning as pl
from pytorch_lightning.callbacks import WeightAveraging


class InterruptedCheckpoint(pl.Callback):
    """Writes `path` when fitting ends with an exception (Ctrl-C, SIGTERM, an error).

    Lightning's OnExceptionCheckpoint does the same, but its presence also makes every
    `fit(ckpt_path=None)` look for a "last" checkpoint to resume from, which would pick up
    another run's checkpoint from a shared folder; this callback only saves.
    Nothing is saved when fitting stops before it starts (e.g. the checkpoint a run resumes from
    is refused): the weights are not restored yet, and would replace the checkpoint to resume.

    Args:
        path: The checkpoint file to write.
    """

    def __init__(self, path: str | Path):
        self.path = str(path)
        self.started = False
        self.validating = False

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.started = True  # Lightning has restored the checkpoint a run resumes from by now

    def on_validation_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.validating = True

    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.validating = False

    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException) -> None:
        if trainer.state.fn != "fit" or not self.started:
            return
        _before_unfinished_batch(trainer)
        _between_epochs(trainer)
        # A weight-averaging callback (EMA) validates with its average swapped into the model;
        # a stop in a validation finds them swapped, and the checkpoint must not.
        averaging = [c for c in trainer.callbacks if isinstance(c, WeightAveraging) and c._average_model is not None]
        swapped = averaging if self.validating else []
        for callback in swapped:
            callback._swap_models(pl_module)
        trainer.save_checkpoint(self.path, weights_only=False)  # the full state, to resume from
        for callback in swapped:
            callback._swap_models(pl_module)


def _between_epochs(trainer: pl.Trainer) -> None:
    """Makes a stop after an epoch's end the start of the next one.

    SIGTERM during an epoch's last batch stops fitting once the epoch has completed, with the
    epoch loop still counting that epoch's batches; resumed from such a state, Lightning takes
    them as batches of the next epoch already done, which ends it after one batch (and a run
    whose epochs are counted, after none). Lightning's own checkpoints are never taken there.
    """
    epochs, batches = trainer.fit_loop.epoch_progress.current, trainer.fit_loop.epoch_loop.batch_progress
    if batches.is_last_batch and epochs.completed == epochs.ready:
        batches.reset_on_run()


def _before_unfinished_batch(trainer: pl.Trainer) -> None:
    """Makes a stop in the middle of a batch (Ctrl-C) a stop before it, or after it once its
    optimizer step is taken.

    The batch was counted as begun, not as done: resumed, Lightning forgets it in the epoch's
    counts but not in the run's, by which validations are scheduled (they came a batch early).
    Counted as never begun, it is taken again where the unbroken run takes it. Its forward pass
    has drawn random numbers (dropout) and moved BatchNorm's running statistics and the method's
    pool statistics already, so the resumed run goes on close to the unbroken one, not exactly.
    """
    loop = trainer.fit_loop.epoch_loop
    batches = loop.batch_progress.total
    if batches.ready == batches.completed:
        return  # between batches
    if batches.processed == batches.ready:  # stopped in its end hooks, after its optimizer step:
        loop.batch_progress.increment_completed()  # done (the loaders resume after it, not at it)
        return
    optimizer = loop.automatic_optimization.optim_progress.optimizer
    for progress in (loop.batch_progress, optimizer.step, optimizer.zero_grad):
        progress.total.reset_on_restart()
        progress.current.reset_on_restart()

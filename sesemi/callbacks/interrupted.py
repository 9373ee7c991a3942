"""Saves a checkpoint when fitting stops on an exception, so the run can resume from it."""

from __future__ import annotations

from pathlib import Path

import pytorch_lightning as pl


class InterruptedCheckpoint(pl.Callback):
    """Writes `path` when fitting ends with an exception (Ctrl-C, SIGTERM, an error).

    Lightning's OnExceptionCheckpoint does the same, but its presence also makes every
    `fit(ckpt_path=None)` look for a "last" checkpoint to resume from, which would pick up
    another run's checkpoint from a shared folder; this callback only saves.

    Args:
        path: The checkpoint file to write.
    """

    def __init__(self, path: str | Path):
        self.path = str(path)

    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException) -> None:
        if trainer.state.fn == "fit":
            trainer.save_checkpoint(self.path)

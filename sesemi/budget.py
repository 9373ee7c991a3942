"""Runs sized to the machine: a wall-clock budget, and the estimate of how long a run takes.

`run.time_budget=20m` measures a few real training steps and a validation pass on this machine
before training, then sets `run.num_iterations` so that the whole run (schedules and ramp-ups
included, since they are fractions of `${sesemi:max_iterations}`) ends inside the budget.
`TimeEstimate` prints, after the first steps of any run, how long the rest will take.
"""

from __future__ import annotations

import copy
import logging
import math
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytorch_lightning as pl
from hydra.utils import instantiate
from omegaconf import DictConfig

from sesemi.errors import SesemiError
from sesemi.logs import LIGHTNING_LOG, quiet

logger = logging.getLogger(__name__)

DURATION = re.compile(r"^\s*(?:(\d+(?:\.\d+)?)h)?\s*(?:(\d+(?:\.\d+)?)m)?\s*(?:(\d+(?:\.\d+)?)s)?\s*$")
WARMUP_STEPS = 3  # the first steps are slower (allocations, loader start): not measured
MEASURED_STEPS = 8
SAFETY = 0.95  # of the budget left, for what varies between steps


def parse_duration(text: str | float | int) -> float:
    """Seconds in `20m`, `1h30m`, `90s`, `1.5h`, or a plain number of seconds."""
    if isinstance(text, int | float):
        seconds = float(text)
    else:
        found = DURATION.match(str(text))
        if not found or not any(found.groups()):
            raise SesemiError(f"run.time_budget must be a duration such as 20m, 1h30m or 90s, not {text!r}")
        hours, minutes, secs = (float(g) if g else 0.0 for g in found.groups())
        seconds = 3600 * hours + 60 * minutes + secs
    if seconds <= 0:
        raise SesemiError(f"run.time_budget must be positive, not {text!r}")
    return seconds


def format_duration(seconds: float) -> str:
    """`3h 05m`, `4m 12s`, `42s`."""
    seconds = max(0, round(seconds))
    if seconds >= 3600:
        return f"{seconds // 3600}h {seconds % 3600 // 60:02d}m"
    if seconds >= 60:
        return f"{seconds // 60}m {seconds % 60:02d}s"
    return f"{seconds}s"


@dataclass(frozen=True)
class Speed:
    """What a step and a validation pass cost on this machine, in seconds."""

    step: float
    validation: float


class _StepTimer(pl.Callback):
    """Times the training steps after the warm-up ones."""

    def __init__(self) -> None:
        self.started: float | None = None
        self.ended = 0.0
        self.steps = 0

    def on_train_batch_start(self, trainer: pl.Trainer, *args: Any) -> None:
        if trainer.global_step == WARMUP_STEPS:
            self.started = time.perf_counter()

    def on_train_batch_end(self, trainer: pl.Trainer, *args: Any) -> None:
        if self.started is not None:
            self.steps += 1
            self.ended = time.perf_counter()

    @property
    def seconds_per_step(self) -> float:
        """From the first timed step's start to the last one's end: not the validation after."""
        return (self.ended - self.started) / max(self.steps, 1)


def measure_speed(config: DictConfig, datamodule: pl.LightningDataModule, trainer: pl.Trainer, resolve: Callable) -> Speed:
    """Trains a throwaway copy of the model for a few steps, and validates it on a few batches,
    with the run's data, devices and precision; the run's own model is not touched."""
    probe = copy.deepcopy(config)
    probe.run.num_iterations, probe.run.num_epochs = WARMUP_STEPS + MEASURED_STEPS, None
    resolve(probe)
    learner = instantiate(probe.learner, _recursive_=False)
    timer = _StepTimer()
    probe_trainer = pl.Trainer(
        accelerator=trainer.accelerator,
        devices=1,
        precision=trainer.precision,
        max_steps=WARMUP_STEPS + MEASURED_STEPS,
        limit_val_batches=0,
        num_sanity_val_steps=0,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[timer],
    )
    validation, validator = 0.0, None
    try:
        with quiet(LIGHTNING_LOG):  # its "`Trainer.fit` stopped" and "limit_val_batches" are the probe's, not the run's
            probe_trainer.fit(learner, datamodule=datamodule)
            if datamodule.val_dataset is not None:
                batches = len(datamodule.val_dataloader())
                measured = min(batches, 3)
                validator = pl.Trainer(
                    accelerator=trainer.accelerator, devices=1, precision=trainer.precision, limit_val_batches=measured,
                    logger=False, enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                )
                started = time.perf_counter()
                validator.validate(learner, datamodule=datamodule, verbose=False)
                validation = (time.perf_counter() - started) * batches / measured
    except SystemExit:  # Lightning's exit after Ctrl-C: the run's, as it would be in the run's own trainer
        if probe_trainer.interrupted or (validator is not None and validator.interrupted):
            raise KeyboardInterrupt from None
        raise
    return Speed(timer.seconds_per_step * trainer.accumulate_grad_batches, validation)  # the probe's steps are batches


def iterations_within(seconds: float, speed: Speed, validation_interval: int | None) -> int:
    """The most training steps that fit in `seconds`, with a validation every
    `validation_interval` steps (None: once, at the end) and one at the end."""
    seconds *= SAFETY
    per_step = speed.step + (speed.validation / validation_interval if validation_interval else 0.0)
    iterations = math.floor((seconds - speed.validation) / per_step)
    if iterations < 1:
        hundred = format_duration((speed.validation + 100 * per_step) / SAFETY)
        raise SesemiError(
            f"the time budget allows no training step here: a step takes {speed.step:.2f} s and a "
            f"validation {speed.validation:.1f} s; give more time (100 steps take about {hundred} "
            "after the start), or set run.num_iterations instead"
        )
    return iterations


def validation_interval(trainer: pl.Trainer, iterations_per_epoch: int | None) -> int | None:
    """Optimizer steps between validations (None: not known, counted as one at the end): every
    N steps across epochs, or so many times in every so many epochs of `iterations_per_epoch`
    batches (an optimizer step takes `accumulate_grad_batches` of them)."""
    interval, every = trainer.val_check_interval, trainer.check_val_every_n_epoch
    if every is None:  # every `interval` batches
        return max(1, round(interval / trainer.accumulate_grad_batches)) if isinstance(interval, int) else None
    if not iterations_per_epoch:
        return None
    in_epoch = interval if isinstance(interval, int) else max(1, int(iterations_per_epoch * interval))
    per_epoch = max(1, iterations_per_epoch // in_epoch)  # validations in a validated epoch
    return max(1, round(iterations_per_epoch * every / per_epoch / trainer.accumulate_grad_batches))


class TimeEstimate(pl.Callback):
    """Says, once the first steps are timed, how long the rest of the training will take."""

    def __init__(self, after: int = WARMUP_STEPS + MEASURED_STEPS):
        self.after = after
        self.started: float | None = None

    def on_train_batch_start(self, trainer: pl.Trainer, *args: Any) -> None:
        if trainer.global_step == WARMUP_STEPS and self.started is None:
            self.started = time.perf_counter()

    def on_train_batch_end(self, trainer: pl.Trainer, *args: Any) -> None:
        if self.started is None or trainer.global_step != self.after or trainer.max_steps <= 0:
            return
        step = (time.perf_counter() - self.started) / (self.after - WARMUP_STEPS)
        remaining = trainer.max_steps - trainer.global_step
        if trainer.is_global_zero:
            logger.info(
                "%.2f s a step: about %s for the %d steps to go (validations not counted)",
                step, format_duration(step * remaining), remaining,
            )

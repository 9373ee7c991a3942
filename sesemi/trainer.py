"""Builds the Lightning Trainer from the run config: devices, strategy, budget, outputs."""

from __future__ import annotations

import csv
import functools
import logging
import math
import os
import re
import sys
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import InterpolationResolutionError
from pytorch_lightning.callbacks import ModelCheckpoint, ModelSummary, ProgressBar
from pytorch_lightning.loggers import CSVLogger, Logger
from pytorch_lightning.loggers.csv_logs import ExperimentWriter
from pytorch_lightning.plugins import CheckpointIO, TorchCheckpointIO
from pytorch_lightning.utilities.exceptions import MisconfigurationException

from sesemi.budget import TimeEstimate
from sesemi.callbacks.interrupted import InterruptedCheckpoint
from sesemi.callbacks.progress import PlainProgress, StepProgressBar
from sesemi.checkpoints import verify_checksum
from sesemi.errors import SesemiError, first_line, retired
from sesemi.logs import LIGHTNING_LOG
from sesemi.ownership import checksum_path, open_atomically, record_checksum, within

logger = logging.getLogger(__name__)

# Lightning's lines that tell a sesemi user nothing they can act on: product tips; that the
# trainer has the ModelSummary sesemi adds for logs; accelerators that are absent or that
# sesemi does not use (`devices` says when a GPU goes unused, naming run.gpus).
_NOISE = (
    "litlogger",
    "Trainer already configured with model summary callbacks",
    "GPU available: False",
    "TPU available:",
    "HPU available:",
)


class _DropNoise(logging.Filter):
    """Hides Lightning's log lines that a user cannot act on (`_NOISE`) from the run log."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not any(noise in message for noise in _NOISE)


logging.getLogger(LIGHTNING_LOG).addFilter(_DropNoise())

BEST, LAST = "best", "last"
INTERRUPTED = "interrupted.ckpt"

# Lightning 1 strategies that Lightning 2 dropped, and what they run as now.
REPLACED_STRATEGIES = {"dp": "ddp", "ddp2": "ddp", "ddp_cpu": "ddp", "horovod": "ddp"}
DEVICE_KINDS = ("cpu", "gpu", "cuda", "mps", "tpu")  # Lightning's accelerators, which run.accelerator is not


def devices(gpus: Any) -> tuple[str, Any]:
    """`run.gpus` -> Lightning's (accelerator, devices)."""
    if gpus is None or gpus == 0 or gpus == "0" or gpus == []:
        if torch.cuda.is_available():
            _notice("a GPU is available but run.gpus=0: set run.gpus=-1 to train on it")
        return "cpu", 1
    available = torch.cuda.device_count()
    if gpus == -1 or gpus == "-1":
        if available == 0:
            _notice("no GPU found: training on the CPU", logging.INFO)
            return "cpu", 1
        return "gpu", -1
    if available == 0:
        raise SesemiError(f"run.gpus={gpus} but this machine has no GPU; set run.gpus=0 for the CPU")
    if isinstance(gpus, str):
        gpus = [int(g) for g in gpus.split(",") if g.strip()]
    return "gpu", list(gpus) if not isinstance(gpus, int) else gpus


@functools.cache
def _notice(message: str, level: int = logging.WARNING) -> None:
    """Logs a notice once per process."""
    logger.log(level, message)


def strategy(accelerator: str | None) -> str:
    """`run.accelerator` -> a Lightning 2 strategy, mapping values Lightning 2 removed."""
    if accelerator is None:
        return "auto"
    if accelerator in DEVICE_KINDS:
        raise SesemiError(
            f"run.accelerator is the multi-device strategy (ddp, ddp_spawn, ...; null lets Lightning choose), "
            f"not a kind of device like {accelerator!r}: pick the devices with run.gpus (0: the CPU, -1: every GPU)"
        )
    if accelerator in REPLACED_STRATEGIES:
        replacement = REPLACED_STRATEGIES[accelerator]
        _notice(f"run.accelerator={accelerator} is not supported by Lightning 2; using {replacement}")
        return replacement
    return accelerator


def budget(run: DictConfig) -> dict[str, int]:
    """The training length: `num_iterations` or `num_epochs`, exactly one of them."""
    if run.get("time_budget") and run.num_iterations is None:
        raise SesemiError("run.time_budget sets the length when the run starts; it was not applied")
    if run.num_epochs is not None and run.num_iterations is not None:
        raise SesemiError(
            "run.num_epochs and run.num_iterations are both set; in your config, set the one you do not mean to null"
        )
    if run.num_iterations is not None:
        # max_steps alone ends training: a checkpoint saved after a fit counts its last, partial
        # epoch as done, so an epoch limit would end a run trained on from it early
        return {"max_steps": int(run.num_iterations), "max_epochs": -1}
    if run.num_epochs is not None:
        return {"max_steps": -1, "max_epochs": int(run.num_epochs)}
    raise SesemiError("set the training length with run.num_epochs or run.num_iterations")


def set_budget(trainer: pl.Trainer, run: DictConfig) -> None:
    """Gives a trainer the run's training length, which a time budget sets only once the
    trainer exists (its speed is measured with the trainer's devices)."""
    length = budget(run)
    trainer.fit_loop.max_epochs = length["max_epochs"]
    trainer.fit_loop.epoch_loop.max_steps = length["max_steps"]


def checkpoint_callbacks(trainer: pl.Trainer) -> tuple[ModelCheckpoint | None, ModelCheckpoint | None]:
    """The callbacks that keep the best checkpoint and the last one."""
    checkpoints = [c for c in trainer.callbacks if isinstance(c, ModelCheckpoint)]
    last = next((c for c in checkpoints if c.filename == LAST and c.monitor is None), None)
    best = next((c for c in checkpoints if c is not last), None)
    return best, last


class ChecksummedCheckpointIO(TorchCheckpointIO):
    """Lightning's checkpoint files with a SHA-256 beside each (see `sesemi.checkpoints`).

    Installed by `sesemi.trainer.build_trainer`, so that every checkpoint the trainer saves
    (best, last, interrupted, and `trainer.save_checkpoint`) is recorded, and every one it loads
    (`trainer.fit(ckpt_path=...)` when a run resumes) is checked first.
    """

    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Any | None = None) -> None:
        if not _is_local(path) or storage_options is not None:  # Lightning's own refusal of the options
            super().save_checkpoint(checkpoint, path, storage_options)
            return
        # The old checksum goes first: a save cut short leaves a checkpoint without one
        # (loaded unchecked), never a new checkpoint beside the old one's checksum.
        checksum_path(path).unlink(missing_ok=True)
        # Written beside its place and renamed there: Lightning's writer stages it in $TMPDIR,
        # and where that is another file system its last step is a copy, which a kill cuts
        # short over the previous checkpoint.
        with open_atomically(path, "wb") as file:
            torch.save(checkpoint, file)
        record_checksum(path)

    def load_checkpoint(
        self, path: Any, map_location: Callable | None = lambda storage, loc: storage, weights_only: bool | None = None
    ) -> dict[str, Any]:
        if _is_local(path) and Path(path).is_file():
            verify_checksum(path)
        return super().load_checkpoint(path, map_location=map_location, weights_only=weights_only)

    def remove_checkpoint(self, path: Any) -> None:
        super().remove_checkpoint(path)
        if _is_local(path):
            checksum_path(path).unlink(missing_ok=True)


def _is_local(path: Any) -> bool:
    """Whether a checkpoint path is a local file (not an fsspec URL such as s3://...)."""
    return "://" not in os.fspath(path)


class RunMetrics(CSVLogger):
    """`metrics.csv` in the run folder. A run resumed from `resumed_step` keeps the rows logged
    before that step and goes on after them (Lightning's writer starts the file anew); those
    after it are logged again by the resumed run."""

    def __init__(self, run_dir: Path, resumed_step: int | None = None):
        super().__init__(str(run_dir), name="", version="")
        self.resumed_step = resumed_step

    @property
    def experiment(self) -> Any:
        if self._experiment is not None or self.resumed_step is None:
            return super().experiment
        path = Path(self.log_dir) / ExperimentWriter.NAME_METRICS_FILE
        header, rows = [], []
        if path.is_file():
            with path.open(newline="") as file:
                reader = csv.DictReader(file)
                header = list(reader.fieldnames or ())
                rows = [row for row in reader if _step(row) < self.resumed_step]
        writer = super().experiment
        if rows and isinstance(writer, ExperimentWriter):  # the first process's; the others' log nothing
            with open_atomically(path, newline="") as file:
                table = csv.DictWriter(file, fieldnames=header)
                table.writeheader()
                table.writerows(rows)
            writer.metrics_keys = header
        return writer


def _step(row: dict[str, str]) -> float:
    try:
        return float(row.get("step") or "nan")
    except ValueError:
        return math.nan


def loggers_for(run_dir: Path, trackers: DictConfig | None, resumed_step: int | None = None) -> list[Logger]:
    """`metrics.csv` in the run folder (what `sesemi postprocess` reads; see `RunMetrics`), and
    the experiment trackers the config adds (`logger=tensorboard`, ...), each saving under the
    run folder: one whose folder lies elsewhere (a `name` of `../..`, a `file:` tracking URI) is
    refused, as a run writes into its own folder only (a config.yaml resumed from someone else's
    run included)."""
    made: list[Logger] = [RunMetrics(run_dir, resumed_step)]
    for name, tracker in (trackers or {}).items():
        try:
            logger = instantiate(tracker, save_dir=str(run_dir))
        except Exception as error:  # a tracker's package that is not installed, say
            missing = next((e for e in _causes(error) if isinstance(e, ImportError | ModuleNotFoundError)), None)
            if missing is None:
                raise
            raise SesemiError(f"logger={name} needs a package that is not installed: pip install \"sesemi[{name}]\"") from None
        for folder in (logger.save_dir, logger.log_dir):
            _refuse_outside(f"loggers.{name}", folder, run_dir)
        made.append(logger)
    return made


def _refuse_outside(what: str, folder: str | Path | None, run_dir: Path) -> None:
    """Refuses a logger or callback that would write to `folder` outside the run's folder."""
    if folder is not None and not within(Path(folder), run_dir):
        raise SesemiError(f"{what} would write to {folder}, outside the run's folder {run_dir}")


def _causes(error: BaseException | None):
    while error is not None:
        yield error
        error = error.__cause__ or error.__context__


# Lightning's precisions that cast the model itself, its buffers included; `64` means `64-true`.
CASTING_PRECISIONS = ("16-true", "bf16-true", "64-true", "64", "transformer-engine", "transformer-engine-float16")


def _check_precision(precision: Any) -> None:
    """Refuses a precision that casts the model: the EMA of the weights and the methods' running
    statistics (means over a thousand batches) cannot be kept in half precision, and are float32."""
    if str(precision) in CASTING_PRECISIONS:
        raise SesemiError(
            f"trainer.precision={precision} casts the weights, their average and the methods' statistics; "
            "sesemi keeps those in float32: use bf16-mixed (16-mixed on GPUs before Ampere), which computes in half precision"
        )


def build_trainer(
    run: DictConfig,
    trainer: DictConfig | None,
    run_dir: Path,
    fit: bool,
    trackers: DictConfig | None = None,
    resumed_step: int | None = None,
) -> pl.Trainer:
    """A Trainer writing CSV logs (and those of the `trackers`) and checkpoints under `run_dir`;
    `resumed_step` is the step a resumed run goes on from (see `RunMetrics`).

    Keys of the `trainer` config override what the run config sets; its callbacks are added to
    a ModelCheckpoint that keeps the best weights by `val/top1`, unless it configures its own, and
    one that keeps the last weights. Every checkpoint is saved with its SHA-256 and checked when
    loaded (`ChecksummedCheckpointIO`), unless the config installs a CheckpointIO of its own. The
    training length is set later (`set_budget`).
    """
    try:
        options = OmegaConf.to_container(trainer, resolve=True) if trainer else {}
    except InterpolationResolutionError as error:
        raise SesemiError(
            f"trainer options are read before the data, so they cannot use ${{sesemi:...}} ({error.__cause__ or error})"
        ) from None
    if "default_root_dir" in options:  # a run writes into its own folder only (see loggers_for)
        raise SesemiError("trainer.default_root_dir is the run's folder; choose that with run.dir (or hydra.run.dir)")
    callbacks = [instantiate(c) for c in options.pop("callbacks", None) or []]
    for callback in callbacks:  # a run writes into its own folder only (see loggers_for)
        _refuse_outside(type(callback).__name__, getattr(callback, "dirpath", None), run_dir)
    if options.get("enable_progress_bar", True) and not any(isinstance(c, ProgressBar) for c in callbacks):
        # a bar (or a drawn table) in a log would fill it with control characters
        callbacks.append(StepProgressBar() if sys.stderr.isatty() else PlainProgress())
    if not sys.stderr.isatty() and options.get("enable_model_summary", True):
        if not any(isinstance(c, ModelSummary) for c in callbacks):
            callbacks.append(ModelSummary())
    if not any(isinstance(c, ModelCheckpoint) for c in callbacks):
        callbacks.append(ModelCheckpoint(monitor="val/top1", mode="max", filename=BEST, save_top_k=1))
    if fit:
        # `last.ckpt` at every validation, whether or not the score improved (Lightning's
        # save_last only saves with a new best), and `interrupted.ckpt` on Ctrl-C or an error.
        callbacks.append(ModelCheckpoint(filename=LAST, monitor=None, save_top_k=1, enable_version_counter=False))
        callbacks.append(InterruptedCheckpoint(run_dir / "checkpoints" / INTERRUPTED))
        callbacks.append(TimeEstimate())
    accelerator, device_list = devices(run.gpus)
    settings: dict[str, Any] = {
        "accelerator": accelerator,
        "devices": device_list,
        "num_nodes": run.num_nodes,
        "strategy": strategy(run.accelerator),
        "default_root_dir": str(run_dir),
        "logger": loggers_for(run_dir, trackers, resumed_step),
        "callbacks": callbacks,
        "log_every_n_steps": 10,
        # one batch runs all of validation's code before training starts; Lightning's two read
        # twice the images (all 500 of digits) before the first step
        "num_sanity_val_steps": 1,
        "max_steps": -1,
        "max_epochs": -1,
    }
    settings.update(options)
    if settings.setdefault("use_distributed_sampler", False):
        raise SesemiError("trainer.use_distributed_sampler: sesemi gives each process its share of the data itself; remove it")
    _check_precision(settings.get("precision"))
    plugins = settings.get("plugins") or []
    plugins = list(plugins) if isinstance(plugins, (list, tuple)) else [plugins]
    if not any(isinstance(p, CheckpointIO) for p in plugins):
        settings["plugins"] = [*plugins, ChecksummedCheckpointIO()]
    # Hydra's own files share the run folder with the logs; that is intended.
    warnings.filterwarnings("ignore", message=".*exists and is not empty.*")
    # A resumed run's loaders take up their epoch where it stopped (SESEMIDataModule).
    warnings.filterwarnings("ignore", message=".*your dataloader is not resumable.*")
    # Lightning's own use of a torch API that torch deprecated; nothing a user can change.
    warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\)` is deprecated.*")
    # Loader workers come from the config (tuned per data set, or `auto` for the machine); the
    # advice counts cores only and suggests Trainer arguments a sesemi config does not take.
    warnings.filterwarnings("ignore", message=".*does not have many workers.*")
    # Training metrics are logged every log_every_n_steps steps across epochs, so an epoch of
    # fewer batches (a small data set) loses nothing.
    warnings.filterwarnings("ignore", message=".*is smaller than the logging interval.*")
    # `devices` names run.gpus instead of Lightning's Trainer(accelerator='gpu').
    warnings.filterwarnings("ignore", message=".*GPU available but not used.*")
    # A streamed data set (`shards`) splits its epoch between loader processes itself.
    warnings.filterwarnings("ignore", message=".*Your `IterableDataset` has `__len__` defined.*")
    try:
        return pl.Trainer(**settings)
    except TypeError as error:  # `trainer.max_epoch`: not an argument of Lightning's Trainer
        unknown = re.search(r"unexpected keyword argument '([^']+)'", str(error))
        if unknown is None:
            raise
        raise SesemiError(f"trainer.{unknown[1]} is not an argument of Lightning's Trainer; check its spelling") from None
    except (MisconfigurationException, ValueError) as error:  # `trainer.precision=17`
        raise SesemiError(f"the trainer options are refused by Lightning: {first_line(error)}") from None


if __name__ == "__main__":
    raise retired("python -m sesemi.trainer", "`open_sesemi` with the same arguments, or `sesemi train`")

"""Executes a composed config: builds data, learner and trainer, runs, and writes the results.

Both `open_sesemi` and the Python API call `execute`. A run writes, under its folder:
`config.yaml` (resolved), `checkpoints/` (`best.ckpt` by val/top1 and `last.ckpt`),
`metrics.csv`, TensorBoard events, and `results.json` with the final metrics.
"""

from __future__ import annotations

import json
import logging
import math
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import InterpolationResolutionError
from pytorch_lightning.callbacks import ModelCheckpoint

from sesemi.checkpoints import load_weights
from sesemi.config.resolvers import SESEMIConfigAttributes, register_resolvers, set_attributes
from sesemi.config.structs import RunMode
from sesemi.datamodule import SESEMIDataModule
from sesemi.errors import SesemiError
from sesemi.trainer import LAST, build_trainer, devices

logger = logging.getLogger(__name__)


def default_run_dir(run: DictConfig) -> Path:
    """`<run.dir>/<run.id>/<timestamp>`, the folder of a run started outside Hydra."""
    return Path(run.dir) / str(run.id) / datetime.now().strftime("%Y-%m-%d_%H-%M-%S-%f")


def run_mode(value: Any) -> RunMode:
    if isinstance(value, RunMode):
        return value
    try:
        return RunMode[str(value).upper()]
    except KeyError:
        raise SesemiError(f"run.mode must be one of {', '.join(m.name for m in RunMode)}, not {value!r}") from None


def check_config(config: DictConfig) -> None:
    """Fails early, in one line, on loaders that the loss terms need but nobody defines."""
    model = config.learner.get("hparams", {}).get("model", {})
    loaders = set(config.data.train or {})
    if model.get("supervised_loss") and run_mode(config.run.mode) is RunMode.FIT and "supervised" not in loaders:
        raise SesemiError("the supervised loss needs a data.train.supervised loader (or set supervised_loss: null)")
    for name, head in (model.get("regularization_loss_heads") or {}).items():
        wanted = head.head.get("input_data")
        if wanted is not None and wanted not in loaders:
            raise SesemiError(
                f"loss head {name!r} reads data.train.{wanted}, which is not defined "
                f"(loaders: {', '.join(sorted(loaders)) or 'none'})"
            )


def attributes_for(config: DictConfig, datamodule: SESEMIDataModule) -> SESEMIConfigAttributes:
    """The values behind `${sesemi:...}` for this config and data."""
    run = config.run
    accelerator, device_list = devices(run.gpus)
    if accelerator == "cpu":
        num_gpus = 0
    elif isinstance(device_list, list):
        num_gpus = len(device_list)
    else:
        num_gpus = torch.cuda.device_count() if device_list == -1 else device_list
    world_size = max(num_gpus, 1) * run.num_nodes
    iterations = datamodule.iterations_per_epoch
    iterations = math.ceil(iterations / world_size) if iterations else None
    if run.num_iterations is not None:
        max_iterations = int(run.num_iterations)
    elif run.num_epochs is not None and iterations:
        max_iterations = int(run.num_epochs) * iterations
    else:
        max_iterations = None
    classes = datamodule.classes
    return SESEMIConfigAttributes(
        iterations_per_epoch=iterations,
        max_iterations=max_iterations,
        num_gpus=num_gpus,
        num_nodes=run.num_nodes,
        num_classes=len(classes) if classes else None,
    )


def resolve(config: DictConfig, datamodule: SESEMIDataModule) -> SESEMIConfigAttributes:
    """Fills `${sesemi:...}` and every other interpolation in place; checks nothing is unset."""
    attributes = attributes_for(config, datamodule)
    set_attributes(attributes)
    try:
        OmegaConf.resolve(config)
    except InterpolationResolutionError as error:
        cause = error.__cause__
        raise SesemiError(str(cause) if isinstance(cause, SesemiError) else str(error).splitlines()[0]) from None
    missing = sorted(OmegaConf.missing_keys(config))
    if missing:
        raise SesemiError(f"the config leaves required values unset: {', '.join(missing)}")
    return attributes


def loss_head_statistics(learner: pl.LightningModule) -> set[str]:
    """The loss heads' buffers, e.g. FlexMatch's recent pseudo-labels and the class distribution
    that distribution alignment tracks: statistics of the run that wrote a checkpoint, which a
    run fine-tuned from it (on other data, maybe other classes) gathers afresh."""
    heads = getattr(learner, "loss_heads", None)
    return {f"loss_heads.{name}" for name, _ in heads.named_buffers()} if heads is not None else set()


def load_initial_weights(learner: pl.LightningModule, run: DictConfig, mode: RunMode) -> None:
    """Loads the weights a run starts from, before any trainer exists (so errors stay short).

    Fitting may start from `pretrained_checkpoint_path` (matching weights only, to fine-tune) and
    resume from `resume_from_checkpoint` (which must fit exactly); evaluating needs the weights.
    """
    if mode is RunMode.FIT:
        if run.pretrained_checkpoint_path:
            statistics = loss_head_statistics(learner)
            load_weights(learner, run.pretrained_checkpoint_path, strict=False, keep=statistics)
        if run.resume_from_checkpoint:
            load_weights(learner, run.resume_from_checkpoint, strict=True)
        return
    checkpoint = run.pretrained_checkpoint_path or run.resume_from_checkpoint
    if not checkpoint:
        raise SesemiError(f"run.mode={mode.name} needs run.pretrained_checkpoint_path: the weights to evaluate")
    load_weights(learner, checkpoint, strict=True)


def _checkpoint_callbacks(trainer: pl.Trainer) -> tuple[ModelCheckpoint | None, ModelCheckpoint | None]:
    """The callbacks that keep the best checkpoint and the last one."""
    checkpoints = [c for c in trainer.callbacks if isinstance(c, ModelCheckpoint)]
    last = next((c for c in checkpoints if c.filename == LAST and c.monitor is None), None)
    best = next((c for c in checkpoints if c is not last), None)
    return best, last


def execute(config: DictConfig, run_dir: Path | None = None) -> dict[str, Any]:
    """Runs `config` (a composed `SESEMIConfig`) and returns what `results.json` holds."""
    register_resolvers()
    check_config(config)
    run = config.run
    mode = run_mode(run.mode)
    if run.seed is not None:
        pl.seed_everything(run.seed, workers=True, verbose=False)

    datamodule = SESEMIDataModule(config.data, run.data_root, run.batch_size_per_gpu, run.seed)
    datamodule.prepare_data()
    datamodule.setup()
    attributes = resolve(config, datamodule)

    run_dir = Path(run_dir) if run_dir else default_run_dir(run)
    run_dir.mkdir(parents=True, exist_ok=True)
    OmegaConf.save(config, run_dir / "config.yaml")

    learner = instantiate(config.learner, _recursive_=False)
    fit = mode is RunMode.FIT
    load_initial_weights(learner, run, mode)
    if mode is RunMode.VALIDATE and datamodule.val_dataset is None:
        raise SesemiError("run.mode=VALIDATE needs a data.val loader")

    trainer = build_trainer(run, config.get("trainer"), run_dir, fit, attributes.iterations_per_epoch)
    started = time.time()
    if fit:
        trainer.fit(learner, datamodule=datamodule, ckpt_path=run.resume_from_checkpoint, weights_only=True)
        stage = "val"
        if datamodule.val_dataset is not None and getattr(learner, "validated_at_step", None) != trainer.global_step:
            trainer.validate(learner, datamodule=datamodule, verbose=False)  # metrics of the final weights
    elif mode is RunMode.VALIDATE:
        trainer.validate(learner, datamodule=datamodule, verbose=False)
        stage = "val"
    else:
        trainer.test(learner, datamodule=datamodule, verbose=False)
        stage = "test"

    results = _results(trainer, learner, datamodule, mode, stage, run_dir, time.time() - started)
    if trainer.is_global_zero:
        (run_dir / "results.json").write_text(json.dumps(results, indent=2) + "\n")
        summary = ", ".join(f"{k}={v:.4f}" for k, v in results["metrics"].items())
        logger.info("%s: %s", run_dir, summary or "no metrics")
    return results


def _results(trainer, learner, datamodule, mode, stage, run_dir, seconds) -> dict[str, Any]:
    metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith(f"{stage}/")}
    results: dict[str, Any] = {
        "mode": mode.name,
        "run_dir": str(run_dir),
        "metrics": metrics,
        "classes": datamodule.classes,
        "per_class_top1": getattr(learner, "per_class_accuracy", None),
        "global_step": trainer.global_step,
        "epoch": trainer.current_epoch,
        "wall_time_s": round(seconds, 2),
    }
    best, last = _checkpoint_callbacks(trainer)
    if mode is RunMode.FIT and best is not None:
        score = best.best_model_score
        results["best"] = {
            best.monitor or "score": float(score) if score is not None else None,
            "checkpoint": best.best_model_path or None,
        }
    if mode is RunMode.FIT and last is not None:
        results["last_checkpoint"] = last.best_model_path or None
    return results

"""Runs a composed config: builds data, trainer and learner, trains or evaluates, writes results.

`run` is the one way a config is run: `open_sesemi`, `sesemi train` (and its twin `train`,
which composes first) and `TrainingRun` all call it. A run writes, under its folder:
`config.yaml` (resolved), `composed.yaml` (as composed: before `${sesemi:...}` values and a time
budget's length), `checkpoints/` (`best.ckpt` by val/top1 and `last.ckpt`), `metrics.csv` (and
the files of the trackers in `loggers`), `results.json` (a `RunResult`) and, when files of its
data sets could not be read, `unreadable.csv`.
"""

from __future__ import annotations

import logging
import math
import os
import signal
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode as HydraMode
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import InterpolationResolutionError
from pytorch_lightning.accelerators import CUDAAccelerator
from pytorch_lightning.utilities.exceptions import SIGTERMException

from sesemi.checkpoints import load_weights, read_checkpoint
from sesemi.config.compose import check_ranges, compose, hydra_error, validate
from sesemi.config.resolvers import (
    SESEMIConfigAttributes,
    register_resolvers,
    run_folder,
    set_attributes,
)
from sesemi.config.structs import RunMode
from sesemi.datamodule import SESEMIDataModule
from sesemi.datasets.images import forget_reported, list_unreadable
from sesemi.datasets.shards import is_url
from sesemi.errors import SesemiError, user_error
from sesemi.learners.trained import run_files
from sesemi.logs import RESULT, show_notices_unless_configured
from sesemi.ownership import MARKER, file_lock, mark, marker, write_atomically
from sesemi.results import RESULTS, RunResult, pool_warnings, read_stored_yaml
from sesemi.run_folder import COMPOSED, CONFIG, RUN_DIR_VARIABLE, claim_folder, discard_unstarted
from sesemi.trainer import (
    BEST,
    INTERRUPTED,
    LAST,
    build_trainer,
    checkpoint_callbacks,
    devices,
    set_budget,
)
from sesemi.trust import check_targets

logger = logging.getLogger(__name__)

BUDGET_VARIABLE = "SESEMI_BUDGET_ITERATIONS"  # likewise, the iterations a time budget allows


def default_run_dir(run: DictConfig) -> Path:
    """The folder of a run started outside Hydra (`sesemi.config.resolvers.run_folder`)."""
    return Path(run_folder(run))


def run_mode(value: Any) -> RunMode:
    if isinstance(value, RunMode):
        return value
    try:
        return RunMode[str(value).upper()]
    except KeyError:
        raise SesemiError(f"run.mode must be one of {', '.join(m.name for m in RunMode)}, not {value!r}") from None


def check_loaders(config: DictConfig) -> None:
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


def attributes_for(
    config: DictConfig, datamodule: SESEMIDataModule, trainer: pl.Trainer | None = None
) -> SESEMIConfigAttributes:
    """The values behind `${sesemi:...}` for this config, data and trainer.

    The trainer says how many processes share the data (its world size) and how many GPUs
    they use; without one, a single process on the CPU.
    """
    run = config.run
    world_size = trainer.world_size if trainer is not None else 1
    on_gpus = trainer is not None and isinstance(trainer.accelerator, CUDAAccelerator)
    num_gpus = trainer.num_devices if on_gpus else 0
    batches = datamodule.iterations_per_epoch(world_size)
    # Schedules count optimizer steps: one per `accumulate_grad_batches` batches, and one at an epoch's end.
    accumulate = trainer.accumulate_grad_batches if trainer is not None else 1
    iterations = math.ceil(batches / accumulate) if batches else batches
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
        num_nodes=trainer.num_nodes if trainer is not None else 1,
        num_classes=len(classes) if classes else None,
    )


def resolve(config: DictConfig, attributes: SESEMIConfigAttributes) -> None:
    """Fills `${sesemi:...}` and every other interpolation in place; checks nothing is unset."""
    set_attributes(attributes)
    try:
        OmegaConf.resolve(config)
    except InterpolationResolutionError as error:
        raise SesemiError(user_error(error) or str(error).splitlines()[0]) from None
    missing = sorted(OmegaConf.missing_keys(config))
    if missing:
        raise SesemiError(f"the config leaves required values unset: {', '.join(missing)}")


def loss_head_statistics(learner: pl.LightningModule) -> set[str]:
    """The loss heads' buffers, e.g. FlexMatch's recent pseudo-labels and the class distribution
    that distribution alignment tracks: statistics of the run that wrote a checkpoint, which a
    run fine-tuned from it (on other data, maybe other classes) gathers afresh."""
    heads = getattr(learner, "loss_heads", None)
    return {f"loss_heads.{name}" for name, _ in heads.named_buffers()} if heads is not None else set()


def load_initial_weights(
    learner: pl.LightningModule, run: DictConfig, mode: RunMode, classes: list[str] | None, resumed: bool = False
) -> None:
    """Loads the weights a run starts from, before training starts (so errors stay short).

    Fitting may start from `pretrained_checkpoint_path` (matching weights only, to fine-tune; the
    backbone only, from a checkpoint of other `classes`) and resume from `resume_from_checkpoint`
    (which must fit exactly); evaluating needs the weights of the network, of the same `classes`,
    whatever loss heads trained it. A resumed run gets its weights from its own checkpoint, when
    training starts.
    """
    if resumed:
        return
    if mode is RunMode.FIT:
        if run.pretrained_checkpoint_path:
            load_weights(learner, _checkpoint(run.pretrained_checkpoint_path), False, loss_head_statistics(learner), classes)
        if run.resume_from_checkpoint:
            load_weights(learner, run.resume_from_checkpoint, strict=True)
        return
    checkpoint = run.pretrained_checkpoint_path or run.resume_from_checkpoint
    if not checkpoint:
        raise SesemiError(f"run.mode={mode.name} needs run.pretrained_checkpoint_path: the weights to evaluate")
    loss_heads = {name for name in learner.state_dict() if name.startswith("loss_heads.")}  # unused to evaluate
    load_weights(learner, _checkpoint(checkpoint), True, loss_heads, classes)


def _checkpoint(path: str) -> Path:
    """A checkpoint file; a run folder gives its best checkpoint (else its last), as to `sesemi inference`."""
    return run_files(path)[1] if Path(path).is_dir() else Path(path)


def run(config: DictConfig, run_dir: str | Path | None = None, resume: bool = False) -> RunResult:
    """Runs a composed config (see `sesemi.compose`) and returns what it did.

    Args:
        config: A composed `SESEMIConfig`; it is resolved in place.
        run_dir: The run's folder; by default `<run.dir>/<run.id>/<run.method>/<timestamp>`. It
            must be new or empty (unless resuming it): a failed run's folder is deleted whole
            by `sesemi rm-failed`, so it holds only the run. A run that fails before training
            starts (a mistake in the config, the data, the model or the weights to start from)
            leaves no folder, also one this process claimed before calling (`claim_folder`).
        resume: Continue the run in `run_dir` from its newest checkpoint (`interrupted.ckpt`,
            else `last.ckpt`), with the same steps and batches as if it had never stopped.

    Returns:
        The run's result, also written to `<run_dir>/results.json`.

    Raises:
        SesemiError: A problem with the config, the data or a checkpoint, in one line.
        SystemExit: The run was stopped (SIGTERM: exit code 143, Ctrl-C: 130) after saving
            `checkpoints/interrupted.ckpt` and marking the run interrupted.
    """
    if not isinstance(config, DictConfig):
        raise SesemiError(f"run takes a config made by sesemi.compose, not a {type(config).__name__}")
    show_notices_unless_configured()  # a script's or notebook's run says what the command line says
    try:
        return _run(config, run_dir, resume)
    except BaseException as error:
        if run_dir is not None:  # a folder the caller claimed (open_sesemi), when `_run` failed first
            discard_unstarted(run_dir)
        if not isinstance(error, Exception):
            raise
        message = user_error(error) or hydra_error(error)
        if message is None or (isinstance(error, SesemiError) and str(error) == message):
            raise
        raise SesemiError(message) from error  # one line, a loader worker's traceback cut off


def train(
    name: str, overrides: Sequence[str] = (), config_dir: str | Path | None = None, run_dir: str | Path | None = None
) -> RunResult:
    """Composes a config and runs it: what `sesemi train NAME OVERRIDES...` does.

    Example:
        >>> result = sesemi.train("digits", ["method=freematch", "run.seed=1"])
        >>> result.metrics["val/top1"], result.best_checkpoint
    """
    return run(compose(name, overrides, config_dir), run_dir)


def resume(run_dir: str | Path, allow: Sequence[str] = ()) -> RunResult:
    """Continues a stopped run (killed, interrupted or failed) in its folder, from its newest
    checkpoint, with the config it was started with: what `sesemi resume RUN_DIR` does.

    The folder's `config.yaml` is a file like any other: what it names must pass the trust
    rules (`sesemi.trust`; `allow` adds module prefixes, e.g. your project's) before it is built.
    """
    run_dir = Path(run_dir)
    found = marker(run_dir)
    if not run_dir.is_dir():
        raise SesemiError(f"run folder {run_dir} does not exist")
    if found is not None and found.kind != "run":  # a TrainingRun's folder, a group, ...
        raise SesemiError(f"{run_dir} is a folder sesemi made for a {found.kind.replace('_', ' ')}, not a run; name a run in it")
    if found is None:
        raise SesemiError(f"{run_dir} is not a sesemi run folder (no {MARKER} marker of its own; a copy of a run is not one): give the folder the run was made in")
    if found.state == "finished":
        raise SesemiError(f"{run_dir} finished; there is nothing to resume")
    launched = os.environ.get(RUN_DIR_VARIABLE)  # set for the processes a multi-process run launches
    by_this_run = launched is not None and Path(launched).absolute() == run_dir.absolute()
    before = None if by_this_run else _take_over(run_dir)  # the run's first process took it over
    try:
        return run(_resumed_config(run_dir, allow), run_dir, resume=True)
    except BaseException:
        found = marker(run_dir)
        if before is not None and found is not None and found.state == "running" and found.pid == os.getpid():
            write_atomically(run_dir / MARKER, before)  # it failed before it started: as it was
        raise


def _take_over(run_dir: Path) -> str:
    """Marks a stopped run as running in this process and returns its marker as it was; checked
    and marked under a lock, so that of two resumes started at once one goes on, one is refused."""
    with file_lock(run_dir / f"{MARKER}.lock", timeout=30):
        before, found = (run_dir / MARKER).read_text(), marker(run_dir)
        if found is not None and found.state == "running" and found.alive:
            raise SesemiError(f"{run_dir} is still running (process {found.pid}); stop it first")
        if RunResult.read_if_whole(run_dir) is not None:  # stopped between writing its results and saying so
            mark(run_dir, "run", "finished")
            raise SesemiError(f"{run_dir} finished (it was stopped just after writing {RESULTS}); there is nothing to resume")
        mark(run_dir, "run", "running")
    return before


def _resumed_config(run_dir: Path, allow: Sequence[str]) -> DictConfig:
    """The config a run was started with, once the trust rules allow what it names."""
    try:
        config = read_stored_yaml(run_dir / CONFIG)
    except FileNotFoundError:
        raise SesemiError(f"{run_dir} stopped before it wrote {CONFIG}; start it again instead") from None
    check_targets(config, allow, source=str(run_dir / CONFIG))
    return config


def _check_start(run: DictConfig, resume: bool) -> None:
    """Refuses, before the data is read and the run's folder made, GPUs the machine lacks, a
    time budget that is no duration and a checkpoint to start from that is not there."""
    devices(run.gpus)
    if run.time_budget:
        from sesemi.budget import parse_duration

        parse_duration(run.time_budget)
    for key in () if resume else ("pretrained_checkpoint_path", "resume_from_checkpoint"):
        if key == "pretrained_checkpoint_path" and run.get(key) and Path(run[key]).is_dir():
            run_files(run[key])  # a run folder, of a checkpoint to start from (refused when it has none)
        elif run.get(key) and not Path(run[key]).is_file():
            raise SesemiError(f"checkpoint {run[key]} does not exist (run.{key})")


def _check_budget_beyond(done: int, max_steps: int) -> None:
    """Refuses a budget that a checkpoint to train on from, saved at step `done`, has used up: it
    counts from the start of the training, so the run would end without a step (or Lightning
    refuse its epochs)."""
    if 0 <= max_steps <= done:
        raise SesemiError(
            f"run.resume_from_checkpoint has trained {done} steps, and the budget is {max_steps} steps in all "
            f"(counted from the start, not in addition): set run.num_iterations above {done}"
        )


def _checkpoints(run_dir: Path) -> list[Path]:
    """Where a run's checkpoints that it can resume from are (they may not exist)."""
    return [run_dir / "checkpoints" / name for name in (INTERRUPTED, f"{LAST}.ckpt", f"{BEST}.ckpt")]


def _resume_checkpoint(run_dir: Path) -> tuple[Path, dict[str, Any]]:
    """The newest whole checkpoint of a run's interrupted, last and best ones, and what it holds
    (its tensors mapped, not loaded); a damaged one (cut short on a full disk, changed since it
    was saved) is passed over with a warning."""
    found = sorted((path for path in _checkpoints(run_dir) if path.is_file()), key=lambda path: path.stat().st_mtime, reverse=True)
    if not found:
        raise SesemiError(f"{run_dir} stopped before it saved a checkpoint; start it again (`sesemi rm-failed` deletes it)")
    for path in found:
        try:
            return path, read_checkpoint(path, mmap=True)
        except SesemiError as error:
            logger.warning("passing over %s: %s", path.name, error)
    raise SesemiError(f"every checkpoint of {run_dir} is damaged; start it again (`sesemi rm-failed` deletes it)")


def _run_folder(run: DictConfig, run_dir: str | Path | None) -> Path:
    """The folder of this run: given, inherited from the process that launched this one (the
    other processes of a multi-process run), or a new timestamped one."""
    if run_dir is None:
        run_dir = os.environ.get(RUN_DIR_VARIABLE) or default_run_dir(run)
    return Path(run_dir)


def _fit_budget(config: DictConfig, datamodule: SESEMIDataModule, trainer: pl.Trainer, started: float) -> None:
    """Sets `run.num_iterations` to what fits in `run.time_budget`, from the measured speed."""
    from pytorch_lightning.utilities.seed import isolate_rng

    from sesemi.budget import (
        format_duration,
        iterations_within,
        measure_speed,
        parse_duration,
        validation_interval,
    )

    budget = parse_duration(config.run.time_budget)
    if os.environ.get(BUDGET_VARIABLE):  # a process a multi-process fit launched: as its parent
        config.run.num_iterations, config.run.num_epochs = int(os.environ[BUDGET_VARIABLE]), None
        return
    with isolate_rng():  # the probe's draws are not the run's: it trains as the same run given that length
        speed = measure_speed(config, datamodule, trainer, lambda probe: resolve(probe, attributes_for(probe, datamodule, trainer)))
    left = budget - (time.time() - started)
    interval = validation_interval(trainer, datamodule.iterations_per_epoch(trainer.world_size))
    iterations = iterations_within(left, speed, interval)
    config.run.num_iterations, config.run.num_epochs = iterations, None
    os.environ[BUDGET_VARIABLE] = str(iterations)
    logger.info(
        "time budget %s: %.2f s a step and %.1f s a validation here, so %d iterations (%s left)",
        config.run.time_budget, speed.step, speed.validation, iterations, format_duration(left),
    )


def _absolute_data_root(run: DictConfig) -> None:
    """Makes a relative `run.data_root` absolute, so that the run's config.yaml names the data it
    read: resumed or evaluated from another folder, it reads that data, not the `./data/digits`
    of that folder (built anew there)."""
    root = run.data_root
    if root and not is_url(root) and not os.path.isabs(os.path.expanduser(root)):
        run.data_root = os.path.abspath(os.path.expanduser(root))


def _run(config: DictConfig, run_dir: str | Path | None, resume: bool) -> RunResult:
    run_started = time.time()
    register_resolvers()
    set_attributes(SESEMIConfigAttributes())  # nothing left over from an earlier run
    forget_reported()
    validate(config)
    check_loaders(config)
    run_config = config.run
    _absolute_data_root(run_config)
    mode = run_mode(run_config.mode)
    if resume and mode is not RunMode.FIT:
        raise SesemiError(f"only training runs resume, not run.mode={mode.name}")
    _check_start(run_config, resume)
    if run_config.seed is not None:
        pl.seed_everything(run_config.seed, workers=True, verbose=False)

    run_dir = _run_folder(run_config, run_dir)
    fit = mode is RunMode.FIT
    # The step the fit goes on from, read once (its tensors mapped, not loaded) before the data is.
    if resume:
        checkpoint, saved = _resume_checkpoint(run_dir)
    else:
        checkpoint = config.run.resume_from_checkpoint
        saved = read_checkpoint(checkpoint, mmap=True) if fit and checkpoint else None
    saved_step = int(saved.get("global_step") or 0) if saved is not None else None

    datamodule = SESEMIDataModule(config.data, run_config.data_root, run_config.batch_size_per_gpu, run_config.seed)
    datamodule.prepare_data()
    datamodule.setup("fit" if fit else mode.name.lower())
    evaluated = {RunMode.VALIDATE: ("val", datamodule.val_dataset), RunMode.TEST: ("test", datamodule.test_dataset)}
    if mode in evaluated and evaluated[mode][1] is None:
        raise SesemiError(f"run.mode={mode.name} needs a data.{evaluated[mode][0]} loader")

    # Built before the folder is made: a mistake in the trainer's or loggers' options leaves none.
    # Absolute for the trainer: its checkpoint callbacks keep their folder in their state, and a
    # resume that names the run's folder otherwise (relative or not) would drop their bests.
    trainer = build_trainer(
        run_config, config.get("trainer"), run_dir.absolute(), fit, config.get("loggers"), saved_step if resume else None
    )
    if trainer.world_size > 1 and HydraConfig.initialized() and HydraConfig.get().mode == HydraMode.MULTIRUN:
        raise SesemiError(
            "open_sesemi -m runs a sweep's jobs one process each: Lightning would start the other processes "
            "of a multi-process job as the whole sweep again; run such jobs one by one, without -m"
        )
    main = trainer.is_global_zero
    if main and not resume:  # a resumed run's folder was marked running by `resume`
        claim_folder(run_dir)  # makes it: one made here is the run's own, deleted if it fails to start
    run_dir.mkdir(parents=True, exist_ok=True)  # the other processes', made by the first
    list_unreadable(run_dir if main else None)
    # what was asked for, which summaries compare runs by: written by the process that writes config.yaml
    composed = OmegaConf.to_yaml(config) if main and not resume else None
    try:
        if fit and config.run.time_budget and not resume:
            _fit_budget(config, datamodule, trainer, started=run_started)
        attributes = attributes_for(config, datamodule, trainer)
        resolve(config, attributes)
        check_ranges(config)
        if fit:
            set_budget(trainer, config.run)
            if saved_step is not None and not resume:
                _check_budget_beyond(saved_step, trainer.max_steps)

        learner = instantiate(config.learner, _recursive_=False)
        learner.example_input_array = datamodule.example_input()  # FLOPs and sizes in the model summary
        learner.check_features(learner.example_input_array)
        load_initial_weights(learner, config.run, mode, datamodule.classes, resumed=resume)
        if main and not resume:  # the run starts: until now a mistake leaves no folder (discard_unstarted)
            write_atomically(run_dir / CONFIG, OmegaConf.to_yaml(config))
            write_atomically(run_dir / COMPOSED, composed)

        started = time.time()
        if fit:
            os.environ[RUN_DIR_VARIABLE] = str(run_dir)  # for the processes fit may launch
            try:
                trainer.fit(learner, datamodule=datamodule, ckpt_path=checkpoint, weights_only=True)
            finally:
                os.environ.pop(RUN_DIR_VARIABLE, None)
            _finish(trainer, learner, datamodule)
            stage = "val"
        elif mode is RunMode.VALIDATE:
            trainer.validate(learner, datamodule=datamodule, verbose=False, weights_only=True)
            stage = "val"
        else:
            trainer.test(learner, datamodule=datamodule, verbose=False, weights_only=True)
            stage = "test"
        result = _result(trainer, learner, datamodule, mode, stage, run_dir, time.time() - started)
    except BaseException as error:
        stopped = _stopped(trainer, error)
        discarded = main and discard_unstarted(run_dir)
        if main and not discarded:
            mark(run_dir, "run", "interrupted" if stopped else "failed")
        if stopped and not discarded:
            resumable = any(path.is_file() for path in _checkpoints(run_dir))
            advice = f"resume it with `sesemi resume {run_dir}`" if resumable else "it saved no checkpoint: start it again"
            logger.warning("%s: stopped; %s", run_dir, advice)
        if stopped:
            raise SystemExit(stopped) from None
        raise
    finally:
        os.environ.pop(BUDGET_VARIABLE, None)  # the budget is this run's, not the next one's in this process
        list_unreadable(None)  # files a later data set of this process cannot read are not this run's
    if main:
        write_atomically(run_dir / RESULTS, result.to_json())
        mark(run_dir, "run", "finished")
        summary = ", ".join(f"{k}={v:.4f}" for k, v in result.metrics.items())
        logger.info("%s: %s", run_dir, summary or "no metrics", extra=RESULT)
    return result


def _stopped(trainer: pl.Trainer, error: BaseException) -> int | None:
    """The exit code of a run stopped by a signal (SIGTERM 143, Ctrl-C 130), or None."""
    if trainer.received_sigterm or isinstance(error, SIGTERMException):
        return 128 + signal.SIGTERM
    if isinstance(error, KeyboardInterrupt) or (isinstance(error, SystemExit) and trainer.interrupted):
        return 128 + signal.SIGINT
    return None


def _finish(trainer: pl.Trainer, learner: pl.LightningModule, datamodule: SESEMIDataModule) -> None:
    """Ends every training validated and checkpointed, whatever its budget: validates the final
    weights unless the last step was validated, and saves them as the last checkpoint (and as
    the best one when they score higher, or when nothing was validated before)."""
    if datamodule.val_dataset is None or getattr(learner, "validated_at_step", None) == trainer.global_step:
        return
    # Lightning advises validating on one device when `validate` runs on several; this validation
    # ends a multi-process fit on its processes, as every validation during the fit ran.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*During `trainer\.validate\(\)`, it is recommended.*")
        trainer.validate(learner, datamodule=datamodule, verbose=False, weights_only=True)
    best, last = checkpoint_callbacks(trainer)
    if last is not None:
        path = Path(last.dirpath) / f"{last.filename}.ckpt"
        trainer.save_checkpoint(path, weights_only=False)  # a full checkpoint, as ModelCheckpoint saves
        last.best_model_path = str(path)
    score = trainer.callback_metrics.get(best.monitor) if best is not None and best.monitor else None
    if score is None or best is None:
        return
    previous = best.best_model_score
    better = previous is None or (float(score) > float(previous) if best.mode == "max" else float(score) < float(previous))
    if better:
        path = Path(best.dirpath) / f"{best.filename or 'best'}.ckpt"
        trainer.save_checkpoint(path, weights_only=False)
        best.best_model_path, best.best_model_score = str(path), score


def _result(trainer, learner, datamodule, mode, stage, run_dir, seconds) -> RunResult:
    best, last = checkpoint_callbacks(trainer)
    fit = mode is RunMode.FIT
    best_score = best.best_model_score if fit and best is not None else None

    def saved(callback: pl.callbacks.ModelCheckpoint | None) -> Path | None:
        """Its checkpoint, under `run_dir` as given (Lightning makes the path absolute), as
        `RunResult.read` gives it."""
        found = callback.best_model_path if fit and callback is not None else None
        return run_dir / os.path.relpath(found, run_dir) if found else None

    return RunResult(
        run_dir=run_dir,
        mode=mode.name,
        metrics={k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith(f"{stage}/")},
        classes=datamodule.classes,
        per_class_top1=getattr(learner, "per_class_accuracy", None),
        global_step=trainer.global_step,
        epoch=trainer.current_epoch,
        wall_time_s=round(seconds, 2),
        best_checkpoint=saved(best),
        best_score=float(best_score) if best_score is not None and not math.isnan(float(best_score)) else None,
        last_checkpoint=saved(last),
        unlabeled=_unlabeled(learner, datamodule, trainer.callback_metrics.get("val/top1")) if fit else None,
    )


def _unlabeled(learner: pl.LightningModule, datamodule: SESEMIDataModule, val_top1: Any = None) -> dict | None:
    """What the pseudo-labeling head did with the pool (`RunResult.unlabeled`), by class name;
    logs a warning when the pool looks very unlike the labeled classes (to a model that
    validates clearly above chance, `val_top1`)."""
    report = getattr(learner, "unlabeled_statistics", None)
    classes = datamodule.classes
    if report is None or classes is None or len(classes) != len(report["pseudo_labeled_per_class"]):
        return None
    report = dict(report)
    for key in ("pseudo_labeled_per_class", "predicted_per_class", "estimated_pool_prior"):
        if key in report:
            report[key] = dict(zip(classes, report[key], strict=True))
    targets = getattr(datamodule.train_datasets.get("supervised"), "targets", None) or []
    labeled = {c: 0 for c in classes}
    for target in targets:
        labeled[classes[target]] += 1
    for warning in pool_warnings(report, labeled, None if val_top1 is None else float(val_top1)):
        logger.warning(warning)
    return report

"""The config schema: dataclasses registered in Hydra's ConfigStore (see `store.py`).

They are the single source of truth for field names and defaults; YAML files only override them,
and a mistyped key or a value of the wrong type fails when the config is composed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from omegaconf import MISSING

RANGE = "range"  # the metadata key of a field's allowed range: (low, high, low_included)


def _bounded(default: Any, low: float | None, high: float | None, low_included: bool = True) -> Any:
    return field(default=default, metadata={RANGE: (low, high, low_included)})


def at_least(low: float, default: Any = None) -> Any:
    """A field whose value (when set) is at least `low`; compose refuses others in one line."""
    return _bounded(default, low, None)


def above(low: float, default: Any = None) -> Any:
    """A field whose value (when set) is greater than `low`."""
    return _bounded(default, low, None, low_included=False)


def between(low: float, high: float, default: Any = None) -> Any:
    """A field whose value (when set) lies in [low, high]."""
    return _bounded(default, low, high)


# Ranges of fields the schema leaves open (any optimizer, any loss head), by dotted path; `*`
# stands for any one key.
OPEN_RANGES: dict[str, tuple[float | None, float | None, bool]] = {
    "learner.hparams.optimizer.lr": (0, None, False),
    "learner.hparams.optimizer.weight_decay": (0, None, True),
    "learner.hparams.model.regularization_loss_heads.*.head.threshold": (0, 1, True),
    "learner.hparams.model.regularization_loss_heads.*.head.min_threshold": (0, 1, True),
    # Lightning's Trainer arguments that a 0 would make divide by zero deep in its loops
    "trainer.val_check_interval": (0, None, False),
    "trainer.check_val_every_n_epoch": (1, None, True),
    "trainer.accumulate_grad_batches": (1, None, True),
    "trainer.log_every_n_steps": (1, None, True),
}


class RunMode(Enum):
    """What a run does.

    Attributes:
        FIT: Trains, validating as it goes.
        VALIDATE: Evaluates a checkpoint on the validation set.
        TEST: Evaluates a checkpoint on the test set.
    """

    FIT = "fit"
    VALIDATE = "validate"
    TEST = "test"


@dataclass
class RunConfig:
    """The run configuration.

    Attributes:
        seed: An optional random seed used on initialization.
        num_epochs: The number of training epochs. Cannot be set with `num_iterations`.
        num_iterations: The number of training iterations. Cannot be set with `num_epochs`.
        time_budget: A wall-clock budget for the whole run, e.g. `20m`, `1h30m`, `90s`: the
            first steps are timed on this machine and `num_iterations` is set so that training,
            its schedules and ramp-ups included, ends inside it (replaces num_iterations and
            num_epochs).
        gpus: The number of GPUs (-1 for all of them), a list of GPU ids, a comma-separated
            string of ids, or 0/None for the CPU. With -1 and no GPU the run uses the CPU.
        num_nodes: The number of nodes to train on.
        accelerator: The multi-device strategy: "ddp" (and its Lightning variants). The
            Lightning 1 value "dp" is still accepted and runs as "ddp".
        batch_size_per_gpu: The labeled batch: the batch size of every data loader that sets
            neither `batch_size` nor `mu`.
        mu: Unlabeled images per labeled image in a step (FixMatch's mu): the method configs'
            unlabeled loaders read `round(mu * batch_size_per_gpu)` images per step.
        rampup: The fraction of the training budget over which the methods' unlabeled losses
            ramp up to full weight (their weight schedules end or pivot there).
        pretrain: The fraction of the budget that the pre-training recipes (e.g. `method=simclr_freematch`)
            spend on their label-free task (beside the labels), before the pseudo-labels train.
        method: The method's name, set by the method config (`configs/method/<name>.yaml`).
        data_root: The parent of relative dataset roots (see `DatasetConfig`).
        id: The run's name; outputs go to `<dir>/<id>/<method>/<timestamp>/`.
        dir: The directory that holds the runs.
        mode: FIT, VALIDATE or TEST.
        resume_from_checkpoint: A checkpoint to resume training from (weights, optimizer,
            schedulers and loop state), e.g. the `last.ckpt` of a killed run.
        pretrained_checkpoint_path: A checkpoint (or a run folder, for its best one) whose model
            weights initialize the model (for fine-tuning, or the weights to evaluate with mode
            VALIDATE/TEST).
    """

    seed: int | None = None
    num_epochs: int | None = at_least(1)
    num_iterations: int | None = at_least(1)
    time_budget: str | None = None
    gpus: Any = -1
    num_nodes: int = at_least(1, 1)
    accelerator: str | None = None
    batch_size_per_gpu: int | None = at_least(1)
    mu: float = above(0, 7.0)
    rampup: float = between(0, 1, 0.2)
    pretrain: float = between(0, 1, 0.1)
    method: str | None = None
    data_root: str = "./data"
    id: str = "default"
    dir: str = "./runs"
    mode: RunMode = RunMode.FIT
    resume_from_checkpoint: str | None = None
    pretrained_checkpoint_path: str | None = None


@dataclass
class DatasetConfig:
    """A data set, built by `sesemi.datasets.dataset`.

    Keys beyond these are passed to the registered builder, so a dataset config is an open
    mapping; a key the builder does not take is reported when the data set is built.

    Attributes:
        name: The registered dataset name (e.g. "image_folder", "image_file").
        root: The data set's folder; a relative path is taken under `run.data_root`, and None
            means `run.data_root` itself.
        subset: A subfolder name, a list of them (concatenated), or None for the whole root.
        image_transform: An instantiable transform applied to each image.
    """

    name: str = MISSING
    root: str | None = None
    subset: Any = None
    image_transform: Any = None


@dataclass
class DataLoaderConfig:
    """A data loader: a dataset plus the arguments of `torch.utils.data.DataLoader`.

    Attributes:
        dataset: The dataset config (see `DatasetConfig`; extra keys go to the builder).
        batch_size: The batch size; defaults to `mu` x `run.batch_size_per_gpu`, else to
            `run.batch_size_per_gpu`. Cannot be set with `mu`.
        mu: The batch size as a multiple of `run.batch_size_per_gpu` (rounded), e.g. an
            unlabeled loader's `${run.mu}`. Cannot be set with `batch_size`.
        views: Names in `data.views` whose transforms this loader's items get: one view is that
            transform, several make a `sesemi.transforms.MultiView` (a tuple of views per
            item). Cannot be set with `dataset.image_transform`.
        shuffle: Whether to reshuffle the data every epoch.
        sampler: An optional instantiable sampler.
        batch_sampler: An optional instantiable batch sampler (excludes shuffle/drop_last); the
            data set is passed in, and `batch_size` when the sampler takes one and sets none
            (e.g. `sesemi.samplers.ClassBalancedBatchSampler`).
        num_workers: Loader worker processes (0 loads in the main process), or `auto`: one per
            CPU core of each device's share of the machine but one, at most 8 (0 on one core).
        collate_fn: An optional instantiable collate function (e.g. RotationTransformer).
        pin_memory: Whether to pin batches in page-locked memory for faster GPU copies, or `auto`:
            when training on GPUs.
        drop_last: Whether to drop the last incomplete batch.
        timeout: Seconds to wait for a batch from the workers (0 waits forever).
        persistent_workers: Keep a loader's workers alive from one iteration to the next (only
            with num_workers > 0), e.g. the validation loader's between validations. A training
            loader with workers is iterated once for the whole run anyway.
        prefetch_factor: Batches each worker loads ahead (only with num_workers > 0).
    """

    dataset: Any = MISSING
    batch_size: int | None = at_least(1)
    mu: float | None = above(0)
    views: list[str] | None = None
    shuffle: bool = False
    sampler: Any = None
    batch_sampler: Any = None
    num_workers: Any = at_least(0, "auto")  # a number, or "auto"
    collate_fn: Any = None
    pin_memory: Any = "auto"  # true, false or "auto"
    drop_last: bool = False
    timeout: float = at_least(0, 0)
    persistent_workers: bool = True
    prefetch_factor: int | None = at_least(1)


@dataclass
class DataConfig:
    """The data configuration.

    Attributes:
        train: Named training loaders; a training batch is a dict with the same keys, and one
            epoch is one pass over the longest loader (shorter ones start over).
        val: The validation loader.
        test: The test loader.
        views: Named transform configs the modality supplies (`weak`, `strong`, `eval`, ...),
            which loaders read by name (`views: [weak, strong]`), so that a method names the
            views it needs and the data config says what they are.
        unlabeled: The dataset config of the unlabeled pool, which the method configs' loaders
            read (`dataset: ${data.unlabeled}`).
        bit_depth: The bits of the data in 16- and 32-bit integer images, e.g. 12 for a 12-bit
            camera's images saved as 16 bits (otherwise read as 0..16 of 255); None: the file's
            (16 bits, or 31). Every image data set of the run reads by it, and so do inference
            and export.
    """

    train: dict[str, DataLoaderConfig] | None = None
    val: DataLoaderConfig | None = None
    test: DataLoaderConfig | None = None
    views: dict[str, Any] = field(default_factory=dict)
    unlabeled: Any = None
    bit_depth: int | None = between(8, 31)


@dataclass
class LossCallableConfig:
    """The supervised loss.

    Attributes:
        callable: An instantiable loss module; it is called with `reduction="none"` semantics,
            so use losses that accept a `reduction` argument (e.g. torch.nn.CrossEntropyLoss).
        scheduler: An optional instantiable weight schedule `step -> weight`.
        reduction: How per-sample losses become one number: "mean" or "sum".
        scale_factor: A constant multiplier of the loss.
    """

    callable: Any = MISSING
    scheduler: Any = None
    reduction: str = "mean"
    scale_factor: float = at_least(0, 1.0)


@dataclass
class LossHeadConfig:
    """A regularization loss head.

    Attributes:
        head: An instantiable loss head (see `sesemi.models.heads.loss`).
        scheduler: An optional instantiable weight schedule `step -> weight` (e.g. a ramp-up).
        reduction: How per-sample losses become one number: "mean" or "sum".
        scale_factor: A constant multiplier of the loss.
    """

    head: Any = MISSING
    scheduler: Any = None
    reduction: str = "mean"
    scale_factor: float = at_least(0, 1.0)


@dataclass
class LRSchedulerConfig:
    """A learning-rate scheduler and how Lightning steps it.

    Attributes:
        scheduler: An instantiable scheduler (the optimizer is passed in).
        frequency: Step the scheduler every `frequency` intervals.
        interval: "step" or "epoch".
        monitor: The metric a scheduler such as ReduceLROnPlateau watches.
        strict: Whether a missing `monitor` metric is an error.
        name: The name under which the learning rate is logged.
    """

    scheduler: Any = MISSING
    frequency: int = at_least(1, 1)
    interval: str = "step"
    monitor: str | None = None
    strict: bool = True
    name: str | None = None


@dataclass
class ClassifierModelConfig:
    """The classifier's modules.

    Attributes:
        backbone: An instantiable backbone (an nn.Module with `out_features`).
        head: An optional instantiable head taking `in_features` and `out_features`; by default a
            linear layer from the backbone's features to the classes.
        supervised_loss: The loss on the `supervised` training loader; null trains without labels
            (self-supervised pre-training).
        regularization_loss_heads: Named loss heads that add semi- or self-supervised terms.
        fuse_labeled: Whether the labeled batch joins the loss heads' forward pass. Fused, batch
            norm normalizes labeled images with the statistics of the whole step (as the FixMatch
            reference does); apart, they keep their own and only they update the running
            statistics evaluation uses, so a method whose unlabeled loss is idle trains and
            evaluates exactly like supervised learning. Fusing cost 11 points of accuracy
            on experiments/letters, hence off by default.
        forward_only_targets: Whether the inputs that only make targets (FixMatch's weak view,
            a teacher's view) are encoded without autograd, in a pass of their own: about half
            the work of a FixMatch step (experiments/step_speed), accuracy within seed noise
            (experiments/forward_only; its own batch statistics, no running ones). False
            encodes them in the shared pass with gradients, as the FixMatch reference code does.
        compile: Whether to compile the backbone with `torch.compile`, at the first steps and
            again at the first validation (its cost and gain on a CPU: experiments/step_speed).
            Where compiling is not possible, one warning says so and training runs uncompiled.
    """

    backbone: Any = MISSING
    head: Any = None
    supervised_loss: LossCallableConfig | None = field(default_factory=LossCallableConfig)
    regularization_loss_heads: dict[str, LossHeadConfig] | None = None
    fuse_labeled: bool = False
    forward_only_targets: bool = True
    compile: bool = False


@dataclass
class ClassifierHParams:
    """The classifier's hyperparameters.

    Attributes:
        num_classes: The number of classes; `${sesemi:num_classes}` reads it off the data.
        model: The modules.
        optimizer: An instantiable optimizer (the parameters are passed in).
        lr_scheduler: An optional learning-rate scheduler.
    """

    num_classes: int = MISSING
    model: ClassifierModelConfig = field(default_factory=ClassifierModelConfig)
    optimizer: Any = MISSING
    lr_scheduler: LRSchedulerConfig | None = None


@dataclass
class LearnerConfig:
    """A learner: any instantiable LightningModule.

    Attributes:
        _target_: The LightningModule's class, e.g. `sesemi.Classifier`.
    """

    _target_: str = MISSING


@dataclass
class ClassifierConfig(LearnerConfig):
    """The classifier learner.

    Attributes:
        _target_: The learner's class, `sesemi.Classifier`.
        hparams: The classifier's hyperparameters.
    """

    _target_: str = "sesemi.Classifier"
    hparams: ClassifierHParams = field(default_factory=ClassifierHParams)


@dataclass
class SESEMIConfig:
    """The full sesemi configuration.

    Attributes:
        run: The run config.
        data: The data config.
        learner: The learner config.
        trainer: Extra keyword arguments for `pytorch_lightning.Trainer` (e.g. `precision`,
            `callbacks`); the run config sets devices, budget and loggers.
        loggers: Experiment trackers besides the run folder's `metrics.csv`, by name: the
            `logger` config group (`logger=tensorboard`, `logger=[mlflow,wandb]`), each a
            Lightning logger config that is given `save_dir`, the run folder.
    """

    defaults: list[Any] = field(
        default_factory=lambda: ["_self_", {"learner": "classifier"}, {"hydra": "sesemi"}, {"logger": None}]
    )
    run: RunConfig = field(default_factory=RunConfig)
    data: DataConfig = field(default_factory=DataConfig)
    learner: LearnerConfig = field(default_factory=LearnerConfig)
    trainer: dict[str, Any] | None = None
    loggers: dict[str, Any] = field(default_factory=dict)

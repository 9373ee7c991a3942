"""The data module: `data` config -> a dict of training loaders, a val and a test loader."""

from __future__ import annotations

import inspect
import itertools
import logging
import math
import multiprocessing
import os
from collections import Counter
from collections.abc import Iterator, Mapping
from functools import partial
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from hydra.utils import get_object, instantiate
from lightning_fabric.utilities.data import _num_cpus_available, suggested_max_num_workers
from lightning_fabric.utilities.distributed import DistributedSamplerWrapper
from lightning_fabric.utilities.seed import pl_worker_init_function
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.accelerators import CUDAAccelerator
from pytorch_lightning.overrides.distributed import (
    UnrepeatedDistributedSampler,
    UnrepeatedDistributedSamplerWrapper,
)
from pytorch_lightning.utilities.seed import isolate_rng
from torch.utils.data import (
    BatchSampler,
    DataLoader,
    Dataset,
    DistributedSampler,
    IterableDataset,
    Sampler,
    default_collate,
)

from sesemi.collation import ReadableOnly
from sesemi.datasets import DATASETS, ImageDataset, dataset
from sesemi.datasets.builtin import build_on_first_use, split_named_otherwise
from sesemi.datasets.images import FileDataset
from sesemi.datasets.overlap import validation_leaks
from sesemi.datasets.shards import is_url
from sesemi.errors import SesemiError, printable
from sesemi.logs import counted
from sesemi.samplers import PassByPassBatchSampler, RepeatingRandomSampler
from sesemi.streams import RandomStream, StreamedCollate, StreamedDataset, stream_seed
from sesemi.transforms import MultiView

LOADER_ARGUMENTS = (
    "shuffle",
    "num_workers",
    "pin_memory",
    "drop_last",
    "timeout",
    "persistent_workers",
    "prefetch_factor",
)
AUTO = "auto"
MAX_AUTO_WORKERS = 8  # loader processes per loader with num_workers=auto

logger = logging.getLogger(__name__)


def worker_count(name: str, value: Any, devices: int = 1) -> int:
    """A loader's worker processes: `num_workers` as given, or for `auto` Lightning's suggestion
    (the CPU cores of each of the `devices` processes of this machine but one, left to the
    training step) at most `MAX_AUTO_WORKERS`, and none on a single core: 1 on two cores, 7 on
    eight, so that Lightning has no reason to warn about too few workers.

    Raises:
        SesemiError: The value is neither `auto` nor a number of processes.
    """
    if value == AUTO:
        if _num_cpus_available() // max(1, devices) < 2:
            return 0
        return min(MAX_AUTO_WORKERS, suggested_max_num_workers(max(1, devices)))
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise SesemiError(f"loader {name!r}: num_workers must be auto or a number of processes (0 or more), not {value!r}")
    return value


def pins_memory(name: str, value: Any, on_gpu: bool) -> bool:
    """A loader's `pin_memory`: as given, or for `auto` whether the training runs on GPUs (page-
    locked batches copy to a GPU faster; without one, torch warns that they cannot be pinned).

    Raises:
        SesemiError: The value is neither `auto` nor true or false.
    """
    if value == AUTO:
        return on_gpu
    if not isinstance(value, bool):
        raise SesemiError(f"loader {name!r}: pin_memory must be auto, true or false, not {value!r}")
    return value


def dataset_root(dataset_config: Mapping[str, Any], data_root: str) -> Path | str:
    """A dataset's folder: its `root`, taken under `data_root` when relative; a URL
    (`s3://bucket/pool`, for streamed shards) as it is. `~` stands for the home folder."""
    root = dataset_config.get("root")
    if root is None:
        return Path(data_root).expanduser()
    if is_url(root):
        return str(root)
    root = os.path.expanduser(root)
    return Path(root) if os.path.isabs(root) else Path(data_root).expanduser() / root


def loader_batch_size(name: str, loader: Mapping[str, Any], batch_size_per_gpu: int | None) -> int | None:
    """A loader's batch size: its `batch_size`, else `mu` x `batch_size_per_gpu` (rounded), else
    `batch_size_per_gpu` (None when that is unset too).

    Args:
        name: The loader's name, for error messages.
        loader: The loader's config (`DataLoaderConfig`).
        batch_size_per_gpu: The labeled batch size (`run.batch_size_per_gpu`).

    Raises:
        SesemiError: The loader sets both `batch_size` and `mu`, or `mu` without a labeled batch
            size to multiply, or one that makes batches of no items.
    """
    size, mu = loader.get("batch_size"), loader.get("mu")
    if mu is None:
        return size if size is not None else batch_size_per_gpu
    if size is not None:
        raise SesemiError(f"loader {name!r} sets both batch_size ({size}) and mu ({mu}); set mu=null to use batch_size")
    if batch_size_per_gpu is None:
        raise SesemiError(f"loader {name!r} sets mu ({mu}) but run.batch_size_per_gpu is unset; set it, or the loader's batch_size")
    size = round(mu * batch_size_per_gpu)
    if size < 1:
        raise SesemiError(f"loader {name!r}: mu {mu} x run.batch_size_per_gpu {batch_size_per_gpu} is no item per batch; raise mu")
    return size


def _instantiate_transform(loader: str, key: str, config: Any) -> Any:
    """A transform from its config (None stays None); a config without `_target_` is refused.

    Such a config is what an override like `dataset.image_transform.crop_dim=16` leaves of a
    transform that was an interpolation of a view: only the overridden key.
    """
    if not config:
        return None
    if isinstance(config, Mapping) and "_target_" not in config:
        raise SesemiError(
            f"loader {loader!r}: {key} has no _target_; change a view's settings in data.views "
            f"(e.g. data.views.weak.crop_dim=16), not the loader's copy of it"
        )
    return instantiate(config)


def _batch_sampler(
    config: DictConfig, data: Dataset, batch_size: int | None, seed: int | None = None, sampler: Sampler | None = None
) -> Any:
    """A batch sampler from its config; it is given the loader's batch size, a seed and the
    items to draw from (this process's share), when it takes them and its config does not set them."""
    parameters = inspect.signature(get_object(config._target_)).parameters
    given = {"batch_size": batch_size, "seed": seed, "sampler": sampler}
    extra = {k: v for k, v in given.items() if v is not None and k in parameters and k not in config}
    return instantiate(config, data, **extra)


def share(data: Dataset, sampler: Sampler | None, world_size: int, rank: int, train: bool) -> Sampler:
    """Process `rank`'s share of the items `sampler` draws (of `data`'s, in order, for None) in a
    run of `world_size` processes: for training an equal share, the last ones padded with the
    first items, for evaluation each item once (metrics would count a repeated item twice). A
    sampler that draws anew each pass (a shuffle) is drawn alike on every process and split."""
    if sampler is None:
        whole = DistributedSampler if train else UnrepeatedDistributedSampler
        return whole(data, world_size, rank, shuffle=False)
    wrapper = DistributedSamplerWrapper if train else UnrepeatedDistributedSamplerWrapper
    return wrapper(sampler, world_size, rank, shuffle=False)


def init_worker(worker_id: int, rank: int, seed: bool) -> None:
    """Sets up a loader worker process: it hands batches over by shared-memory file name.

    With torch's default (`file_descriptor`) the main process asks the worker for the file
    descriptor of every tensor it receives, over a new authenticated connection each time; the
    digits training loop ran 1.5 to 3.4 ms a step faster without that (faster in 19 of 20
    paired rounds, experiments/digits_ssl). Torch's shared-memory manager frees what a killed
    worker leaves behind.
    With `seed` (a seeded run), the worker is then seeded as Lightning seeds the workers of a
    loader that has no `worker_init_fn` of its own.
    """
    torch.multiprocessing.set_sharing_strategy("file_system")
    if seed:
        pl_worker_init_function(worker_id, rank)


def fork_server() -> multiprocessing.context.BaseContext:
    """The context that starts worker processes from a fork server which has imported sesemi's
    data code (torch included) once, so that each worker starts in well under a second, and the
    main script, as by default, so that data sets defined there load in the workers too."""
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["__main__", __name__])
    return context


class UnbrokenLoader(DataLoader):
    """A training loader iterated once for the whole run: each epoch is its next `len(self)`
    batches, so its worker processes keep working ahead across passes and epochs.

    Lightning restarts every training loader at each epoch, and a shorter one after each of its
    passes; a loader with workers then waits for them to make the first batch again. Here it
    takes its batches from one `PassByPassBatchSampler` that runs on, epoch after epoch.

    Args:
        skip: Batches of the first epoch taken before (a resumed run's), which its batch sampler
            leaves out, so that the first epoch is `len(self) - skip` batches long.
    """

    _batches: Iterator[Any] | None = None
    _unread = 0  # batches of the current epoch not handed out yet

    def __init__(self, *args: Any, skip: int = 0, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._skip = skip

    def __iter__(self) -> Iterator[Any]:
        # Start over the first time; after an epoch that ended early (`limit_train_batches`), so
        # that every epoch gets the batches of its own shuffle; and after Lightning shut the
        # persistent workers down at the end of a fit, forgetting `_iterator`.
        start_over = self._batches is None or self._unread or (self.persistent_workers and self._iterator is None)
        self._unread, self._skip = len(self) - self._skip, 0
        return self._one_epoch(start_over)

    def _one_epoch(self, start_over: bool) -> Iterator[Any]:
        if start_over:
            # At the first batch, not in `__iter__`: Lightning calls that before it sets the epoch
            # of the sampler, which the batch sampler starts from (a resumed run's, not 0), and
            # workers draw their first batches as soon as they are started.
            self._batches = super().__iter__()
        for batch in itertools.islice(self._batches, self._unread):
            self._unread -= 1
            yield batch


class StreamLoader(DataLoader):
    """The loader of a streamed data set: sets the data set's `epoch` before each pass, so that
    loader processes started anew every epoch stream that epoch's items, not the first's again.

    Args:
        epoch: The epoch of the first pass (a resumed run's).
    """

    def __init__(self, *args: Any, epoch: int = 0, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._epoch = epoch

    def __iter__(self) -> Iterator[Any]:
        self.dataset.epoch = self._epoch
        self._epoch += 1
        return super().__iter__()


def kept_busy(loader: DataLoader, num_batches: int, skip: int = 0, seed: int | None = None) -> DataLoader:
    """The same loader yielding `num_batches` an epoch, iterated once for the whole run.

    Lightning restarts a training loader at every epoch, and a shorter one after every pass;
    each restart waits for the loader's worker processes to make their first batch: with 50
    labels in batches of 32, every second step. Batching pass after pass and epoch after epoch
    instead (`UnbrokenLoader`) keeps the workers working ahead, with the same batches, and lets
    a resumed run take up the batches of its epoch where it stopped (`skip` batches in). With a
    `seed`, every batch carries a seed of its own for its augmentations (`SeededBatch`).
    A loader with a batch sampler of its own, or of a streamed data set, is returned as it is.
    """
    if type(loader.batch_sampler) is not BatchSampler or isinstance(loader.dataset, IterableDataset):
        return loader
    batches = PassByPassBatchSampler(loader.sampler, loader.batch_size, loader.drop_last, num_batches, skip, seed)
    return UnbrokenLoader(
        loader.dataset,
        batch_sampler=batches,
        num_workers=loader.num_workers,
        collate_fn=loader.collate_fn,
        pin_memory=loader.pin_memory,
        timeout=loader.timeout,
        worker_init_fn=loader.worker_init_fn,
        prefetch_factor=loader.prefetch_factor,
        persistent_workers=loader.persistent_workers,
        generator=loader.generator,
        multiprocessing_context=loader.multiprocessing_context,
        skip=skip,
    )


def labeled_summary(data: FileDataset) -> str:
    """One line on the labeled set: its size and how its classes share it, the least
    represented named (a class of one example, or a skewed set, shows at once)."""
    counts = Counter(data.targets)
    per_class = [counts.get(index, 0) for index in range(len(data.classes))]
    total, fewest, most = sum(per_class), min(per_class), max(per_class)
    if fewest == most:
        return f"{counted(total, 'labeled ' + data.kind)}: {fewest} of each of {len(per_class)} classes"
    order = sorted(range(len(per_class)), key=per_class.__getitem__)[:3]
    named = ", ".join(f"{data.classes[index]} {per_class[index]}" for index in order)
    return (
        f"{counted(total, 'labeled ' + data.kind)} of {len(per_class)} classes: "
        f"{fewest} to {most} of each (fewest: {named})"
    )


class SESEMIDataModule(pl.LightningDataModule):
    """Builds the loaders a `DataConfig` describes.

    Training loaders are returned as a dict; Lightning iterates them together, so a training
    batch is `{loader_name: batch}` and an epoch is one pass over the longest loader while the
    shorter ones start over, each pass ending with its own smaller batch. A loader with worker
    processes is iterated once for the whole run instead (`kept_busy`), pass after pass and
    epoch after epoch, with the same batches, so that its workers never wait for a restart.
    (Full batches only, drawn across passes, cost 10 points of accuracy on `letters`: see
    experiments/digits_ssl/README.md.)

    Args:
        data: The `data` config.
        data_root: The parent of relative dataset roots (`run.data_root`).
        batch_size: The labeled batch size (`run.batch_size_per_gpu`): of loaders that set no
            batch size, and what a loader's `mu` multiplies (see `loader_batch_size`).
        seed: The run's seed (`run.seed`): each training loader then shuffles with a generator
            of its own and augments each batch with a seed of its own (sesemi/streams.py);
            None: with the global generator.
    """

    def __init__(
        self, data: DictConfig, data_root: str = "./data", batch_size: int | None = None, seed: int | None = None
    ):
        super().__init__()
        self.data = data
        self.data_root = data_root
        self.default_batch_size = batch_size
        self.seed = seed
        self.train_datasets: dict[str, Dataset] = {}
        self.val_dataset: Dataset | None = None
        self.test_dataset: Dataset | None = None
        self._built = False
        self._streams: dict[str, RandomStream] = {}
        self._saved_streams: dict[str, Any] = {}
        self._augmentation_seeds: dict[str, int] = {}
        self._shared_seed: int | None = None  # an unseeded multi-process run's shuffles

    def _loader_configs(self) -> list[DictConfig]:
        configs = list((self.data.get("train") or {}).values())
        return configs + [c for c in (self.data.get("val"), self.data.get("test")) if c]

    def prepare_data(self) -> None:
        """Builds any missing built-in data set (e.g. digits) the loaders read inside the working
        directory, once (`build_on_first_use`)."""
        for config in self._loader_configs():
            root = dataset_root(config.dataset, self.data_root)
            if isinstance(root, Path):
                build_on_first_use(root)

    def _build_dataset(
        self, name: str, config: DictConfig, classes: list[str] | None = None, decoded: bool = True
    ) -> Dataset:
        """A loader's data set; with `classes` (the training set's), numbered by them. Not
        `decoded`, only its files and classes are listed (no file is decoded into memory)."""
        options = OmegaConf.to_container(config.dataset, resolve=True)
        if "name" not in options:
            evaluation = name in ("val", "test")
            path = f"data.{name}.dataset" if evaluation else f"data.train.{name}.dataset"
            # The methods' unlabeled loaders read `dataset: ${data.unlabeled}`; a key set under
            # such a loader replaces that interpolation with a node of this one key.
            pool = options and not evaluation and name != "supervised" and self.data.get("unlabeled") is not None
            hint = f"; to change the unlabeled pool, set data.unlabeled.{next(iter(options))}" if pool else ""
            raise SesemiError(f"{path} names no data set (`name`, e.g. image_folder){hint}")
        options["root"] = str(dataset_root(options, self.data_root))
        subset = options.get("subset")
        if name == "val" and isinstance(subset, str) and not (Path(options["root"]) / subset).exists():
            missing = Path(options["root"]) / subset
            if other := split_named_otherwise(missing):
                raise SesemiError(
                    f"no validation data: {missing} does not exist, but {other}/ does: "
                    f"set data.val.dataset.subset={other}, or rename it {subset}/"
                )
            raise SesemiError(
                f"no validation data: {missing} does not exist; put labeled files in it (<class>/<file>), "
                "or validate on the training data with data.val.dataset.subset=train (which says little about new data)"
            )
        options["image_transform"] = self._transform(name, config)
        builder = DATASETS.get(options["name"]) if options["name"] in DATASETS else None
        parameters = inspect.signature(builder).parameters if builder is not None else {}
        if not decoded and "cache" in parameters:
            options["cache"] = "none"
        if "bit_depth" in options:  # one for the run: its inference and export read by it too
            raise SesemiError(f"loader {name!r} sets dataset.bit_depth; set data.bit_depth instead, for every data set")
        if self.data.get("bit_depth") is not None and builder is not None:
            if "bit_depth" not in parameters:
                raise SesemiError(
                    f"data.bit_depth is set, but loader {name!r} reads data set {options['name']!r}, which takes "
                    "no bit depth (it is for images of more than 8 bits); remove data.bit_depth"
                )
            options["bit_depth"] = self.data.bit_depth
        if classes is None:
            return dataset(**options)
        if options.get("classes") not in (None, classes):
            raise SesemiError(
                f"loader {name!r} sets dataset.classes; remove it: {name} is numbered by the training set's classes"
            )
        if "classes" in parameters:
            options["classes"] = classes
        data = dataset(**options)
        own = getattr(data, "classes", None)
        if own and list(own) != classes:
            raise SesemiError(
                f"the {name} data set's classes ({', '.join(own)}) are not the training set's "
                f"({', '.join(classes)}); its labels would be scored against the wrong classes: give it "
                "the same classes"
            )
        return data

    def _transform(self, name: str, config: DictConfig) -> Any:
        """The transform of a loader's items: its `dataset.image_transform`, or its `views`."""
        views, transform = config.get("views"), config.dataset.get("image_transform")
        if not views:
            return _instantiate_transform(name, "dataset.image_transform", transform)
        defined = self.data.get("views") or {}
        available = ", ".join(sorted(defined)) or "none"
        if transform:
            raise SesemiError(
                f"loader {name!r} sets both views and dataset.image_transform; keep one (data.views has: {available})"
            )
        for view in views:
            if view not in defined:
                raise SesemiError(f"loader {name!r} reads view {view!r}, which data.views lacks (it has: {available})")
        transforms = [_instantiate_transform(name, f"data.views.{view}", defined[view]) for view in views]
        return transforms[0] if len(transforms) == 1 else MultiView(transforms)

    def setup(self, stage: str | None = None) -> None:
        """Builds the data sets a stage reads (all of them without one): to fit, the training
        sets and val; to evaluate ("validate" or "test"), the labeled training set, whose classes
        number the evaluated set, and that set. An unlabeled pool is read only to fit, a test set
        only to test."""
        if self._built:
            return
        train = self.data.get("train") or {}
        evaluating = stage in ("validate", "test")
        if evaluating:  # of the labeled set only its classes are needed: none of its files is decoded
            train = {name: config for name, config in train.items() if name == "supervised"}
        self.train_datasets = {
            name: self._build_dataset(name, config, decoded=not evaluating) for name, config in train.items()
        }
        labeled = self.train_datasets.get("supervised")
        if isinstance(labeled, ImageDataset) and not evaluating:
            labeled.warn_if_views_are_small()
            labeled.warn_if_dark()
        if isinstance(labeled, FileDataset) and not evaluating:
            logger.info(labeled_summary(labeled))
        # Val and test are scored by the model's class indices: the training set's.
        classes = getattr(labeled, "classes", None) or None
        if classes is not None and len(classes) == 1 and not evaluating:
            raise SesemiError(printable(
                f"the labeled set has one class ({classes[0]}): a classifier needs at least two; "
                "add a folder of each other class beside it (docs/data.md)"
            ))
        if self.data.get("val") and stage != "test":
            self.val_dataset = self._build_dataset("val", self.data.val, classes)
            if not evaluating and self._rank == 0:  # it reads files: once, where warnings are shown
                for warning in validation_leaks(self.train_datasets, self.val_dataset):
                    logger.warning(warning)
        if self.data.get("test") and stage in (None, "test"):
            self.test_dataset = self._build_dataset("test", self.data.test, classes)
        self._built = True

    @property
    def _rank(self) -> int:
        """This process's rank (0 outside a trainer)."""
        return self.trainer.global_rank if self.trainer is not None else 0

    def batch_size(self, name: str, config: DictConfig) -> int | None:
        """A loader's batch size (`loader_batch_size`); None only with a batch sampler."""
        batch_size = loader_batch_size(name, config, self.default_batch_size)
        if batch_size is None and not config.get("batch_sampler"):
            raise SesemiError(f"loader {name!r} has no batch size: set its batch_size or run.batch_size_per_gpu")
        return batch_size

    def _processes_seed(self) -> int:
        """A seed the processes of a run without `run.seed` share: the first one's draw, sent to
        the others (every process builds its loaders at once)."""
        if self._shared_seed is None:
            self._shared_seed = int(self.trainer.strategy.broadcast(int(torch.randint(2**31, ()))))
        return self._shared_seed

    @property
    def _on_gpu(self) -> bool:
        return self.trainer is not None and isinstance(self.trainer.accelerator, CUDAAccelerator)

    def _loader(self, name: str, config: DictConfig, data: Dataset, train: bool = False) -> DataLoader:
        """A loader of `data` as `config` sets it; on several processes, of this process's share
        (Lightning's own splitting is off: it replaced the sampler of a batch sampler, so
        `PassByPassBatchSampler` read the whole data set in order, neither shuffled nor repeated)."""
        batch_size = self.batch_size(name, config)
        kwargs = {k: config[k] for k in LOADER_ARGUMENTS if k in config}
        world_size = self.trainer.world_size if self.trainer is not None else 1
        devices = self.trainer.num_devices if self.trainer is not None else 1
        kwargs["num_workers"] = worker_count(name, kwargs.get("num_workers", 0), devices)
        kwargs["pin_memory"] = pins_memory(name, kwargs.get("pin_memory", False), self._on_gpu)
        seed = stream_seed(self.seed, name) if train and self.seed is not None else None
        if train and kwargs.get("shuffle") and not (config.get("sampler") or config.get("batch_sampler")):
            # A few labeled images still fill a batch on every process; all of them split one shuffle.
            shuffled = seed if seed is not None or world_size == 1 else stream_seed(self._processes_seed(), name)
            kwargs["sampler"] = RepeatingRandomSampler(data, batch_size * world_size, shuffled)
            kwargs["shuffle"] = False
        if kwargs["num_workers"] == 0:
            kwargs.pop("persistent_workers", None)
            kwargs.pop("prefetch_factor", None)
        else:
            seeded = bool(int(os.environ.get("PL_SEED_WORKERS", 0)))  # seed_everything(workers=True)
            kwargs["worker_init_fn"] = partial(init_worker, rank=self._rank, seed=seeded)
            if self.trainer is not None and self.trainer.world_size > 1:
                # A process of a multi-process run has threads of its own (the collectives'), and
                # forking it while one of them holds an interpreter lock can leave the new worker
                # waiting on that lock for ever; a fork server is a process without such threads.
                kwargs["multiprocessing_context"] = fork_server()
        if isinstance(data, IterableDataset):
            return self._stream_loader(name, config, data, batch_size, kwargs, seed)
        if config.get("sampler"):
            kwargs["sampler"] = instantiate(config.sampler, data)
        if config.get("batch_sampler"):
            # each process draws other batches from its own share of the data
            rank_seed = stream_seed(seed, self._rank) if seed is not None else None
            items = share(data, None, world_size, self._rank, train) if world_size > 1 else None
            kwargs["batch_sampler"] = _batch_sampler(config.batch_sampler, data, batch_size, rank_seed, items)
        elif world_size > 1:
            if kwargs.get("sampler") is None:
                kwargs.pop("shuffle", None)
            kwargs["sampler"] = share(data, kwargs.get("sampler"), world_size, self._rank, train)
        if config.get("collate_fn"):
            kwargs["collate_fn"] = instantiate(config.collate_fn)
        if "batch_sampler" in kwargs:
            kwargs.pop("shuffle", None)
            kwargs.pop("drop_last", None)
        else:
            kwargs["batch_size"] = batch_size
        if seed is not None:
            data = self._own_random_streams(name, data, kwargs, seed)
        elif not train:  # each pass draws a base seed: from the global generator, every validation
            kwargs["generator"] = torch.Generator().manual_seed(0)  # would move dropout's numbers
            if isinstance(data, FileDataset):  # an unreadable file is left out, not counted as another
                data.substitute = False
                kwargs["collate_fn"] = ReadableOnly(kwargs.get("collate_fn") or default_collate)
        loader = DataLoader(data, **kwargs)
        if len(loader) == 0:
            raise SesemiError(
                f"loader {name!r} yields no batches: {len(data)} items, batch_size {batch_size} "
                "and drop_last; lower the batch size or add data"
            )
        return loader

    def _stream_loader(
        self,
        name: str,
        config: DictConfig,
        data: IterableDataset,
        batch_size: int | None,
        kwargs: dict[str, Any],
        seed: int | None,
    ) -> DataLoader:
        """The loader of a streamed data set (`shards`): the data set shuffles its items and splits
        them between processes itself, in whole batches of the loader's size, from the rank, the
        epoch and (unless it has its own) the seed that this process gives it."""
        if batch_size is None or config.get("sampler") or config.get("batch_sampler"):
            raise SesemiError(f"loader {name!r} streams its data set: give it a batch_size or mu, and no sampler")
        data.batch_size = batch_size
        data.rank, data.world_size = self._rank, self.trainer.world_size if self.trainer is not None else 1
        if data.seed is None:
            data.seed = seed
        for option in ("shuffle", "sampler", "drop_last"):
            kwargs.pop(option, None)
        if config.get("collate_fn"):
            kwargs["collate_fn"] = instantiate(config.collate_fn)
        epoch = self.trainer.current_epoch if self.trainer is not None else 0  # a resumed run's
        return StreamLoader(data, batch_size=batch_size, epoch=epoch, **kwargs)

    def _own_random_streams(self, name: str, data: Dataset, kwargs: dict[str, Any], seed: int) -> Dataset:
        """Gives a training loader's augmentations random numbers of its own (see sesemi/streams.py).

        Each batch is augmented with a seed of its own (from the loader's batch sampler, see
        `kept_busy`), in whichever process makes it. Without such seeds (a loader with a batch
        sampler of its own), worker processes are seeded from the loader's generator (Lightning
        adds the process rank), and main-process loading switches to the loader's stream, one
        per process, for each batch.
        """
        kwargs["generator"] = torch.Generator().manual_seed(stream_seed(seed, "workers"))
        self._augmentation_seeds[name] = stream_seed(seed, "batches", self._rank)
        stream = None
        if kwargs["num_workers"] == 0:
            stream = RandomStream(stream_seed(seed, "augmentations", self._rank))
            if name in self._saved_streams:
                stream.state = self._saved_streams.pop(name)
            self._streams[name] = stream
        if "collate_fn" in kwargs:
            kwargs["collate_fn"] = StreamedCollate(kwargs["collate_fn"], stream)
        return StreamedDataset(data, stream)

    def train_dataloader(self) -> dict[str, DataLoader]:
        if not self.train_datasets:
            raise SesemiError("data.train defines no training loaders")
        loaders = {
            name: self._loader(name, self.data.train[name], data, train=True)
            for name, data in self.train_datasets.items()
        }
        longest = max(len(loader) for loader in loaders.values())
        skip = self._batches_done(longest)
        return {
            name: kept_busy(loader, longest, skip, self._augmentation_seeds.get(name)) for name, loader in loaders.items()
        }

    def _batches_done(self, epoch_length: int) -> int:
        """The batches a resumed run already took of its current epoch (0 for a new epoch)."""
        if self.trainer is None:
            return 0
        done = self.trainer.fit_loop.epoch_loop.batch_progress.current.completed
        return done if 0 < done < epoch_length else 0

    def state_dict(self) -> dict[str, Any]:
        """The training loaders' augmentation streams, saved in checkpoints so that a resumed run
        augments the rest of its batches as an unbroken one would; and the class names, so that
        a run fine-tuned from the checkpoint knows what its classification head means."""
        return {"streams": {name: stream.state for name, stream in self._streams.items()}, "classes": self.classes}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._saved_streams = dict(state.get("streams", {}))

    def val_dataloader(self) -> DataLoader | list:
        if self.val_dataset is None:
            return []
        return self._loader("val", self.data.val, self.val_dataset)

    def test_dataloader(self) -> DataLoader:
        if self.test_dataset is None:
            raise SesemiError("run.mode=TEST needs a data.test loader")
        return self._loader("test", self.data.test, self.test_dataset)

    def iterations_per_epoch(self, world_size: int = 1) -> int | None:
        """Training iterations in one epoch, of each of `world_size` processes: the length of the
        longest training loader, worked out from the data set sizes and batch sizes."""
        lengths = [
            self._epoch_length(name, self.data.train[name], data, world_size)
            for name, data in self.train_datasets.items()
        ]
        return max(lengths) if lengths else None

    def _epoch_length(self, name: str, config: DictConfig, data: Dataset, world_size: int) -> int:
        batch_size = self.batch_size(name, config)
        if isinstance(data, IterableDataset):  # a stream: `size` items an epoch, over all processes
            return math.ceil(math.ceil(data.size / world_size) / batch_size)
        if config.get("batch_sampler"):  # only the sampler knows how many batches it makes
            items = share(data, None, world_size, 0, True) if world_size > 1 else None
            return len(_batch_sampler(config.batch_sampler, data, batch_size, sampler=items))
        if config.get("sampler"):
            samples = len(instantiate(config.sampler, data))
        elif config.get("shuffle"):
            samples = max(len(data), batch_size * world_size)  # RepeatingRandomSampler's
        else:
            samples = len(data)
        per_process = math.ceil(samples / world_size)  # Lightning's distributed sampler
        return per_process // batch_size if config.get("drop_last") else math.ceil(per_process / batch_size)

    def example_input(self) -> torch.Tensor | None:
        """The first validation input as a batch of one, from which Lightning's model summary
        counts FLOPs and layer sizes; None without a validation set of tensors to index."""
        data = self.val_dataset
        if data is None or isinstance(data, IterableDataset):
            return None
        try:
            with isolate_rng(include_cuda=False):  # a random transform draws what training would have
                item = data[0]
        except SesemiError:  # no file can be read: training says so
            return None
        if isinstance(item, (tuple, list)) and isinstance(item[0], torch.Tensor):
            return item[0].unsqueeze(0)
        return None

    @property
    def classes(self) -> list[str] | None:
        """The class names of the supervised training set (else of the val/test set)."""
        for data in (self.train_datasets.get("supervised"), self.val_dataset, self.test_dataset):
            classes = getattr(data, "classes", None)
            if classes:
                return list(classes)
        return None

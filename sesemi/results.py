"""What a run did, as its `results.json` records it: `RunResult`.

Light on purpose (no torch): the commands that read run folders (`postprocess`, `rm-states`,
`group`) import it without the training stack.
"""

from __future__ import annotations

import dataclasses
import errno
import json
import os
import stat
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from sesemi.errors import SesemiError

RESULTS = "results.json"
CHECKPOINT_FIELDS = ("best_checkpoint", "last_checkpoint")


@dataclass(frozen=True)
class RunResult:
    """What a run did: its folder, final metrics and checkpoints (`results.json`).

    Attributes:
        run_dir: The run's folder.
        mode: FIT, VALIDATE or TEST.
        metrics: The final metrics of the evaluated stage, e.g. `{"val/top1": 0.99, ...}`.
        classes: The class names, in the model's output order.
        per_class_top1: The top-1 accuracy of each class, in `classes` order; None for a
            class the evaluation set has no examples of.
        global_step: Training steps taken.
        epoch: Training epochs begun.
        wall_time_s: Seconds from the start of training (or evaluation) to its end.
        best_checkpoint: The checkpoint with the best val/top1 (training runs).
        best_score: Its val/top1.
        last_checkpoint: The checkpoint of the final weights (training runs).
        unlabeled: What the pseudo-labeling head did with the last `seen` unlabeled inputs of
            training: `pseudo_labeled_per_class` (the share pseudo-labeled with each class, by
            class name), `out_of_class` (the share judged out of class; None unless the head
            judges, as `method=iomatch` and the outlier filter do), `predicted_per_class` (the
            share the model predicted as each class, before distribution alignment evens them
            out), `estimated_pool_prior` (the pool's class prior as the head estimated it, with
            `pool_prior`) and `seen`. None for methods without pseudo-labels, and in older files.
    """

    run_dir: Path
    mode: str
    metrics: dict[str, float] = field(default_factory=dict)
    classes: list[str] | None = None
    per_class_top1: list[float | None] | None = None
    global_step: int = 0
    epoch: int = 0
    wall_time_s: float = 0.0
    best_checkpoint: Path | None = None
    best_score: float | None = None
    last_checkpoint: Path | None = None
    unlabeled: dict[str, Any] | None = None

    @property
    def checkpoint(self) -> Path | None:
        """The checkpoint to predict with: the best one, else the last one."""
        return self.best_checkpoint or self.last_checkpoint

    def to_json(self) -> str:
        """`results.json`: checkpoints relative to the run folder, so a moved folder still reads."""
        values = dataclasses.asdict(self)
        for key in CHECKPOINT_FIELDS:
            if values[key] is not None:
                values[key] = os.path.relpath(values[key], self.run_dir)
        values["run_dir"] = str(self.run_dir)
        return json.dumps(values, indent=2) + "\n"

    @classmethod
    def read(cls, run_dir: str | Path) -> RunResult:
        """The result a finished run wrote to its folder (also the layout of earlier releases)."""
        path = Path(run_dir) / RESULTS
        try:
            values = json.loads(read_regular(path))
        except FileNotFoundError:
            raise SesemiError(f"{run_dir} has no {RESULTS}: the run has not finished, or is not a run folder") from None
        except NotRegularFile:
            raise SesemiError(f"cannot read {path}: it is not a regular file (a pipe, a device or a folder)") from None
        except (OSError, ValueError, RecursionError) as error:  # RecursionError: nested too deep
            raise SesemiError(f"cannot read {path} ({error}); the file is damaged") from None
        if not isinstance(values, dict) or "mode" not in values:
            raise SesemiError(f"cannot read {path}: it holds no result (an object with a mode); the file is damaged")
        best = values.pop("best", None)  # written by releases before 1.0
        if isinstance(best, dict):
            values.setdefault("best_checkpoint", best.get("checkpoint"))
            values.setdefault("best_score", best.get("val/top1"))
        values = {k: v for k, v in values.items() if k in FIELDS}
        nullable = {f.name for f in dataclasses.fields(cls) if f.default is None}
        for key, value in values.items():
            if not (value is None and key in nullable or FIELDS[key][1](value)):
                raise SesemiError(f"cannot read {path}: its {key} is not {FIELDS[key][0]}; the file is damaged")
        values["run_dir"] = Path(run_dir)
        for key in CHECKPOINT_FIELDS:
            if values.get(key):
                values[key] = _in_run(Path(run_dir), Path(values[key]))
        return cls(**values)

    @classmethod
    def read_if_whole(cls, run_dir: str | Path) -> RunResult | None:
        """What `read` returns, or None for a run without results or with damaged ones (one that
        did not finish, to the commands that list, tidy and resume runs)."""
        try:
            return cls.read(run_dir)
        except SesemiError:
            return None


def _number(value: Any) -> bool:
    """A number a float holds (infinity and NaN too: a diverged loss), not a bool or 10**400."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    try:
        float(value)
    except OverflowError:
        return False
    return True


def _shares(value: Any) -> bool:
    """A mapping of names to numbers, e.g. `metrics` or a share per class."""
    return isinstance(value, dict) and all(_number(v) for v in value.values())


def _pool(value: Any) -> bool:
    """`RunResult.unlabeled`: shares by class name and numbers, each also null."""
    shares = ("pseudo_labeled_per_class", "predicted_per_class", "estimated_pool_prior")
    numbers = ("out_of_class", "seen")
    return (
        isinstance(value, dict)
        and all(value.get(key) is None or _shares(value[key]) for key in shares)
        and all(value.get(key) is None or _number(value[key]) for key in numbers)
    )


# What each field of `results.json` holds (null too where `RunResult`'s default is None): a file
# from anyone whose values are of other types is damaged, not a traceback where they are used.
FIELDS: dict[str, tuple[str, Callable[[Any], bool]]] = {
    "mode": ("text", lambda value: isinstance(value, str)),
    "metrics": ("a mapping of names to numbers", _shares),
    "classes": ("a list of names", lambda value: isinstance(value, list) and all(isinstance(v, str) for v in value)),
    "per_class_top1": ("a list of numbers", lambda value: isinstance(value, list) and all(v is None or _number(v) for v in value)),
    "global_step": ("an integer", lambda value: isinstance(value, int)),
    "epoch": ("an integer", lambda value: isinstance(value, int)),
    "wall_time_s": ("a number", _number),
    "best_checkpoint": ("a path", lambda value: isinstance(value, str)),
    "best_score": ("a number", _number),
    "last_checkpoint": ("a path", lambda value: isinstance(value, str)),
    "unlabeled": ("a mapping of the pool's statistics", _pool),
}


class NotRegularFile(OSError):
    """A FIFO, a device or a folder where a file was expected: reading one may block forever."""


def read_regular(path: str | Path) -> str:
    """The text (UTF-8) of a regular file, or of the regular file a symlink leads to.

    Raises:
        NotRegularFile: `path` is a FIFO, a device or a folder (checked on the open file, so
            nothing swapped in meanwhile is read either).
        OSError: `path` is missing or unreadable.
    """
    if not stat.S_ISREG(os.stat(path).st_mode):
        raise NotRegularFile(errno.EINVAL, "not a regular file", str(path))
    # O_NONBLOCK: opening a FIFO put there since the check returns at once instead of waiting
    handle = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0))  # POSIX only
    with os.fdopen(handle, encoding="utf-8") as file:
        if not stat.S_ISREG(os.fstat(handle).st_mode):
            raise NotRegularFile(errno.EINVAL, "not a regular file", str(path))
        return file.read()


STORED_YAML_BYTES = 10 * 2**20  # a run's config.yaml is a few kB
STORED_YAML_DEPTH = 100  # and about 10 levels deep
EVENTS_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml's: 20x faster than PyYAML's own


def read_stored_yaml(path: str | Path) -> DictConfig:
    """A YAML file sesemi stored (a run's `config.yaml`), read as OmegaConf reads YAML, from a file
    that may come from anyone: a regular file (`read_regular`) of at most `STORED_YAML_BYTES`,
    without aliases (a kilobyte of nested `*refs` stands for gigabytes; sesemi writes none),
    nested at most `STORED_YAML_DEPTH` deep (PyYAML's parser slows down with depth, quadratically).

    Raises:
        FileNotFoundError: It is missing.
        SesemiError: It is none of these, not UTF-8 or not YAML, or cannot be read.
    """
    try:
        if os.stat(path).st_size > STORED_YAML_BYTES:
            raise SesemiError(f"{path} is larger than a config sesemi stores ({STORED_YAML_BYTES // 2**20} MiB); refusing to read it")
        text = read_regular(path)
    except FileNotFoundError:
        raise
    except OSError as error:  # NotRegularFile too: a FIFO, a device, a folder
        raise SesemiError(f"cannot read {path} ({error.strerror or error})") from None
    except UnicodeDecodeError:
        raise SesemiError(f"{path} is not UTF-8 text, as the configs sesemi stores are; refusing to read it") from None
    try:
        depth = 0
        for event in yaml.parse(text, Loader=EVENTS_LOADER):
            if isinstance(event, yaml.AliasEvent):
                raise SesemiError(f"{path} has YAML aliases (*name), which sesemi never writes; refusing to read it")
            depth += isinstance(event, yaml.CollectionStartEvent) - isinstance(event, yaml.CollectionEndEvent)
            if depth > STORED_YAML_DEPTH:
                raise SesemiError(f"{path} is nested deeper than any config sesemi stores; refusing to read it")
        config = OmegaConf.create(text)  # OmegaConf's YAML: `1e-3` is a number, duplicate keys an error
    except (yaml.YAMLError, OmegaConfBaseException, ValueError) as error:  # ValueError: an integer of 5000 digits
        raise SesemiError(f"{path} is not valid YAML ({' '.join(str(error).split())[:160]})") from None
    if not isinstance(config, DictConfig):
        raise SesemiError(f"{path} holds no mapping of config keys; is it a config sesemi stored?")
    return config


# When a pool looks very unlike the labeled classes (docs/uncurated_pools.md): most of it judged
# out of class, or the model's predictions on it this far (total variation) from the labels'
# class shares (0.30 on a pool with imbalance ratio 10, 0.44 with 50; near 0 on a balanced one).
MOSTLY_OUT_OF_CLASS = 0.5
FAR_FROM_LABELS = 0.25


def pool_warnings(unlabeled: dict[str, Any] | None, labeled: dict[str, int], val_top1: float | None = None) -> list[str]:
    """Warnings for a run whose unlabeled pool looks very unlike its labeled classes.

    Args:
        unlabeled: `RunResult.unlabeled`.
        labeled: The number of labeled examples of each class.
        val_top1: The model's validation accuracy, if validated: a model not clearly above
            chance (a quarter of the way from chance to 1) has nothing to say about the pool.
    """
    chance = 1 / max(len(labeled), 1)
    if not unlabeled or (val_top1 is not None and val_top1 < chance + 0.25 * (1 - chance)):
        return []
    found = []
    out_of_class = unlabeled.get("out_of_class")
    if out_of_class is not None and out_of_class > MOSTLY_OUT_OF_CLASS:
        found.append(
            f"{100 * out_of_class:.0f}% of the unlabeled pool looked out of class: it may hold other "
            "classes than the labeled ones (see docs/uncurated_pools.md)"
        )
    # the model's own predictions when recorded: distribution alignment evens out the pseudo-labels
    shares = unlabeled.get("predicted_per_class") or unlabeled.get("pseudo_labeled_per_class") or {}
    pseudo, total = sum(shares.values()), sum(labeled.values())
    if pseudo > 0 and total > 0:
        distance = 0.5 * sum(abs(shares.get(c, 0.0) / pseudo - labeled.get(c, 0) / total) for c in {*shares, *labeled})
        if distance > FAR_FROM_LABELS:
            common = max(shares, key=shares.get)
            found.append(
                f"the model's predictions on the unlabeled pool are far from the labeled classes' shares (total "
                f"variation {distance:.2f}; {100 * shares[common] / pseudo:.0f}% are {common!r}): the pool may be "
                "skewed or hold other classes (see docs/uncurated_pools.md)"
            )
    return found


def _in_run(run_dir: Path, path: Path) -> Path:
    """A checkpoint path from results.json, in the run folder where it is now (earlier releases
    recorded it as the run saw it, e.g. `runs/digits/<time>/checkpoints/best.ckpt`)."""
    if path.parent.name == "checkpoints":
        return run_dir / "checkpoints" / path.name
    return path if path.is_absolute() else run_dir / path

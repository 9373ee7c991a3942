"""`TrainingRun`: train and evaluate a classifier on data held in Python, e.g. in a notebook.

    import pandas as pd, sesemi
    run = sesemi.training_run(task="image", name="pets", label_names=["cat", "dog"])
    run.train(pd.DataFrame({"path": [...], "label": [...]}), unlabeled=[...], eval=eval_frame,
              method="fixmatch", overrides=["run.num_iterations=2000"])
    run = sesemi.training_run(load="runs/pets")     # later, in another process
    run.predict(["a.jpg", "b.jpg"])                 # [Prediction(label="cat", score=0.9, ...), ...]
    run.evaluate(eval_frame)                        # {"val/top1": ..., "val/loss": ...}

The data are linked (or copied) into the standard layout under `<dir>/<name>/data/`, which
the built-in `image` (or `audio`) config trains on into `<dir>/<name>/<timestamp>/`, a run
folder like any other. `<dir>/<name>/` and its `data/` carry sesemi's marker: a training run
writes into no folder of someone else's and replaces only the data links it made.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import unicodedata
from collections.abc import Iterable, Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sesemi.errors import SesemiError
from sesemi.ownership import MARKER, claim, staged, write_atomically
from sesemi.results import RunResult

if TYPE_CHECKING:
    from sesemi.predictor import Prediction, Predictor

TASKS = ("image", "audio")
RUN_FILE = "training_run.json"
DATA, EVALUATIONS = "data", "evaluate"

Examples = Any  # a pandas DataFrame with `path` and `label` columns, or a sequence of (path, label)


NAME_MAX = 255  # bytes in a file or folder name, on most file systems


def _folder_name(value: str, what: str) -> str:
    """`value` in Unicode's composed form (NFC, as class folders are matched: docs/data.md),
    refused in one line when it cannot be a folder name the data sets read."""
    from sesemi.datasets.images import is_hidden

    value = unicodedata.normalize("NFC", str(value))
    shown = repr(value[:60] + ("..." if len(value) > 60 else ""))
    try:
        size = len(os.fsencode(value))
    except UnicodeEncodeError:  # a lone surrogate no file system takes
        size = -1
    if not value or value.startswith(".") or any(c in value for c in "/\\\0") or size < 0:
        raise SesemiError(f"{what} {shown} cannot be a folder name; use letters, digits, - and _")
    _refuse_reference(value, f"{what} {shown}")
    if is_hidden(value):  # __MACOSX
        raise SesemiError(f"{what} {shown} is a folder name the data sets skip as hidden; choose another")
    if size > NAME_MAX:
        raise SesemiError(f"{what} {shown} is {size} bytes long; a folder name holds at most {NAME_MAX}")
    return value


def _refuse_reference(text: str, what: str) -> None:
    """Refuses `${` in a value the runs' config holds: once resolved, the config would read it as
    a reference to another value (OmegaConf turns an escaped `\\${` back into one)."""
    if "${" in text:
        raise SesemiError(f"{what} holds ${{, which configs read as a reference to another value; choose another")


def _paths(files: Any, task: str) -> list[str]:
    """Paths from a folder (the task's files in it, at any depth), a list, a Series, or a
    DataFrame with a `path` column."""
    if isinstance(files, str | os.PathLike):
        from sesemi.datasets.images import is_image_file, list_files
        from sesemi.transforms.audio import is_audio_file

        if not Path(files).is_dir():
            raise SesemiError(f"unlabeled {files} is not a folder; give a folder, or a list of paths")
        return list_files(files, is_audio_file if task == "audio" else is_image_file)
    if hasattr(files, "columns"):
        if "path" not in files.columns:
            raise SesemiError("unlabeled needs a path column")
        files = files["path"]
    return [str(path) for path in files]


def _require_files(paths: Iterable[str], what: str, task: str) -> None:
    """Refuses files that do not exist, or whose extension the task's data sets do not read
    (they would be linked, then left out of the data set)."""
    from sesemi.datasets.images import IMAGE_EXTENSIONS, is_image_file
    from sesemi.transforms.audio import AUDIO_EXTENSIONS, is_audio_file

    paths = list(paths)
    folders = [path for path in paths if os.path.isdir(path)]
    if folders:
        raise SesemiError(f"{len(folders)} {what} paths are folders, e.g. {folders[0]}; give the files in them")
    missing = [path for path in paths if not os.path.isfile(path)]
    if missing:
        raise SesemiError(f"{len(missing)} {what} files do not exist, e.g. {missing[0]}")
    accepts, extensions = (is_audio_file, AUDIO_EXTENSIONS) if task == "audio" else (is_image_file, IMAGE_EXTENSIONS)
    unread = [path for path in paths if not accepts(path)]
    if unread:
        raise SesemiError(
            f"{len(unread)} {what} files are not {task} files sesemi reads, e.g. {unread[0]}; "
            f"it reads {' '.join(extensions)} (convert the others)"
        )


def _quote(text: str | Path) -> str:
    """`text` (a path may hold `=`, `,`, spaces or letters beyond ASCII; never `${`, refused
    above) as a quoted Hydra override value, read back as written: Hydra unescapes only the
    backslashes before a quote or the end."""
    return "'" + re.sub(r"(\\+)(?='|$)", r"\1\1", str(text)).replace("'", "\\'") + "'"


def _listed(names: Sequence[str]) -> str:
    """Names as a Hydra override list of quoted strings (so that `1` and `null` stay strings)."""
    return "[" + ",".join(map(_quote, names)) + "]"


def _timestamped(parent: Path) -> Path:
    """A new folder `<parent>/<timestamp>`, the timestamp as `open_sesemi` names runs."""
    from sesemi.config.resolvers import TIMESTAMP

    stem = datetime.now().strftime(TIMESTAMP)
    folder, number = parent / stem, 1
    while folder.exists():
        folder, number = parent / f"{stem}_{number}", number + 1
    return folder


def _link_name(index: int, path: str) -> str:
    """`<index>_<file name>`, its stem cut so that the name fits in `NAME_MAX` bytes."""
    name = Path(path).name
    suffix = os.fsencode(Path(name).suffix)
    stem = os.fsencode(f"{index:06d}_{Path(name).stem}")[: NAME_MAX - len(suffix)]
    return os.fsdecode(stem + suffix)


def _link(files: Sequence[str], folder: Path) -> None:
    """Links each file into `folder`, numbered so that equal names do not collide."""
    folder.mkdir(parents=True, exist_ok=True)
    for index, path in enumerate(files):
        target = folder / _link_name(index, path)
        try:
            target.symlink_to(os.path.abspath(path))
        except OSError:  # no symlinks on this file system
            shutil.copy2(path, target)


class TrainingRun:
    """A classifier of `label_names` with its data, runs and checkpoints in `<dir>/<name>/`,
    trained by the built-in data config `task`: "image" or "audio".

    The model's classes are `label_names` in their order, in Unicode's composed form (NFC, as
    class folders are matched): `label_names` holds them so, and labels match either form."""

    def __init__(self, task: str, name: str, label_names: Sequence[str], dir: str | Path = "runs"):
        if task not in TASKS:
            raise SesemiError(f"task must be one of {', '.join(TASKS)}, not {task!r}")
        self.task = task
        self.name = _folder_name(name, "the run name")
        if isinstance(label_names, str):
            raise SesemiError(f"label_names is a list of class names, e.g. {[label_names]!r}, not one string")
        self.label_names = [_folder_name(label, "the label") for label in label_names]
        if not self.label_names or len(set(self.label_names)) != len(self.label_names):
            raise SesemiError("label_names must list each class once")
        self.folder = Path(dir).absolute() / self.name
        _refuse_reference(str(self.folder), f"dir {str(dir)!r}")
        self.method: str | None = None
        self.overrides: list[str] = []
        self._predictor: Predictor | None = None  # the trained model, loaded on the first predict()

    @classmethod
    def load(cls, path: str | Path) -> TrainingRun:
        """The training run saved in `path` (a `<dir>/<name>` folder)."""
        info_path = Path(path) / RUN_FILE
        if not info_path.is_file():
            raise SesemiError(f"{path} is not a training run folder (it has no {RUN_FILE})")
        info = json.loads(info_path.read_text())
        run = cls(info["task"], info["name"], info["label_names"], Path(path).absolute().parent)
        from sesemi.config import catalog
        from sesemi.trust import check_saved_overrides

        if info["method"] not in catalog.methods():
            raise SesemiError(f"{info_path} names no method of sesemi's ({str(info['method'])[:80]!r})")
        check_saved_overrides(info["overrides"], source=str(info_path))  # a file's: it may come from anyone
        run.method, run.overrides = info["method"], list(info["overrides"])
        return run

    def __repr__(self) -> str:
        trained, folder = self.run_dir is not None, str(self.folder)
        return f"TrainingRun(task={self.task!r}, name={self.name!r}, {folder=}, {trained=})"

    def _latest(self) -> RunResult | None:
        from sesemi.ops.runs import find_runs

        runs = find_runs(self.folder, follow_links=False) if self.folder.is_dir() else []
        # its own `<folder>/<timestamp>`: not a run that `sesemi.run` nested in it (`runs/NAME/METHOD/...`)
        mine = [run for run in runs if run.path.parent == self.folder]
        return next((run.result for run in reversed(mine) if run.trained), None)

    @property
    def run_dir(self) -> Path | None:
        """The folder of the latest finished training, or None before one."""
        latest = self._latest()
        return latest.run_dir if latest is not None else None

    @property
    def result(self) -> RunResult:
        """What the latest finished training did: metrics, checkpoints, ..."""
        latest = self._latest()
        if latest is None:
            raise SesemiError(f"{self.name} has not been trained yet; call train() first")
        return latest

    @property
    def checkpoint(self) -> Path:
        """The best checkpoint of the latest training (the last one when nothing was validated)."""
        path = self.result.checkpoint
        if path is None or not path.is_file():
            raise SesemiError(f"the run {self.run_dir} has no checkpoint left (removed by rm-states --all?)")
        return path

    def _pairs(self, examples: Examples, what: str) -> list[tuple[str, str]]:
        """`(path, label)` pairs from a DataFrame with `path` and `label` columns, or a sequence,
        of files that exist, with labels of `label_names` only (for `train`, every one of them)."""
        if hasattr(examples, "columns"):
            if {"path", "label"} - set(examples.columns):
                raise SesemiError(f"{what} needs the columns path and label; it has: {', '.join(map(str, examples.columns))}")
            examples = zip(examples["path"], examples["label"], strict=True)
        try:
            raw = [(p, label) for p, label in examples]
        except (TypeError, ValueError):
            raise SesemiError(f"{what} must be a DataFrame with path and label columns, or (path, label) pairs") from None
        missing = [p for p, label in raw if label is None or label != label]  # None or NaN
        if missing:
            raise SesemiError(
                f"{what} has {len(missing)} files without a label, e.g. {missing[0]}; pass them as unlabeled=, or drop them"
            )
        pairs = [(str(p), unicodedata.normalize("NFC", str(label))) for p, label in raw]  # as label_names
        first_label: dict[str, tuple[str, str]] = {}  # a file, by any path -> its path and label
        for path, label in pairs:
            seen, given = first_label.setdefault(os.path.realpath(path), (path, label))
            if given != label:
                raise SesemiError(f"{what} labels one file twice, {given} ({seen}) and {label} ({path}); give it one label")
        labels = {label for _, label in pairs}
        unknown = sorted(labels - set(self.label_names))
        if unknown:
            raise SesemiError(f"{what} has labels that are not in label_names: {', '.join(unknown)}")
        absent = [label for label in self.label_names if label not in labels]
        if absent and what == "train":  # the model's classes are the training set's class folders
            raise SesemiError(f"{what} has no examples of {', '.join(absent)}; every class needs at least one")
        _require_files((path for path, _ in pairs), what, self.task)
        return pairs

    def _link_labeled(self, pairs: Sequence[tuple[str, str]], folder: Path) -> None:
        for label in self.label_names:
            files = [path for path, other in pairs if other == label]
            if files:  # validation sets may lack a class: they are numbered by the training set's
                _link(files, folder / label)

    def _run(self, folder: Path, overrides: Sequence[str], classes: Sequence[str]) -> RunResult:
        """Runs the task's data config with the method on the data under `data_root`, into `folder`;
        the model's classes are `classes`, in that order (not the class folders' sorted names)."""
        from sesemi.config.compose import compose
        from sesemi.runner import run

        assert self.method is not None
        config = compose(
            self.task,
            [
                f"method={self.method}",
                f"run.data_root={_quote(self.folder / DATA)}",
                f"run.dir={_quote(self.folder.parent)}",
                f"run.id={_quote(self.name)}",
                f"++data.train.supervised.dataset.classes={_listed(classes)}",
                f"++data.val.dataset.classes={_listed(classes)}",
                *overrides,
            ],
        )
        return run(config, folder)

    def train(
        self,
        train: Examples,
        unlabeled: Any = None,
        eval: Examples | None = None,
        method: str = "flexmatch",
        overrides: Sequence[str] = (),
        overwrite: bool = False,
    ) -> RunResult:
        """Trains a classifier.

        Args:
            train: The labeled examples: a DataFrame with `path` and `label` columns, or
                `(path, label)` pairs. Every class needs at least one.
            unlabeled: Files without labels: a folder of them, a list of paths, or a
                DataFrame with a `path` column.
            eval: Labeled examples to validate on (and choose the best checkpoint by); None
                validates on `train`, which says little about new data.
            method: A method: flexmatch (the `image` and `audio` configs'), fixmatch,
                supervised, ... (`sesemi list method`).
            overrides: Overrides of the `image` (or `audio`) config, e.g. `run.num_iterations=2000`.
            overwrite: Train again although a run of this name has finished (its earlier runs
                are kept beside the new one).

        Returns:
            What the run did: its final metrics, best checkpoint, ...
        """
        if self.folder.exists() and not claim(self.folder, "training_run"):
            raise SesemiError(
                f"{self.folder} exists without sesemi's {MARKER} marker (a TrainingRun did not make it, "
                "or one of a release before markers); choose another name or dir"
            )
        if self.run_dir is not None and not overwrite:
            raise SesemiError(f"{self.folder} holds a finished run; pass overwrite=True to train it again")
        from sesemi.config import catalog
        from sesemi.config.compose import check_overrides

        check_overrides(overrides)
        if any(override.lstrip("+~").partition("=")[0] == "method" for override in overrides):
            raise SesemiError("give the method as method=..., the argument of train(), not in overrides")
        if method not in catalog.methods():
            raise SesemiError(f"no method {method!r}; choose one of: {', '.join(catalog.methods())}")
        pairs = self._pairs(train, "train")
        eval_pairs = self._pairs(eval, "eval") if eval is not None else None
        unlabeled_paths = _paths(unlabeled, self.task) if unlabeled is not None else []
        _require_files(unlabeled_paths, "unlabeled", self.task)
        claim(self.folder, "training_run")
        with staged(self.folder / DATA, "data") as data:  # replaces the links of an earlier call
            self._link_labeled(pairs, data / "train")
            if eval_pairs is not None:
                self._link_labeled(eval_pairs, data / "val")
            if unlabeled_paths:
                _link(unlabeled_paths, data / "unlabeled")
        self.method, self.overrides, self._predictor = method, [*overrides], None
        info = {"task": self.task, "name": self.name, "label_names": self.label_names, "method": method, "overrides": self.overrides}
        write_atomically(self.folder / RUN_FILE, json.dumps(info, indent=2) + "\n")
        validation = [] if eval_pairs is not None else ["data.val.dataset.subset=train"]
        return self._run(_timestamped(self.folder), [*validation, *self.overrides], self.label_names)

    def predict(self, inputs: Any, batch_size: int = 64, tta: bool = False, **options: Any) -> list[Prediction]:
        """Predicts files with the best checkpoint of the latest training, in input order.

        `inputs`, `batch_size`, `tta` and `**options` (embeddings, on_error, ...) are those of
        `sesemi.predictor.Predictor.predict_each`; `probabilities` are in the order of `label_names`
        (the model's classes, `result.classes`).
        """
        from sesemi.predictor import load

        if self._predictor is None:
            self._predictor = load(self.checkpoint)
        return self._predictor.predict(inputs, batch_size=batch_size, tta=tta, **options)

    def evaluate(self, eval: Examples) -> dict[str, float]:
        """The metrics (`val/top1`, `val/loss`, ...) of the best checkpoint on labeled examples.

        Args:
            eval: A DataFrame with `path` and `label` columns, or `(path, label)` pairs; it
                need not have every class.
        """
        checkpoint = self.checkpoint
        if self.method is None:  # made anew on a trained folder: train() saved how it trained there
            saved = TrainingRun.load(self.folder)
            if saved.label_names != self.label_names:
                raise SesemiError(f"{self.folder} was trained on the labels {saved.label_names}, not {self.label_names}")
            self.method, self.overrides = saved.method, saved.overrides
        pairs = self._pairs(eval, "eval")
        from sesemi.run_folder import claim_folder

        if (self.folder / EVALUATIONS).is_symlink():  # its runs are the TrainingRun's, inside its folder
            raise SesemiError(f"will not write into {self.folder / EVALUATIONS}: it is a symbolic link; remove it")
        folder = _timestamped(self.folder / EVALUATIONS)
        claim_folder(folder)  # the run's folder before its data: the evaluation's own
        self._link_labeled(pairs, folder / DATA / "val")
        return self._run(
            folder,
            [
                "run.mode=VALIDATE",
                f"run.pretrained_checkpoint_path={_quote(checkpoint)}",
                *self.overrides,
                f"++data.val.dataset.root={_quote(folder / DATA)}",
                "data.val.dataset.subset=val",
            ],
            self.result.classes or self.label_names,  # the model's: an earlier sesemi sorted them
        ).metrics


def training_run(
    task: str = "image",
    name: str | None = None,
    label_names: Sequence[str] | None = None,
    dir: str | Path = "runs",
    load: str | Path | None = None,
) -> TrainingRun:
    """A new `TrainingRun` (`task`, `name`, `label_names`, `dir`), or the saved one at `load`."""
    if load is not None:
        return TrainingRun.load(load)
    if name is None or label_names is None:
        raise SesemiError("training_run needs a name and label_names (or load=PATH of a saved run)")
    return TrainingRun(task, name, label_names, dir)

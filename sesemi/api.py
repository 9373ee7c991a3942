"""`TrainingRun`: train and evaluate a classifier on data held in Python, e.g. in a notebook.

    import pandas as pd, sesemi
    run = sesemi.training_run(task="image", name="pets", label_names=["cat", "dog"])
    run.train(pd.DataFrame({"path": [...], "label": [...]}), unlabeled=[...], eval=eval_frame,
              method="fixmatch", overrides=["run.num_iterations=2000"])
    run = sesemi.training_run(load="runs/pets")     # later, in another process
    run.predict(["a.jpg", "b.jpg"])                 # [{"cat": 0.9, "dog": 0.1}, ...]
    run.evaluate(eval_frame)                        # {"val/top1": ..., "val/loss": ...}

The data are linked (or copied, where links are not possible) into the standard layout under
`<dir>/<name>/data/` (train/<label>/, unlabeled/, val/<label>/), and training is
`sesemi.cli.train` with a built-in method config: runs go to `<dir>/<name>/<timestamp>/` like
any other, so `sesemi postprocess` and the checkpoints work as usual.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from sesemi.errors import SesemiError

TASKS = ("image", "audio")
RUN_FILE = "training_run.json"
DATA, EVALUATIONS = "data", "evaluate"

Examples = Any  # a pandas DataFrame with `path` and `label` columns, or a sequence of (path, label)


def _folder_name(value: str, what: str) -> str:
    value = str(value)
    if not value or value in (".", "..") or "/" in value or "\\" in value or value.startswith("."):
        raise SesemiError(f"{what} {value!r} cannot be a folder name; use letters, digits, - and _")
    return value


def _pairs(examples: Examples, what: str) -> list[tuple[str, str]]:
    """`(path, label)` pairs from a DataFrame with `path` and `label` columns, or a sequence."""
    if hasattr(examples, "columns"):
        missing = {"path", "label"} - set(examples.columns)
        if missing:
            raise SesemiError(
                f"{what} needs the columns path and label; "
                f"it has: {', '.join(map(str, examples.columns))}"
            )
        return [
            (str(p), str(label))
            for p, label in zip(examples["path"], examples["label"], strict=True)
        ]
    try:
        return [(str(p), str(label)) for p, label in examples]
    except (TypeError, ValueError):
        raise SesemiError(
            f"{what} must be a DataFrame with path and label columns, or (path, label) pairs"
        ) from None


def _paths(files: Any) -> list[str]:
    """Paths from a list, a Series, or a DataFrame with a `path` column."""
    if hasattr(files, "columns"):
        if "path" not in files.columns:
            raise SesemiError("unlabeled needs a path column")
        files = files["path"]
    return [str(path) for path in files]


def _require_files(paths: Iterable[str], what: str) -> None:
    missing = [path for path in paths if not os.path.isfile(path)]
    if missing:
        raise SesemiError(f"{len(missing)} {what} files do not exist, e.g. {missing[0]}")


def _quoted(path: Path) -> str:
    """A path as a quoted Hydra override value (paths may hold `=`, `,` or spaces)."""
    return "'" + str(path).replace("\\", "\\\\").replace("'", "\\'") + "'"


def _timestamped(parent: Path) -> Path:
    """A new folder `<parent>/<YYYY-mm-dd_HH-MM-SS-microseconds>`, as `open_sesemi` names runs.

    Microseconds, because `train(overwrite=True)` removes the old folder, so a retrain within
    the same second would otherwise reuse its name."""
    stem = datetime.now().strftime("%Y-%m-%d_%H-%M-%S-%f")
    folder, number = parent / stem, 1
    while folder.exists():
        folder, number = parent / f"{stem}_{number}", number + 1
    return folder


def _link(files: Sequence[str], folder: Path) -> None:
    """Links each file into `folder`, numbered so that equal names do not collide."""
    folder.mkdir(parents=True, exist_ok=True)
    for index, path in enumerate(files):
        target = folder / f"{index:06d}_{Path(path).name}"
        try:
            target.symlink_to(os.path.abspath(path))
        except OSError:  # no symlinks on this file system
            shutil.copy2(path, target)


class TrainingRun:
    """A named classifier with its data, runs and checkpoints in `<dir>/<name>/`.

    Args:
        task: "image" or "audio": the built-in data config (`image`, `audio`) that trains it.
        name: The run's name, a folder name.
        label_names: The classes.
        dir: The folder that holds runs.
    """

    def __init__(self, task: str, name: str, label_names: Sequence[str], dir: str | Path = "runs"):
        if task not in TASKS:
            raise SesemiError(f"task must be one of {', '.join(TASKS)}, not {task!r}")
        self.task = task
        self.name = _folder_name(name, "the run name")
        self.label_names = [_folder_name(label, "the label") for label in label_names]
        if not self.label_names or len(set(self.label_names)) != len(self.label_names):
            raise SesemiError("label_names must list each class once")
        self.folder = Path(dir).absolute() / self.name
        self.method: str | None = None
        self.overrides: list[str] = []
        self._predictor: Any = None  # the trained model, loaded on the first predict()

    @classmethod
    def load(cls, path: str | Path) -> TrainingRun:
        """The training run saved in `path` (a `<dir>/<name>` folder)."""
        info_path = Path(path) / RUN_FILE
        if not info_path.is_file():
            raise SesemiError(f"{path} is not a training run folder (it has no {RUN_FILE})")
        info = json.loads(info_path.read_text())
        run = cls(info["task"], info["name"], info["label_names"], Path(path).absolute().parent)
        run.method, run.overrides = info["method"], info["overrides"]
        return run

    def __repr__(self) -> str:
        trained = self.run_dir is not None
        folder = str(self.folder)
        return f"TrainingRun(task={self.task!r}, name={self.name!r}, {folder=}, {trained=})"

    @property
    def run_dir(self) -> Path | None:
        """The folder of the latest finished training, or None before one."""
        finished = [
            folder
            for folder in sorted(self.folder.glob("*/results.json"))
            if json.loads(folder.read_text()).get("mode") == "FIT"
        ]
        return finished[-1].parent if finished else None

    @property
    def results(self) -> dict[str, Any]:
        """The `results.json` of the latest finished training."""
        if self.run_dir is None:
            raise SesemiError(f"{self.name} has not been trained yet; call train() first")
        return json.loads((self.run_dir / "results.json").read_text())

    @property
    def checkpoint(self) -> Path:
        """The best checkpoint of the latest training (the last one when nothing was validated)."""
        results = self.results
        path = (results.get("best") or {}).get("checkpoint") or results.get("last_checkpoint")
        if not path or not Path(path).is_file():
            raise SesemiError(
                f"the run {self.run_dir} has no checkpoint left (removed by rm-states --all?)"
            )
        return Path(path)

    def _config_name(self, method: str) -> str:
        """The data config of this task (`image` or `audio`), after checking `method` is built in."""
        from sesemi.config.catalog import methods

        if method not in methods():
            raise SesemiError(f"no built-in method {method!r}; choose one of: {', '.join(methods())}")
        return self.task

    def _write_labeled(self, pairs: Sequence[tuple[str, str]], folder: Path, what: str) -> None:
        unknown = sorted({label for _, label in pairs} - set(self.label_names))
        if unknown:
            raise SesemiError(
                f"{what} has labels that are not in label_names: {', '.join(unknown)}"
            )
        absent = [label for label in self.label_names if label not in {label for _, label in pairs}]
        if absent:  # class indices come from the class folders, so every class needs one
            raise SesemiError(
                f"{what} has no examples of {', '.join(absent)}; every class needs at least one"
            )
        _require_files((path for path, _ in pairs), what)
        for label in self.label_names:
            _link([path for path, other in pairs if other == label], folder / label)

    def _run(self, folder: Path, overrides: Sequence[str]) -> dict[str, Any]:
        """Runs the method config on the data under `data_root`, into `folder`; its results."""
        from sesemi.cli.functions import train

        assert self.method is not None
        train(
            self._config_name(self.method),
            overrides=[
                f"method={self.method}",
                f"run.data_root={_quoted(self.folder / DATA)}",
                f"run.dir={_quoted(self.folder.parent)}",
                f"run.id={self.name}",
                f"hydra.run.dir={_quoted(folder)}",
                *overrides,
            ],
        )
        return json.loads((folder / "results.json").read_text())

    def train(
        self,
        train: Examples,
        unlabeled: Any = None,
        eval: Examples | None = None,
        method: str = "fixmatch",
        overrides: Sequence[str] = (),
        overwrite: bool = False,
    ) -> dict[str, Any]:
        """Trains a classifier.

        Args:
            train: The labeled examples: a DataFrame with `path` and `label` columns, or
                `(path, label)` pairs. Every class needs at least one.
            unlabeled: Files without labels: a list of paths (or a DataFrame with `path`).
            eval: Labeled examples to validate on (and choose the best checkpoint by); None
                validates on `train`, which says little about new data.
            method: A built-in method (configs/method/): fixmatch, flexmatch, supervised, ...
            overrides: Hydra overrides of that config, e.g. `run.num_iterations=2000`.
            overwrite: Replace a run of this name that has finished.

        Returns:
            The run's `results.json`: the final metrics, the best checkpoint, ...
        """
        if self.run_dir is not None and not overwrite:
            raise SesemiError(
                f"{self.folder} holds a finished run; pass overwrite=True to train it again"
            )
        self._config_name(method)
        pairs = _pairs(train, "train")
        eval_pairs = _pairs(eval, "eval") if eval is not None else None
        unlabeled_paths = _paths(unlabeled) if unlabeled is not None else []
        _require_files(unlabeled_paths, "unlabeled")
        if self.folder.exists():
            shutil.rmtree(self.folder)
        data = self.folder / DATA
        self._write_labeled(pairs, data / "train", "train")
        if eval_pairs is not None:
            self._write_labeled(eval_pairs, data / "val", "eval")
        if unlabeled_paths:
            _link(unlabeled_paths, data / "unlabeled")
        self.method, self.overrides, self._predictor = method, [*overrides], None
        info = {
            "task": self.task,
            "name": self.name,
            "label_names": self.label_names,
            "method": method,
            "overrides": self.overrides,
        }
        (self.folder / RUN_FILE).write_text(json.dumps(info, indent=2) + "\n")
        validation = [] if eval_pairs is not None else ["data.val.dataset.subset=train"]
        return self._run(_timestamped(self.folder), [*validation, *self.overrides])

    def predict(
        self, paths: Sequence[str | Path], batch_size: int = 64, tta: bool = False
    ) -> list[dict[str, float]]:
        """The class probabilities of each file by the best checkpoint, in input order.

        Args:
            paths: Image (or, for an audio run, audio) files.
            batch_size: Inputs per forward pass.
            tta: Test-time augmentation: average over each image and its horizontal flip
                (audio: time-shifted copies); wrong where mirroring changes the meaning.

        Returns:
            `[{label: probability, ...}, ...]`, one dict per file.
        """
        from sesemi.ops.inference import Predictor

        if self._predictor is None:
            self._predictor = Predictor.from_run(self.checkpoint)
        probabilities = self._predictor.predict([str(path) for path in paths], batch_size, tta=tta)
        return [
            dict(zip(self._predictor.labels, row.tolist(), strict=True)) for row in probabilities
        ]

    def evaluate(self, eval: Examples) -> dict[str, float]:
        """The metrics (`val/top1`, `val/loss`, ...) of the best checkpoint on labeled examples.

        Args:
            eval: A DataFrame with `path` and `label` columns, or `(path, label)` pairs, with
                at least one example of every class.
        """
        checkpoint = self.checkpoint
        folder = _timestamped(self.folder / EVALUATIONS)
        self._write_labeled(_pairs(eval, "eval"), folder / DATA / "val", "eval")
        results = self._run(
            folder,
            [
                "run.mode=VALIDATE",
                f"run.pretrained_checkpoint_path={_quoted(checkpoint)}",
                *self.overrides,
                f"++data.val.dataset.root={_quoted(folder / DATA)}",
                "data.val.dataset.subset=val",
            ],
        )
        return results["metrics"]


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

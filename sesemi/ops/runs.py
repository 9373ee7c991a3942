"""Run folders on disk: finding them, reading what they wrote, and tidying them up.

A run folder is what a training run writes (see sesemi/runner.py): `config.yaml`, `results.json`
(only once it finished), `metrics.csv` and `checkpoints/`. A run that failed before writing its
config is recognized by Hydra's `.hydra/config.yaml` with a `learner`.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from sesemi.errors import SesemiError
from sesemi.results import RESULTS, RunResult

CONFIG, METRICS = "config.yaml", "metrics.csv"
KEPT_CHECKPOINTS = ("best.ckpt", "last.ckpt")


@dataclass(frozen=True)
class Run:
    """One run folder.

    Attributes:
        path: The folder, as found under the searched root (it may pass through a symlink).
        name: The folder relative to the root, e.g. `digits/2026-11-23_16-09-06`.
        config: The resolved `config.yaml`, or None when the run failed before writing it.
        result: What `results.json` says, or None when the run did not finish.
    """

    path: Path
    name: str
    config: dict[str, Any] | None
    result: RunResult | None

    @property
    def finished(self) -> bool:
        return self.result is not None

    @property
    def trained(self) -> bool:
        """Whether this is a finished training (not an evaluation) run."""
        return self.result is not None and self.result.mode == "FIT"


def _read_yaml(path: Path) -> dict[str, Any] | None:
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError):
        return None
    return data if isinstance(data, dict) else None


def _read_result(folder: Path) -> RunResult | None:
    try:
        return RunResult.read(folder)
    except (SesemiError, TypeError):
        return None


def _is_run(folder: Path) -> bool:
    if (folder / CONFIG).is_file() or (folder / RESULTS).is_file():
        return True
    hydra_config = folder / ".hydra" / CONFIG  # failed early; operations have no learner
    return hydra_config.is_file() and "learner" in (_read_yaml(hydra_config) or {})


def find_runs(root: str | Path) -> list[Run]:
    """Every run folder under `root` (following symlinks, e.g. of groups), sorted by name.

    A run reached both directly and through a symlink is listed once, by its direct path.
    """
    root = Path(root)
    if not root.is_dir():
        raise SesemiError(f"runs folder {root} does not exist")
    found: dict[str, Path] = {}
    for folder, subfolders, _ in os.walk(root, followlinks=True):
        folder_path = Path(folder)
        if not _is_run(folder_path):
            subfolders[:] = sorted(
                name for name in subfolders if not name.startswith(".")
            )  # not .hydra/
            continue
        subfolders.clear()  # checkpoints/ and the like
        real = os.path.realpath(folder_path)
        direct = folder_path.resolve() == folder_path.absolute()
        if real not in found or direct:
            found[real] = folder_path
    runs = [
        Run(
            path,
            path.relative_to(root).as_posix(),
            _read_yaml(path / CONFIG),
            _read_result(path),
        )
        for path in found.values()
    ]
    return sorted(runs, key=lambda run: run.name)


def method(config: dict[str, Any] | None) -> str:
    """A run's method: its `run.method`, else (an older run) the names of its regularization
    loss heads, or `supervised`."""
    named = ((config or {}).get("run") or {}).get("method")
    if named:
        return named
    model = (((config or {}).get("learner") or {}).get("hparams") or {}).get("model") or {}
    heads = sorted(model.get("regularization_loss_heads") or {})
    return "+".join(heads) or ("supervised" if model.get("supervised_loss") else "none")


def field_value(run: Run, field: str) -> Any:
    """A dotted config field of a run (e.g. `learner.hparams.optimizer.lr`), `method`, or None."""
    if field == "method":
        return method(run.config)
    value: Any = run.config or {}
    for key in field.split("."):
        if not isinstance(value, dict) or key not in value:
            return None
        value = value[key]
    return value


def remove(paths: Iterable[Path]) -> None:
    """Deletes files and folders; a symlink is removed, not what it points to."""
    for path in paths:
        if path.is_symlink() or path.is_file():
            path.unlink()
        else:
            shutil.rmtree(path)


def remove_failed(runs_dir: str | Path, dry_run: bool = False) -> list[Path]:
    """Deletes the run folders without `results.json`: runs that failed or were killed.

    A run still training has no `results.json` either: do not use this while runs are going.

    Args:
        runs_dir: The folder to search for run folders.
        dry_run: Only say what would be deleted.

    Returns:
        The run folders deleted (or that would be).
    """
    failed = [run.path for run in find_runs(runs_dir) if not run.finished]
    if not dry_run:
        remove(failed)
    return failed


def remove_checkpoints(runs_dir: str | Path, everything: bool = False, dry_run: bool = False) -> list[Path]:
    """Deletes the checkpoints of finished runs except their best and last ones.

    Unfinished runs keep theirs: they may be resumed from them.

    Args:
        runs_dir: The folder to search for run folders.
        everything: Delete the best and last checkpoints too (the runs cannot predict afterwards).
        dry_run: Only say what would be deleted.

    Returns:
        The checkpoint files deleted (or that would be).
    """
    files = [path for run in find_runs(runs_dir) for path in surplus_checkpoints(run, everything)]
    if not dry_run:
        remove(files)
    return files


def surplus_checkpoints(run: Run, everything: bool = False) -> list[Path]:
    """The checkpoints of a finished run beyond its best and last ones (all of them with
    `everything`). Unfinished runs keep theirs: they may be resumed from them."""
    if run.result is None:
        return []
    checkpoints = sorted((run.path / "checkpoints").glob("*.ckpt"))
    if everything:
        return checkpoints
    recorded = [run.result.best_checkpoint, run.result.last_checkpoint]
    kept = {Path(p).name for p in recorded if p} | set(KEPT_CHECKPOINTS)
    return [path for path in checkpoints if path.name not in kept]


def group_runs(runs: Sequence[Run], by: Sequence[str], folder: Path) -> dict[str, list[Run]]:
    """Links each run into `folder/<field=value,...>/`, by the values of the `by` fields."""
    groups: dict[str, list[Run]] = {}
    for run in runs:
        label = ",".join(
            f"{field.rsplit('.', 1)[-1]}={_text(field_value(run, field))}" for field in by
        )
        groups.setdefault(label, []).append(run)
    for label, members in groups.items():
        (folder / label).mkdir(parents=True)
        for run in members:
            link = folder / label / run.name.replace("/", "_")
            link.symlink_to(
                os.path.relpath(run.path.resolve(), link.parent.resolve()), target_is_directory=True
            )
    return groups


def _text(value: Any) -> str:
    """A value as a folder-name fragment."""
    return json.dumps(value) if isinstance(value, list | dict) else str(value).replace("/", "_")

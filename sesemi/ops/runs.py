"""Run folders on disk (see sesemi/runner.py): finding them, reading what they wrote, tidying.

Tidying deletes only what carries sesemi's `.sesemi` marker of a run, found without following a
symlink out of the folder given: folders of earlier releases (no marker) are only counted.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from sesemi import ownership
from sesemi.errors import SesemiError
from sesemi.logs import counted
from sesemi.ownership import MARKER, Marker, checksum_path, saved_by_sesemi
from sesemi.results import RESULTS, RunResult, read_stored_yaml
from sesemi.run_folder import COMPOSED, CONFIG

KEPT_CHECKPOINTS = ("best.ckpt", "last.ckpt")
LABEL_BYTES = 120  # the longest group label (`<field=value,...>`) kept whole, in UTF-8 bytes
LINK_BYTES = 200  # the longest link name in a group (a run's path, `/` as `_`) kept whole


@dataclass(frozen=True)
class Run:
    """One run folder; its files are read when first asked for (tidying needs few of them)."""

    path: Path  # as found under the searched root (it may pass through a symlink)
    name: str  # relative to the root, e.g. `digits/2026-11-23_16-09-06`; the root's own name if it is the run

    @functools.cached_property
    def config(self) -> dict[str, Any] | None:
        """`config.yaml`; None when the run failed before writing it."""
        return _read_yaml(self.path / CONFIG)

    @functools.cached_property
    def result(self) -> RunResult | None:
        """`results.json`; None when the run did not finish."""
        return RunResult.read_if_whole(self.path)

    @functools.cached_property
    def composed(self) -> dict[str, Any] | None:
        """`composed.yaml`: the config as asked for (None before 2026-12)."""
        return _read_yaml(self.path / COMPOSED)

    @property
    def finished(self) -> bool:
        return self.result is not None

    @property
    def marker(self) -> Marker | None:
        """The run's `.sesemi` marker, or None (a run of an earlier release, or not sesemi's)."""
        found = ownership.marker(self.path)
        return found if found is not None and found.kind == "run" else None

    @property
    def trained(self) -> bool:
        """Whether this is a finished training (not an evaluation) run."""
        return self.result is not None and self.result.mode == "FIT"


def _read_yaml(path: Path) -> dict[str, Any] | None:
    """A stored config as plain containers, or None: missing, or refused by `read_stored_yaml`
    (damaged, not UTF-8, not a regular file, with aliases, too large or deep)."""
    try:
        return OmegaConf.to_container(read_stored_yaml(path), resolve=False)
    except (FileNotFoundError, SesemiError):
        return None


def _is_run(folder: Path) -> bool:
    if (folder / CONFIG).is_file() or (folder / RESULTS).is_file() or ownership.owned(folder, "run"):
        return True
    hydra_config = folder / ".hydra" / CONFIG  # failed early; operations have no learner
    return hydra_config.is_file() and "learner" in (_read_yaml(hydra_config) or {})


def find_runs(root: str | Path, follow_links: bool = True) -> list[Run]:
    """Every run folder under `root`, sorted by name; with `follow_links` also through symlinks
    (the links of groups), each run listed once, by its direct path, and no folder searched
    twice through links (a link to `.` is no loop). Without, nothing outside `root` is reached:
    tidying searches what it deletes this way."""
    root = Path(root)
    if not root.is_dir():
        raise SesemiError(f"runs folder {root} does not exist")
    top = root.resolve()
    found: dict[Path, Path] = {}
    searched: set[Path] = set()
    for folder, subfolders, _ in os.walk(root, followlinks=follow_links):
        folder_path = Path(folder)
        real = folder_path.resolve()
        direct = real == top / folder_path.relative_to(root)  # not through a link
        if real in searched and not direct:
            subfolders.clear()
            continue
        searched.add(real)
        if not _is_run(folder_path):
            subfolders[:] = sorted(name for name in subfolders if not name.startswith("."))  # not .hydra/
            continue
        subfolders.clear()  # checkpoints/ and the like
        if real not in found or direct:  # its direct path wins over a link's
            found[real] = folder_path
    return sorted((Run(path, _name(path, root)) for path in found.values()), key=lambda run: run.name)


def _name(path: Path, root: Path) -> str:
    """A run's name: its path relative to `root`, or the root's own name (never `.`)."""
    return path.relative_to(root).as_posix() if path != root else Path(os.path.abspath(root)).name


def _dotted(config: dict[str, Any] | None, field: str) -> Any:
    """The value of a dotted field (e.g. `learner.hparams.optimizer.lr`) of a config, or None."""
    value: Any = config or {}
    for key in field.split("."):
        if not isinstance(value, dict) or key not in value:
            return None
        value = value[key]
    return value


def method(config: dict[str, Any] | None) -> str:
    """A run's method: its `run.method`, else (an older run) the names of its regularization
    loss heads, or `supervised`."""
    named = _dotted(config, "run.method")
    if named:
        return _text(named)
    model = _dotted(config, "learner.hparams.model")
    model = model if isinstance(model, dict) else {}  # a config from anyone: any shape
    heads = model.get("regularization_loss_heads")
    names = sorted(map(_text, heads)) if isinstance(heads, dict | list) else []
    return "+".join(names) or ("supervised" if model.get("supervised_loss") else "none")


def field_value(run: Run, field: str) -> Any:
    """A dotted config field of a run, `method` (see `method`), `id` and `seed` (`run.id`,
    `run.seed`: the summary's columns), or None."""
    if field == "method":
        return method(run.config)
    return _dotted(run.config, f"run.{field}" if field in ("id", "seed") else field)


@dataclass(frozen=True)
class Tidied:
    """What `remove_failed` or `remove_checkpoints` deleted (or would delete) and left alone."""

    removed: list[Path]  # run folders or checkpoint files
    size: int  # theirs, in bytes
    unmarked: list[Path]  # run folders without sesemi's marker, never deleted (earlier releases)
    running: list[Path]  # marked runs whose process still runs
    unproven: list[Path] = dataclasses.field(default_factory=list)  # checkpoints sesemi cannot prove it saved

    def left_alone(self) -> str | None:
        """One line on what was left alone and why, or None."""
        parts = []
        if self.unmarked:
            parts.append(
                f"{counted(len(self.unmarked), 'run folder')} without a {MARKER} marker (made before sesemi "
                "marked its runs, copied from elsewhere, or not by sesemi; delete them yourself if they are yours to delete)"
            )
        if self.running:
            parts.append(f"{counted(len(self.running), 'run')} still running")
        if self.unproven:
            parts.append(
                f"{counted(len(self.unproven), 'checkpoint')} sesemi cannot prove it saved (copies, or saved before it "
                "recorded their inode; delete them yourself if they are yours to delete)"
            )
        return f"left alone {' and '.join(parts)}" if parts else None


def _size(path: Path) -> int:
    if path.is_symlink() or path.is_file():
        return path.lstat().st_size
    return sum((Path(folder) / name).lstat().st_size for folder, _, names in os.walk(path) for name in names)


def _delete(paths: Sequence[Path], root: Path, kind: str | None, dry_run: bool) -> int:
    """Deletes what sesemi made under `root` (see `ownership.remove`); returns the bytes."""
    size = sum(_size(path) for path in paths)
    if not dry_run:
        for path in paths:
            try:
                ownership.remove(path, root, kind)
            except OSError as error:
                raise SesemiError(f"cannot delete {path} ({error.strerror or error}); check its permissions") from None
    return size


def _given(runs_dir: str | Path) -> Path:
    """The folder to tidy: `runs_dir`, or the folder it links to (the link itself is no run)."""
    path = Path(runs_dir)
    return Path(os.path.realpath(path)) if path.is_symlink() else path


def remove_failed(runs_dir: str | Path, dry_run: bool = False) -> Tidied:
    """Deletes the folders of runs under `runs_dir` that stopped without finishing: failed,
    interrupted, or killed (marked running by a process that is gone; one running on another
    machine stays). `dry_run` only says what would be deleted.
    """
    root = _given(runs_dir)
    stopped, unmarked, running = [], [], []
    for run in find_runs(root, follow_links=False):
        found = run.marker
        if found is None:
            if not run.finished:
                unmarked.append(run.path)
        elif found.stopped:
            if not run.finished:  # with results.json, it was stopped just after writing them
                stopped.append(run.path)
        elif found.state == "running":
            running.append(run.path)
    return Tidied(stopped, _delete(stopped, root, "run", dry_run), unmarked, running)


def remove_checkpoints(runs_dir: str | Path, everything: bool = False, dry_run: bool = False) -> Tidied:
    """Deletes the checkpoints of the runs under `runs_dir` marked finished (the others may be
    resumed from theirs), except their best and last ones unless `everything` (the runs cannot
    predict afterwards). `dry_run` only says what would be deleted.
    """
    root = _given(runs_dir)
    files, unmarked, unproven = [], [], []
    for run in find_runs(root, follow_links=False):
        surplus, found = surplus_checkpoints(run, everything), run.marker
        if found is None:
            if surplus:
                unmarked.append(run.path)
        elif found.state == "finished":
            for path in surplus:
                (files if saved_by_sesemi(path) else unproven).append(path)
    _delete([checksum_path(path) for path in files], root, None, dry_run)
    return Tidied(files, _delete(files, root, None, dry_run), unmarked, [], unproven)


def surplus_checkpoints(run: Run, everything: bool = False) -> list[Path]:
    """The checkpoints of a finished run beyond its best and last ones (all with `everything`);
    none of an unfinished run, or in a `checkpoints` folder that is a symlink. Of these,
    `remove_checkpoints` deletes only those sesemi saved (`saved_by_sesemi`): a copy a user made
    there (`my_backup.ckpt`), even with a checksum beside it, is theirs."""
    folder = run.path / "checkpoints"
    if run.result is None or folder.is_symlink():
        return []
    checkpoints = sorted(path for path in folder.glob("*.ckpt") if path.is_file() and not path.is_symlink())
    if everything:
        return checkpoints
    recorded = [run.result.best_checkpoint, run.result.last_checkpoint]
    kept = {Path(p).name for p in recorded if p} | set(KEPT_CHECKPOINTS)
    return [path for path in checkpoints if path.name not in kept]


def partition(runs: Sequence[Run], by: Sequence[str]) -> dict[str, list[Run]]:
    """The runs by the values of the `by` fields, under labels `<field=value,...>` that are
    plain folder names, a different one for each different set of values (see `_label`)."""
    groups: dict[str, list[Run]] = {}
    labels: dict[str, str] = {}  # repr of the values -> their label
    for run in runs:
        values = [field_value(run, field) for field in by]
        key = repr(values)
        if key not in labels:
            labels[key] = _label(by, values, key, set(labels.values()))
        groups.setdefault(labels[key], []).append(run)
    return groups


def _label(by: Sequence[str], values: Sequence[Any], key: str, taken: set[str]) -> str:
    """`<field=value,...>` as one folder name: `/`, `\\`, `%`, control characters and a leading
    dot percent-escaped (`a/b` -> `a%2Fb`); one longer than `LABEL_BYTES`, or that other values
    already have (`a=x,b=y` from `a="x,b=y"` or from `a=x`, `b=y`), is cut and ends in `~<hash>`
    of the values."""
    label = ",".join(f"{_escape(field.rsplit('.', 1)[-1])}={_escape(_text(value))}" for field, value in zip(by, values, strict=True))
    label = _escape(label[:1], ".") + label[1:]  # never hidden
    if len(label.encode("utf-8")) <= LABEL_BYTES and label not in taken:
        return label
    return _unique(_cut(label, key, LABEL_BYTES), taken)


def _cut(name: str, key: str, limit: int) -> str:
    """`name` cut to its first `limit - 20` bytes of UTF-8 and ended in `~<hash>` of `key`: a
    file name that stays readable, different for each key."""
    stem = name.encode("utf-8")[: limit - 20].decode("utf-8", errors="ignore")
    return f"{stem}~{hashlib.sha256(key.encode('utf-8', 'surrogatepass')).hexdigest()[:8]}"


def unique_name(name: str, taken: set[str], limit: int) -> str:
    """`name` (without `/`) as a file name not in `taken`, which it joins: control characters
    percent-escaped (see `_escape`), cut when longer than `limit` bytes (see `_cut`), and
    ended in `~2`, `~3`, ... when taken."""
    escaped = _escape(name, "")
    fitting = escaped if len(escaped.encode("utf-8")) <= limit else _cut(escaped, name, limit)
    taken.add(unique := _unique(fitting, taken))
    return unique


def _unique(name: str, taken: set[str]) -> str:
    """`name`, or the first of `name~2`, `name~3`, ... not in `taken`."""
    unique, count = name, 1
    while unique in taken:
        count += 1
        unique = f"{name}~{count}"
    return unique


def _escape(text: str, unsafe: str = "/\\%") -> str:
    """`text` with the characters in `unsafe`, control characters and lone surrogates as `%XX`."""
    return "".join(
        "".join(f"%{byte:02X}" for byte in c.encode("utf-8", "surrogatepass"))
        if c in unsafe or ord(c) < 32 or ord(c) == 127 or 0xD800 <= ord(c) <= 0xDFFF
        else c
        for c in text
    )


def group_runs(runs: Sequence[Run], by: Sequence[str], folder: Path) -> dict[str, list[Run]]:
    """Links each run into `folder/<field=value,...>/`, by the values of the `by` fields.

    Raises:
        SesemiError: A label is not a folder name inside `folder` (never made).
    """
    groups = partition(runs, by)
    folder.mkdir(parents=True, exist_ok=True)
    for label, members in groups.items():
        place = folder / label
        inside = Path(os.path.realpath(place)).parent == Path(os.path.realpath(folder))
        if not inside or label.startswith(".") or Path(label).name != label:
            raise SesemiError(f"will not make {place}: the group label {label!r} is not a folder name inside {folder}")
        place.mkdir()
        names: set[str] = set()  # `a/b_c` and `a_b/c` are both `a_b_c`: the second is `a_b_c~2`
        for run in members:
            link = place / unique_name(run.name.replace("/", "_"), names, LINK_BYTES)
            link.symlink_to(os.path.relpath(run.path.resolve(), link.parent.resolve()), target_is_directory=True)
    return groups


def _text(value: Any) -> str:
    """A value as text: lists and mappings as JSON."""
    return json.dumps(value) if isinstance(value, list | dict) else str(value)

"""The `sesemi` commands as plain Python functions with the same arguments.

    import sesemi.cli
    sesemi.cli.fetch("digits")
    sesemi.cli.train("digits", overrides=["run.num_iterations=200"])
    sesemi.cli.postprocess("runs")

Each prints what its command prints and returns what it made; a problem the user can fix
raises `SesemiError`. torch, Lightning, pandas and matplotlib are imported inside the functions,
so importing this module (and `sesemi --help`) stays fast.
"""

from __future__ import annotations

import fnmatch
import os
import sys
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sesemi.cli.project import (
    CUSTOM_CONFIG,
    PROJECT_FOLDERS,
    builtin_config,
    builtin_configs,
    builtin_groups,
    description,
)
from sesemi.errors import SesemiError

if TYPE_CHECKING:
    from rich.console import Console

    from sesemi.hub import Model as HubModel
    from sesemi.hub import ModelInfo
    from sesemi.ops.inference import Predictor
    from sesemi.ops.postprocess import Summary
    from sesemi.ops.runs import Run

# Built-in data sets whose folder is not named like the config that reads it.
DATA_FOLDERS = {"imagewoof": "imagewoof2"}


def _console() -> Console:
    from rich.console import Console

    return Console()


def create(directory: str | Path = ".", force: bool = False) -> Path:
    """Creates a project: `configs/custom.yaml` (a commented config that starts from `base`),
    and the `data/`, `runs/` and `src/` folders.

    Args:
        directory: The project folder (created if needed).
        force: Overwrite an existing `configs/custom.yaml`.

    Returns:
        The project folder.
    """
    root = Path(directory)
    config = root / "configs" / "custom.yaml"
    if config.exists() and not force:
        raise SesemiError(f"{config} exists; pass --force to overwrite it")
    for name in PROJECT_FOLDERS:
        (root / name).mkdir(parents=True, exist_ok=True)
    config.write_text(CUSTOM_CONFIG)
    _console().print(
        f"created {root}/: configs/custom.yaml, data/, runs/, src/\n"
        f"next: cd {root} && sesemi fetch digits && sesemi train -cd configs -cn custom"
    )
    return root


# Named after its command, like the others; this module calls no builtin `list` below it.
def list(group: str | None = None, pattern: str = "*") -> Sequence[str]:
    """Lists the built-in configs with what each is for.

    Args:
        group: A config group (`backbone`, `dataset`, `ops`, ...); None lists the configs that
            `sesemi train -cn NAME` runs.
        pattern: A shell-style pattern on the names, e.g. `*digits*`.

    Returns:
        The names, as `sesemi show` and `-cn` take them.
    """
    from rich.table import Table

    prefix = f"{group}/" if group else ""
    configs = {
        f"{prefix}{name}": file
        for name, file in builtin_configs(group).items()
        if fnmatch.fnmatch(name, pattern)
    }
    table = Table("config", "description", box=None)
    for name, file in configs.items():
        table.add_row(name, description(file.read_text()))
    console = _console()
    console.print(table if configs else f"no built-in config matches {pattern!r}")
    if not group:
        console.print(f"\ngroups: {', '.join(builtin_groups())} (sesemi list GROUP)")
    return [*configs]


def show(name: str, save: str | Path | None = None, force: bool = False) -> str:
    """Prints a built-in config, or copies it to a file to start your own from.

    Args:
        name: The config, e.g. `digits` or `backbone/resnet18`.
        save: A file or folder to copy the config to, instead of printing it.
        force: Overwrite an existing file.

    Returns:
        The config's text.
    """
    file = builtin_config(name)
    text = file.read_text()
    console = _console()
    if save is None:
        from rich.syntax import Syntax

        console.print(
            Syntax(text, "yaml", background_color="default") if console.is_terminal else text,
            end="",
        )
        return text
    target = Path(save)
    if target.is_dir() or str(save).endswith(("/", os.sep)):
        target = target / file.name
    if target.exists() and not force:
        raise SesemiError(f"{target} exists; pass --force to overwrite it")
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text)
    console.print(f"saved {name} to {target}")
    return text


def fetch(name: str, data_dir: str | Path = "data") -> Path:
    """Builds a built-in data set into `data_dir`, or checks one that must be downloaded.

    `digits` (and the other data sets sesemi builds offline) are written once, under a file
    lock, so parallel calls (e.g. the jobs of a sweep) do not race. `imagewoof` cannot be
    fetched offline: the error says where to get it and how its folders are laid out.

    Args:
        name: The data set, e.g. `digits`.
        data_dir: The folder that holds the data sets.

    Returns:
        The data set's folder.
    """
    from sesemi.datasets.builtin import BUILDERS, REMOTE_DATA, prepare_builtin

    folder = DATA_FOLDERS.get(name, name)
    target = Path(data_dir) / folder
    if folder in BUILDERS:
        prepare_builtin(target)
    elif folder in REMOTE_DATA:
        if not ((target / "train").is_dir() and (target / "val").is_dir()):
            raise SesemiError(
                f"sesemi cannot download {name}; {REMOTE_DATA[folder]} "
                f"(it must hold {target}/train/<class>/ and {target}/val/<class>/)"
            )
    else:
        names = {folder: name for name, folder in DATA_FOLDERS.items()}
        known = sorted(names.get(f, f) for f in {*BUILDERS, *REMOTE_DATA})
        raise SesemiError(f"no built-in data set {name!r}; choose one of: {', '.join(known)}")
    counts = ", ".join(
        f"{split.name}/ {sum(f.is_file() for f in split.rglob('*'))}"
        for split in sorted(target.iterdir())
        if split.is_dir()
    )
    _console().print(f"{name} is ready in {target} (files: {counts})", highlight=False)
    return target


@contextmanager
def _hydra_command_line(arguments: Sequence[str]) -> Iterator[None]:
    """Runs the block as if `open_sesemi ARGUMENTS` had been typed, raising errors as exceptions."""
    saved_argv, saved_full_error = sys.argv, os.environ.get("HYDRA_FULL_ERROR")
    sys.argv = ["sesemi train", *arguments]
    os.environ["HYDRA_FULL_ERROR"] = "1"  # Hydra and open_sesemi raise instead of exiting
    try:
        yield
    finally:
        sys.argv = saved_argv
        if saved_full_error is None:
            del os.environ["HYDRA_FULL_ERROR"]
        else:
            os.environ["HYDRA_FULL_ERROR"] = saved_full_error


def train(
    config_name: str | None = None,
    config_dir: str | Path | None = None,
    overrides: Sequence[str] | None = None,
) -> None:
    """Trains (or evaluates) from a config: exactly `open_sesemi -cn NAME -cd DIR OVERRIDES...`.

    Args:
        config_name: A built-in config (`sesemi list`) or one in `config_dir`.
        config_dir: A folder of your own configs, added to the search path. The built-in
            configs come first, so a config of yours with a built-in's name is an error.
        overrides: Hydra overrides (`run.seed=1`, `backbone=resnet18`) and flags (`--info`,
            `--cfg job`, `-m` for a sweep).
    """
    from sesemi.cli import open_sesemi

    arguments = [
        *(["-cn", config_name] if config_name else []),
        *(["-cd", str(config_dir)] if config_dir else []),
    ]
    with _hydra_command_line([*arguments, *(overrides or [])]):
        open_sesemi.main()


def inference(
    model: str | Path,
    input: str | Path,
    overrides: Sequence[str] | None = None,
    save_dir: str | Path = "predictions",
    device: str = "auto",
    batch_size: int = 64,
    embeddings: bool = False,
    force: bool = False,
    tta: bool = False,
) -> Path:
    """Predicts image or audio files with a trained run; writes `predictions.csv`.

    The table has `path, label, score` and one probability column per class (and, with
    `per_window=true`, one row per audio window with its `start` and `end`). Recordings longer
    than the training clips are predicted in sliding windows whose probabilities are averaged.

    Args:
        model: A training run's folder, a checkpoint in its `checkpoints/`, or a published
            model's uid or `name@version` (from `$SESEMI_REPOSITORIES` or the cache).
        input: A file, a folder (searched recursively for files of the model's kind), or a
            text file listing one path per line.
        overrides: Settings as `key=value`: `checkpoint` (best or last), `window_seconds`,
            `hop_seconds`, `per_window`, `num_workers`, `on_error` (skip or raise); see
            `sesemi show ops/inference`.
        save_dir: Where to write `predictions.csv` (and `embeddings.npy`).
        device: auto (a GPU if there is one), cpu, cuda, cuda:1, ...
        batch_size: Inputs (audio windows) per forward pass.
        embeddings: Also write the backbone's features, row for row with the table, as
            `embeddings.npy`.
        force: Overwrite existing predictions.
        tta: Test-time augmentation: also predict each image's horizontal flip (audio: each
            window shifted by the training's `max_shift`) and average the probabilities (and
            the embeddings). Wrong where mirroring changes the meaning (text, digits).

    Returns:
        The path of `predictions.csv`.
    """
    import numpy as np
    from rich.progress import Progress

    from sesemi.ops import predictions as ops
    from sesemi.ops.inference import PREDICTIONS_FILE

    settings = _inference_settings(overrides)
    folder = Path(save_dir)
    target = folder / PREDICTIONS_FILE
    if target.exists() and not force:
        raise SesemiError(f"{target} exists; pass --force to overwrite it")
    predictor = _predictor(model, device, settings.pop("checkpoint"))
    paths = ops.read_inputs(input, predictor)
    per_window = settings.pop("per_window")
    window, hop = (
        predictor.windowing(settings["window_seconds"], settings["hop_seconds"])
        if predictor.audio
        else (0, 0)
    )
    console = _console()
    with Progress(
        console=console, transient=True, disable=not (console.is_terminal or console.is_jupyter)
    ) as progress:
        task = progress.add_task("predicting", total=len(paths))
        result = ops.predict(
            predictor,
            paths,
            batch_size,
            embeddings,
            lambda done: progress.update(task, completed=done),
            tta=tta,
            **settings,
        )
    frame, vectors = ops.table(result, predictor, per_window, window, hop)
    folder.mkdir(parents=True, exist_ok=True)
    frame.to_csv(target, index=False, float_format="%.6g")
    embeddings_file = folder / "embeddings.npy"
    if vectors is not None:
        np.save(embeddings_file, vectors)
    else:  # those of earlier predictions would not match these rows
        embeddings_file.unlink(missing_ok=True)
    unreadable = sum(w is None for w in result.windows)
    console.print(
        f"predicted {len(paths) - unreadable} files"
        + (f" ({unreadable} unreadable, skipped)" if unreadable else "")
        + f": {target}"
        + (f", {embeddings_file}" if vectors is not None else ""),
        highlight=False,
    )
    return target


def _predictor(model: str | Path, device: str, checkpoint: str) -> Predictor:
    """The predictor of a run folder or checkpoint, or of a published model's uid or name@version."""
    import sesemi.hub as hub
    from sesemi.hub.ids import is_uid
    from sesemi.ops.inference import Predictor

    if not Path(model).exists() and (is_uid(str(model)) or "@" in str(model)):
        return hub.load(str(model), device=device).predictor
    return Predictor.from_run(model, device, checkpoint)


INFERENCE_SETTINGS = (
    "checkpoint",
    "window_seconds",
    "hop_seconds",
    "per_window",
    "num_workers",
    "on_error",
)


def _inference_settings(overrides: Sequence[str] | None) -> dict[str, Any]:
    """The `key=value` settings of inference, checked against `InferenceConfig`'s types."""
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    from sesemi.config.structs import InferenceConfig

    unknown = [
        o for o in overrides or () if o.split("=", 1)[0] not in INFERENCE_SETTINGS or "=" not in o
    ]
    if unknown:
        raise SesemiError(
            f"inference does not take {unknown[0]!r}; "
            f"its settings: {', '.join(INFERENCE_SETTINGS)}=..."
        )
    try:
        settings = OmegaConf.merge(
            OmegaConf.structured(InferenceConfig), OmegaConf.from_dotlist([*(overrides or ())])
        )
    except OmegaConfBaseException as error:
        raise SesemiError(f"bad inference setting: {str(error).splitlines()[0]}") from None
    return {key: settings[key] for key in INFERENCE_SETTINGS}


def preprocess(
    root: str | Path | None = None,
    config_name: str | None = None,
    config_dir: str | Path | None = None,
    overrides: Sequence[str] | None = None,
    sample_rate: int = 16000,
    cache_dir: str | Path | None = None,
    num_workers: int = 0,
    on_error: str = "skip",
) -> Sequence[dict[str, Any]]:
    """Decodes and resamples recordings once, into the cache the audio datasets read.

    Either a folder (`root`, at `sample_rate`) or every audio data set a config reads (its
    roots, sample rates and cache folders). Only new or changed files are decoded.

    Args:
        root: A folder of recordings, e.g. the `run.data_root` of an audio config.
        config_name: Instead of `root`: an audio config (`sesemi list --pattern 'audio*'`).
        config_dir: A folder of your own configs.
        overrides: Overrides of that config, e.g. `run.data_root=data/my_sounds`.
        sample_rate: The sample rate to cache `root` at (a config sets its own).
        cache_dir: The cache folder for `root` (default `<root>/.sesemi_cache/audio`).
        num_workers: Decoding processes (0 decodes in this process).
        on_error: "skip" unreadable files (with a warning) or "raise" on the first one.

    Returns:
        Per folder: root, sample_rate and the counts of files written, up to date, unreadable
        and removed.
    """
    from sesemi.ops.preprocess import preprocess as write_cache

    if config_name:
        targets = _audio_data(config_name, config_dir, overrides or ())
    elif root is not None:
        targets = [(str(root), sample_rate, None if cache_dir is None else str(cache_dir))]
    else:
        raise SesemiError("name a folder of recordings, or a config with -cn")
    results = [
        {
            "root": folder,
            "sample_rate": rate,
            **write_cache(folder, rate, cache_folder, None, num_workers, on_error),
        }
        for folder, rate, cache_folder in targets
    ]
    for result in results:
        _console().print(
            f"{result['root']} at {result['sample_rate']} Hz: {result['written']} decoded, "
            f"{result['up_to_date']} up to date, {result['unreadable']} unreadable, "
            f"{result['removed']} removed",
            highlight=False,
        )
    return results


def _audio_data(
    config_name: str, config_dir: str | Path | None, overrides: Sequence[str]
) -> list[tuple[str, int, str | None]]:
    """The (root, sample rate, cache folder) of every audio data set a config reads."""
    from sesemi.cli.project import compose
    from sesemi.datamodule import dataset_root
    from sesemi.datasets.audio_folder import DEFAULT_SAMPLE_RATE

    config = compose(config_name, config_dir, overrides)
    loaders = [*(config.data.train or {}).values(), config.data.val, config.data.test]
    targets = {
        (
            str(dataset_root(loader.dataset, config.run.data_root)),
            int(loader.dataset.get("sample_rate") or DEFAULT_SAMPLE_RATE),
            loader.dataset.get("cache_dir"),
        )
        for loader in loaders
        if loader and str(loader.dataset.get("name", "")).startswith("audio")
    }
    if not targets:
        raise SesemiError(f"config {config_name} reads no audio data sets")
    return sorted(targets)


def postprocess(
    runs_dir: str | Path, output_dir: str | Path | None = None, by: Sequence[str] | None = None
) -> Summary:
    """Summarizes the runs under a folder: tables, mean ± std over seeds, and training curves.

    Writes `summary.csv`, `aggregated.csv`, `summary.md` and `plots/<metric>.png` (one per
    metric, the runs overlaid) and prints both tables. Reads only the files runs write.

    Args:
        runs_dir: The folder to search for run folders, e.g. `runs` or `runs/digits`.
        output_dir: Where to write; by default `<runs_dir>/summary`.
        by: The config fields that define a configuration (e.g. `learner.hparams.optimizer.lr`);
            by default the run id, the method and every field that differs between runs,
            except the seed, so each configuration is averaged over its seeds.

    Returns:
        The tables and the plot files.
    """
    from sesemi.ops import postprocess as ops
    from sesemi.ops.runs import find_runs

    runs = find_runs(runs_dir)
    folder = Path(output_dir) if output_dir else Path(runs_dir) / "summary"
    summary = ops.postprocess(runs, folder, str(runs_dir), _fields(by))
    _print_summary(summary, folder, runs)
    return summary


def _fields(by: Sequence[str] | None) -> Sequence[str]:
    """`["a,b", "c"]` -> `["a", "b", "c"]`: fields may be repeated or comma-separated."""
    return [field.strip() for item in by or () for field in item.split(",") if field.strip()]


def _print_summary(summary: Summary, folder: Path, runs: Sequence[Run]) -> None:
    from rich.table import Table

    from sesemi.ops.postprocess import display

    console = _console()
    for title, frame in (
        ("runs", display(summary.runs, summary.metrics)),
        (f"mean ± std by {', '.join(summary.by)}", display(summary.aggregated)),
    ):
        table = Table(title=title, title_justify="left")
        for column in frame.columns:  # run folders are long; they fold rather than lose their end
            table.add_column(column, overflow="fold" if column == "run" else "ellipsis")
        for row in frame.itertuples(index=False):
            table.add_row(*row)
        console.print(table)
    skipped = sum(not run.trained for run in runs)
    if skipped:
        console.print(
            f"{skipped} runs without training results are left out (rm-failed deletes them)"
        )
    console.print(
        f"wrote {folder}/: summary.csv, aggregated.csv, summary.md, {len(summary.plots)} plots/"
    )


def rm_failed(runs_dir: str | Path, dry_run: bool = False) -> Sequence[Path]:
    """Deletes the run folders without `results.json`: runs that failed or were killed.

    A run still training has no `results.json` either: do not use this while runs are going.

    Args:
        runs_dir: The folder to search for run folders.
        dry_run: Only list what would be deleted.

    Returns:
        The run folders deleted (or that would be).
    """
    from sesemi.ops.runs import failed_runs, find_runs, remove

    failed = [run.path for run in failed_runs(find_runs(runs_dir))]
    if not dry_run:
        remove(failed)
    _report(failed, "would delete" if dry_run else "deleted", "failed runs")
    return failed


def rm_states(runs_dir: str | Path, all: bool = False, dry_run: bool = False) -> Sequence[Path]:
    """Deletes the checkpoints of finished runs except `best.ckpt` and `last.ckpt`.

    Unfinished runs keep theirs (they may be resumed from them).

    Args:
        runs_dir: The folder to search for run folders.
        all: Delete the best and last checkpoints too (the runs cannot be used for inference
            afterwards).
        dry_run: Only list what would be deleted.

    Returns:
        The checkpoint files deleted (or that would be).
    """
    from sesemi.ops.runs import find_runs, remove, surplus_checkpoints

    files = [path for run in find_runs(runs_dir) for path in surplus_checkpoints(run, all)]
    size = sum(path.stat().st_size for path in files)
    if not dry_run:
        remove(files)
    _report(files, "would delete" if dry_run else "deleted", f"checkpoints ({size / 1e6:.1f} MB)")
    return files


def _report(paths: Sequence[Path], verb: str, what: str) -> None:
    console = _console()
    for path in paths:
        console.print(f"  {path}", highlight=False)
    console.print(f"{verb} {len(paths)} {what}")


def group(runs_dir: str | Path, by: Sequence[str], name: str, force: bool = False) -> Path:
    """Gathers the finished runs into `<runs_dir>/groups/NAME/<field=value,...>/` (as links),
    one folder per value of the `by` fields, with a summary averaged over each folder's runs.

    Args:
        runs_dir: The folder to search for run folders.
        by: Config fields, e.g. `learner.hparams.optimizer.lr` or `method`.
        name: The group's name.
        force: Replace an existing group of that name.

    Returns:
        The group's folder.
    """
    from sesemi.ops import postprocess as ops
    from sesemi.ops.runs import field_value, find_runs, group_runs, remove

    fields = _fields(by)
    if not fields:
        raise SesemiError(
            "name the config fields to group by with --by, e.g. --by learner.hparams.optimizer.lr"
        )
    if not name or Path(name).name != name or name.startswith("."):
        raise SesemiError(f"the group name {name!r} must be a plain folder name")
    runs = [run for run in find_runs(runs_dir) if run.trained]
    if not runs:
        raise SesemiError(f"no finished training runs under {runs_dir}")
    for field in fields:
        if all(field_value(run, field) is None for run in runs):
            differing = ", ".join(ops.differences(runs)) or "none"
            raise SesemiError(
                f"no run has the config field {field!r}; fields that differ between runs: "
                + differing
            )
    folder = Path(runs_dir) / "groups" / name
    if folder.exists():
        if not force:
            raise SesemiError(f"group {folder} exists; pass --force to replace it")
        remove([folder])
    groups = group_runs(runs, fields, folder)
    summary_folder = folder / "summary"
    members = find_runs(folder)
    summary = ops.postprocess(members, summary_folder, str(folder), fields)
    _print_summary(summary, summary_folder, members)
    _console().print(f"grouped {len(runs)} runs into {len(groups)} folders under {folder}")
    return folder


def publish(
    run: str | Path,
    name: str,
    version: str,
    repository: str | Path,
    subgroup: str | None = None,
    params: Mapping[str, Any] | Sequence[str] | None = None,
    author: str | None = None,
) -> str:
    """Publishes a training run's model to a repository (see `sesemi.hub.publish`).

    Args:
        run: A run folder (its best checkpoint, else the last) or a checkpoint in one.
        name: The model's name, e.g. `digits-cnn`.
        version: Its version, e.g. `1.0.0`; a name and version are published once.
        repository: A folder or an fsspec URL (`s3://bucket/models`, ...).
        subgroup: Dot-separated groups to file it under, e.g. `images.digits`.
        params: What tells it apart from other models of its name: a mapping, or `key=value`
            strings whose values are read as YAML (`rate=16000` is a number).
        author: Who publishes it.

    Returns:
        The model's uid.
    """
    import sesemi.hub as hub

    if params is not None and not isinstance(params, Mapping):
        params = _key_values(params)
    uid = hub.publish(run, name, version, repository, subgroup, params, author)
    _console().print(f"published {name}@{version} as {uid} to {repository}", highlight=False)
    return uid


def _key_values(items: Sequence[str]) -> dict[str, Any]:
    """`["rate=16000", "task=digits"]` -> `{"rate": 16000, "task": "digits"}`."""
    import yaml

    malformed = [item for item in items if "=" not in item]
    if malformed:
        raise SesemiError(f"params are key=value, not {malformed[0]!r}")
    return {key: yaml.safe_load(value) for key, _, value in (item.partition("=") for item in items)}


def models(repository: str | Path | None = None) -> Sequence[ModelInfo]:
    """Lists the published models: uid, name, version, date, metrics and params.

    Args:
        repository: A folder or fsspec URL; by default those of `$SESEMI_REPOSITORIES`.

    Returns:
        The models, by subgroup, name and version.
    """
    from rich.table import Table

    import sesemi.hub as hub

    found = hub.models(repository)
    table = Table("uid", "model", "date", "metrics", "params", box=None)
    for info in found:
        metrics = ", ".join(f"{k}={v:.4f}" for k, v in info.metrics.items())
        params = ", ".join(f"{k}={v}" for k, v in info.params.items())
        table.add_row(info.uid, info.reference, info.date[:10], metrics, params)
    _console().print(table if found else "no models published yet")
    return found


def load(uid: str, repository: str | Path | None = None, device: str = "auto") -> HubModel:
    """Loads a published model into the cache (downloading it the first time) and checks it builds.

    Args:
        uid: A uid, or `[subgroup.]name[@version]` (the latest version without one).
        repository: A folder or fsspec URL; by default those of `$SESEMI_REPOSITORIES`.
        device: auto (a GPU if there is one), cpu, cuda, cuda:1, ...

    Returns:
        The model (`predict(paths)`, `labels`, `config`, `module`, `info`).
    """
    import sesemi.hub as hub

    model = hub.load(uid, repository=repository, device=device)
    info = model.info
    _console().print(
        f"{info.reference} ({info.uid}): {len(info.labels)} classes ({', '.join(info.labels)}), in {model.path}",
        highlight=False,
        soft_wrap=True,  # the path stays whole, to copy
    )
    return model

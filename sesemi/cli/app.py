"""`sesemi`: the lifecycle command line (typer). Each command parses its arguments, calls the
library function its help names and prints what that returned; it imports nothing heavy before
it runs, so `sesemi --help` answers at once.
"""

from __future__ import annotations

import os
import shlex
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.filesize import decimal

from sesemi.cli import completion
from sesemi.cli.output import (
    echo,
    exit_on_user_error,
    key_values,
    print_table,
    progress,
)
from sesemi.errors import SesemiError
from sesemi.logs import counted, show_notices
from sesemi.version import __version__

SETTINGS: dict[str, Any] = {"no_args_is_help": True, "rich_markup_mode": "rich", "pretty_exceptions_show_locals": False}
app = typer.Typer(
    name="sesemi",
    epilog="Shell completion (commands, configs, method=NAME, group=NAME): `sesemi --install-completion` "
    "for this shell, or add to ~/.bashrc `eval \"$(_SESEMI_COMPLETE=source_bash sesemi)\"`, to ~/.zshrc "
    "`eval \"$(_SESEMI_COMPLETE=source_zsh sesemi)\"` (after compinit); fish: `_SESEMI_COMPLETE=source_fish "
    "sesemi > ~/.config/fish/completions/sesemi.fish`.",
    **SETTINGS,
)


def command(group: typer.Typer | None = None, **settings: Any) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """Registers a command (of `group`, default `sesemi`'s) that prints `error: ...` and exits
    with 1 on a user error."""
    return lambda function: (group or app).command(**settings)(exit_on_user_error()(function))


def _show_version(value: bool) -> None:
    if value:
        echo(f"sesemi {__version__}")
        raise typer.Exit()


@app.callback()
def _options(
    version: Annotated[
        bool, typer.Option("--version", callback=_show_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """Semi-supervised image and audio classification: the life of a project, from `sesemi create`
    to `sesemi publish`. Each command's help names the Python function it calls."""


RunsDir = Annotated[Path, typer.Argument(help="A folder of runs, e.g. runs or runs/digits.")]
DryRun = Annotated[bool, typer.Option("--dry-run", help="Only list what would be deleted.")]
Force = Annotated[bool, typer.Option("--force", help="Overwrite what exists.")]
ConfigDir = Annotated[Path | None, typer.Option("--config-dir", "-cd", help="A folder of your own configs.")]
Device = Annotated[str, typer.Option("--device", help="auto, cpu, cuda, cuda:1, ...")]
Model = Annotated[
    str, typer.Argument(help="A training run's folder, a checkpoint in it, or a published model's uid or name@version.")
]
Allow = Annotated[list[str] | None, typer.Option("--allow", help="Trust classes under this module prefix too (repeat).")]
Repository = Annotated[
    str | None, typer.Option("--repository", "-r", help="A folder or fsspec URL; default: those of $SESEMI_REPOSITORIES.")
]


@command()
def create(
    directory: Annotated[Path, typer.Argument(help="The project folder.")] = Path("."),
    force: Force = False,
) -> None:
    """Start a project: configs/custom.yaml (commented), data/, runs/, src/.

    Python: sesemi.ops.project.create_project

    Examples:
      $ sesemi create my-project
      $ sesemi create . --force      # rewrite configs/custom.yaml
    """
    from sesemi.ops.project import create_project

    root = create_project(directory, force=force)
    echo(f"created {root}/: configs/custom.yaml, data/, runs/, src/")
    echo(f"next: cd {shlex.quote(str(root))} && sesemi fetch digits && sesemi train -cd configs custom")


@command(name="list")
def list_(
    group: Annotated[
        str | None, typer.Argument(help="A config group: method, backbone, ...", autocompletion=completion.groups)
    ] = None,
    pattern: Annotated[str, typer.Option("--pattern", "-p", help="Shell-style pattern on the names.")] = "*",
) -> None:
    """List the built-in configs and methods, and what each is for.

    Python: sesemi.config.catalog.configs, sesemi.config.catalog.methods

    Examples:
      $ sesemi list                   # the data configs `sesemi train NAME` runs, and the methods
      $ sesemi list method            # method=NAME takes these
      $ sesemi list backbone --pattern 'resnet*'
    """
    from sesemi.config import catalog

    prefix = f"{group}/" if group else ""
    found = catalog.configs(group, pattern)
    rows = [(prefix + name, catalog.description(file.read_text())) for name, file in found.items()]
    if not rows:
        echo(f"no built-in config matches {pattern!r}")
        return
    print_table(["config", "description"], rows)
    if not group:
        echo(f"\nmethods (method=NAME): {', '.join(catalog.methods())}")
        echo(f"groups (sesemi list GROUP): {', '.join(catalog.groups())}")


@command()
def show(
    name: Annotated[
        str, typer.Argument(help="A built-in config, e.g. digits or method/flexmatch.", autocompletion=completion.config_names)
    ],
    save: Annotated[
        str | None, typer.Option("--save", help="Copy it to this file, or into this config folder as my_NAME.yaml.")
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite an earlier copy, never your own.")] = False,
) -> None:
    """Print a built-in config, or copy it out (its first line says from where) to start your own.

    Python: sesemi.config.catalog.config_file, sesemi.ops.project.save_config

    Examples:
      $ sesemi show method/fixmatch
      $ sesemi show digits --save configs/my_digits.yaml
      $ sesemi train -cd configs my_digits      # your copy, changed as you like
      $ sesemi show method/fixmatch --save configs   # configs/method/my_fixmatch.yaml
    """
    from sesemi.config import catalog
    from sesemi.ops.project import save_config

    if save is None:
        echo(catalog.config_file(name).read_text(), end="")
        return
    echo(f"saved {name} to {save_config(name, save, force=force)}")


@command()
def fetch(
    name: Annotated[str, typer.Argument(help="A built-in data set: digits, spoken_digits, imagewoof.")],
    data_dir: Annotated[Path, typer.Option("--data-dir", help="The folder of data sets.")] = Path("data"),
) -> None:
    """Build a built-in data set into data/ (or check one that must be downloaded).

    Safe to run in parallel: the data set is written once, under a lock.

    Python: sesemi.datasets.builtin.fetch

    Examples:
      $ sesemi fetch digits           # data/digits: train/, unlabeled/, val/
      $ sesemi fetch imagewoof        # says where to download it and how it is laid out
    """
    from sesemi.datasets.builtin import fetch as fetch_data

    target = fetch_data(name, data_dir)
    counts = ", ".join(
        f"{split.name}/ {sum(f.is_file() for f in split.rglob('*'))}" for split in sorted(target.iterdir()) if split.is_dir()
    )
    echo(f"{name} is ready in {target} (files: {counts})")


@command()
def train(
    config: Annotated[
        str | None,
        typer.Argument(
            help="A built-in config (sesemi list), one in --config-dir, or a config file (configs/custom.yaml).",
            autocompletion=completion.data_configs,
        ),
    ] = None,
    overrides: Annotated[
        list[str] | None,
        typer.Argument(
            help="Overrides: method=flexmatch, run.seed=1, backbone=resnet18, ...", autocompletion=completion.overrides
        ),
    ] = None,
    config_name: Annotated[str | None, typer.Option("--config-name", "-cn", help="The config, as open_sesemi takes it.")] = None,
    config_dir: ConfigDir = None,
    show_config: Annotated[bool, typer.Option("--show-config", help="Print the composed config and stop.")] = False,
    multirun: Annotated[bool, typer.Option("--multirun", "-m", hidden=True)] = False,  # Hydra's habit: say where sweeps are
) -> None:
    """Train (or evaluate) from a config: any data config x any method.

    Python: sesemi.train (sesemi.compose, then sesemi.run). Sweeps: open_sesemi -m.

    Examples:
      $ sesemi train digits method=freematch run.seed=1
      $ sesemi train -cd configs custom
      $ sesemi train digits --show-config        # the composed config
    """
    from omegaconf import OmegaConf

    from sesemi.config.compose import compose
    from sesemi.runner import run

    arguments = [config, *(overrides or [])] if config else []  # overrides come after a config
    if multirun:
        named = " ".join([config_name, *arguments] if config_name else arguments)
        folder = f"-cd {config_dir} " if config_dir else ""
        raise SesemiError(f"sesemi train runs one config; sweep with open_sesemi: open_sesemi {folder}-cn {named} -m")
    if config_name is None:
        if not arguments:
            raise typer.BadParameter("name a config, e.g. `sesemi train digits` (see `sesemi list`)")
        config_name, arguments = arguments[0], arguments[1:]
    composed = compose(config_name, arguments, config_dir)
    if show_config:
        echo(OmegaConf.to_yaml(composed), end="")
        return
    _print_result(run(composed))


def _print_result(result: Any) -> None:
    """`<run folder>: <metrics>`, once: each process of a multi-process run returns the result."""
    from pytorch_lightning.utilities.rank_zero import rank_zero_only

    if rank_zero_only.rank == 0:
        echo(f"{result.run_dir}: {_metrics(result.metrics) or 'no metrics'}")


def _metrics(metrics: dict[str, float]) -> str:
    return ", ".join(f"{k}={v:.4f}" for k, v in metrics.items())


@command()
def resume(
    run_dir: Annotated[Path, typer.Argument(help="The folder of a stopped run.")],
    allow: Allow = None,
) -> None:
    """Continue a stopped run (killed, interrupted or failed) from its newest checkpoint.

    It goes on in its folder with the same config, the same remaining steps and the same batches.

    Python: sesemi.resume

    Examples:
      $ sesemi resume runs/digits/flexmatch/2026-12-03_10-01-22-554444
    """
    from sesemi.runner import resume as resume_run

    _print_result(resume_run(run_dir, allow or ()))


@command(context_settings={"ignore_unknown_options": True})
def inference(
    model: Model,
    input: Annotated[Path, typer.Argument(help="A file, a folder (recursive), or a .txt file listing paths.")],
    settings: Annotated[
        list[str] | None,
        typer.Argument(help="checkpoint=last, window_seconds=2, hop_seconds=1, per_window=true, num_workers=2, on_error=raise"),
    ] = None,
    save_dir: Annotated[Path, typer.Option("--save-dir", help="Where predictions.csv goes.")] = Path("predictions"),
    device: Device = "auto",
    batch_size: Annotated[int, typer.Option("--batch-size", help="Inputs (audio windows) per forward pass.")] = 64,
    embeddings: Annotated[bool, typer.Option("--embeddings", help="Also write the features as embeddings.npy.")] = False,
    force: Annotated[bool, typer.Option("--force", help="Overwrite predictions sesemi wrote (in a folder it made).")] = False,
    tta: Annotated[
        bool,
        typer.Option(
            "--tta",
            help="Test-time augmentation: average over each image and its horizontal flip (audio: "
            "windows shifted by the training's max_shift). Refused for a model trained without flips (digits, text).",
        ),
    ] = False,
    repository: Repository = None,
    allow: Allow = None,
) -> None:
    """Predict image or audio files with a trained model, into predictions.csv.

    A row per file: path, label, score, one probability per class. Long recordings are
    predicted in sliding windows.

    Python: sesemi.predictor.load(...).predict_each(...), sesemi.predictor.write_predictions

    Examples:
      $ sesemi inference runs/digits/flexmatch/2026-11-23_16-09-06 data/new_images --save-dir out
      $ sesemi inference runs/spoken_digits/flexmatch/<time> recordings window_seconds=2 per_window=true
      $ sesemi inference digits-cnn@1.0.0 data/new_images -r models   # published (sesemi publish)
    """
    from sesemi.predictor import load, write_predictions

    options = key_values(InferenceSettings, settings or [], "inference")
    checkpoint = options.pop("checkpoint")
    predictor = load(model, device=device, checkpoint=checkpoint, allow=allow or (), repository=repository)
    per_window = options.pop("per_window")
    with progress("predicting") as report:
        predictions = predictor.predict_each(
            input, batch_size=batch_size, embeddings=embeddings, tta=tta, progress=report, **options
        )
        written = write_predictions(predictions, save_dir, predictor.labels, per_window, overwrite=force)
    skipped = f" ({written.failed} unreadable, skipped)" if written.failed else ""
    files = ", ".join(str(path) for path in written[:3] if path is not None)
    if not written.read:  # a script must not take an empty table for an answer
        raise SesemiError(f"no input could be read ({counted(written.failed, 'unreadable file')}; why: {written.unreadable})")
    echo(f"predicted {counted(written.read, 'file')}{skipped}: {files}")
    if written.out_of_class is not None:
        echo(f"{written.out_of_class} look out of class (out_of_class above 0.5 in predictions.csv)")


@dataclass
class InferenceSettings:
    """The `key=value` settings of `sesemi inference` (see `sesemi.predictor.Predictor.predict_each`)."""

    checkpoint: str = "best"  # or "last", for a run folder
    window_seconds: float | None = None  # audio; None: the run's clip length
    hop_seconds: float | None = None  # audio; None: half a window
    per_window: bool = False  # audio: a row per window (start, end), not the mean per file
    num_workers: int = 0  # loader processes that decode files
    on_error: str = "skip"  # or "raise" on the first unreadable file


@command(name="pseudo-label", context_settings={"ignore_unknown_options": True})
def pseudo_label(
    teacher: Annotated[Path, typer.Argument(help="The teacher: a training run's folder or a checkpoint in it.")],
    data_root: Annotated[Path, typer.Argument(help="The data set: train/<class>/ and unlabeled/.")],
    settings: Annotated[
        list[str] | None,
        typer.Argument(help="threshold=0.9, balance=true, per_class=100, soft_labels=false, include_labeled=false, ..."),
    ] = None,
    output_dir: Annotated[Path | None, typer.Option("--output-dir", help="Default: DATA_ROOT/pseudo.")] = None,
    allow: Allow = None,
) -> None:
    """Label the unlabeled images (or recordings) with a trained teacher, for a noisy student.

    Writes labels.csv (one row per file: label, confidence, probabilities) and dataset.json;
    train the student on it with `sesemi train digits_noisy_student` (or your own config; for
    audio see docs/methods/noisy_student.md).

    Python: sesemi.ops.pseudo_dataset.pseudo_dataset

    Examples:
      $ sesemi pseudo-label runs/digits/flexmatch/<time> data/digits
      $ sesemi pseudo-label runs/digits/flexmatch/<time> data/digits threshold=0.9 balance=true
      $ sesemi pseudo-label runs/digits/flexmatch/<time> data/digits --output-dir data/digits/pseudo2 overwrite=true
    """
    from sesemi.ops.pseudo_dataset import pseudo_dataset

    options = key_values(pseudo_dataset, settings or [], "pseudo-label", skip=("output_dir", "allow", "progress"))
    with progress("labeling") as report:
        written = pseudo_dataset(teacher, data_root, output_dir, **options, allow=allow or (), progress=report)
    counts, checked = written["counts"], written["teacher_on_val"]
    echo(
        f"{counts['pseudo_labeled']} pseudo-labels ({counts['below_threshold']} below the threshold, "
        f"{counts['dropped_by_balancing']} dropped by balancing) and {counts['labeled']} labeled files: "
        f"{output_dir or data_root / 'pseudo'}"
    )
    if checked and checked["sure"]:
        echo(
            f"on validation the teacher is right about {checked['sure_right']:.0%} of the {checked['sure']} "
            f"files (of {checked['files']}) it is {checked['threshold']:g} sure of"
        )
    elif checked and checked["files"]:
        echo(f"on validation the teacher is {checked['threshold']:g} sure of none of the {checked['files']} files")


@command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def preprocess(
    arguments: Annotated[list[str] | None, typer.Argument(help="A folder of recordings, or with -cn the config's overrides.")] = None,
    config_name: Annotated[str | None, typer.Option("--config-name", "-cn", help="An audio config, instead of a folder.")] = None,
    config_dir: ConfigDir = None,
    sample_rate: Annotated[int, typer.Option("--sample-rate", help="For a folder, in Hz.")] = 16000,
    cache_dir: Annotated[Path | None, typer.Option("--cache-dir", help="Default: FOLDER/.sesemi_cache/audio.")] = None,
    num_workers: Annotated[int, typer.Option("--num-workers", help="Decoding processes.")] = 0,
    on_error: Annotated[str, typer.Option("--on-error", help="skip unreadable files, or raise on the first.")] = "skip",
) -> None:
    """Decode and resample recordings once, into the cache audio training reads.

    Run it again after adding or changing files: only those are decoded.

    Python: sesemi.ops.preprocess.preprocess

    Examples:
      $ sesemi preprocess data/my_sounds --sample-rate 16000
      $ sesemi preprocess -cn audio run.data_root=data/my_sounds
      $ sesemi preprocess -cn spoken_digits --num-workers 2
    """
    from sesemi.ops.preprocess import preprocess as write_cache

    arguments = arguments or []
    if config_name is not None:
        from sesemi.config.compose import compose

        source: Any = compose(config_name, arguments, config_dir)
    elif len(arguments) == 1:
        source = arguments[0]
    else:
        raise SesemiError(f"give one folder of recordings (or a config with -cn), not {arguments or 'none'}")
    with progress("decoding") as report:
        results = write_cache(source, sample_rate, cache_dir, num_workers=num_workers, on_error=on_error, progress=report)
    for result in results:
        echo(
            f"{result.root} at {result.sample_rate} Hz: {result.written} decoded, {result.up_to_date} up to date, "
            f"{result.unreadable} unreadable, {result.removed} removed"
        )
        if note := result.kept_note():
            echo(note)


@command()
def postprocess(
    runs_dir: RunsDir,
    output_dir: Annotated[Path | None, typer.Option("--output-dir", "-o", help="Default: RUNS_DIR/summary.")] = None,
    by: Annotated[
        list[str] | None, typer.Option("--by", help="Config fields that define a configuration (repeat or comma-separate).")
    ] = None,
) -> None:
    """Summarize runs: a table (CSV, Markdown, screen), mean ± std over seeds, curves as PNG.

    Read from each run's config.yaml, results.json and metrics.csv.

    Python: sesemi.ops.postprocess.postprocess

    Examples:
      $ sesemi postprocess runs                     # writes runs/summary/
      $ sesemi postprocess runs/digits -o report
      $ sesemi postprocess runs --by learner.hparams.optimizer.lr
    """
    from sesemi.ops.postprocess import postprocess as summarize

    folder = output_dir or runs_dir / "summary"
    _print_summary(summarize(runs_dir, folder, _fields(by)), folder)


def _fields(by: list[str] | None) -> list[str]:
    """`["a,b", "c"]` -> `["a", "b", "c"]`: fields may be repeated or comma-separated."""
    return [field.strip() for item in by or () for field in item.split(",") if field.strip()]


def _print_summary(summary: Any, folder: Path) -> None:
    from sesemi.ops.postprocess import display

    runs = display(summary.runs, summary.metrics)
    print_table(list(runs.columns), runs.itertuples(index=False), title="runs")
    aggregated = display(summary.aggregated)
    print_table(list(aggregated.columns), aggregated.itertuples(index=False), title=f"mean ± std by {', '.join(summary.by)}")
    if summary.unfinished:
        echo(f"{counted(summary.unfinished, 'run')} without training results are left out (rm-failed deletes those that stopped)")
    if summary.evaluations:
        echo(f"left out {counted(summary.evaluations, 'evaluation run')} (run.mode=VALIDATE or TEST)")
    echo(f"wrote {folder}/: summary.csv, aggregated.csv, summary.md, {len(summary.plots)} plots/")


def _report(tidied: Any, dry_run: bool, what: str) -> None:
    for path in tidied.removed:
        echo(f"  {path}")
    verb = "would delete" if dry_run else "deleted"
    echo(f"{verb} {counted(len(tidied.removed), what)} ({decimal(tidied.size)})")
    if left := tidied.left_alone():
        echo(left)


@command(name="rm-failed")
def rm_failed(runs_dir: RunsDir, dry_run: DryRun = False) -> None:
    """Delete the folders of runs that stopped without finishing.

    Those failed, interrupted, or killed (marked running by a process that is gone). Only
    folders sesemi marked as runs go, never anything reached through a symlink; runs of earlier
    releases (no marker) are counted and left alone.

    Python: sesemi.ops.runs.remove_failed

    Examples:
      $ sesemi rm-failed runs --dry-run
      $ sesemi rm-failed runs
    """
    from sesemi.ops.runs import remove_failed

    _report(remove_failed(runs_dir, dry_run=dry_run), dry_run, "failed run")


@command(name="rm-states")
def rm_states(
    runs_dir: RunsDir,
    all_: Annotated[bool, typer.Option("--all", help="Also delete best.ckpt and last.ckpt.")] = False,
    dry_run: DryRun = False,
) -> None:
    """Delete the checkpoints of finished runs, except best.ckpt and last.ckpt.

    Only runs sesemi marked finished lose checkpoints, only those sesemi saved (their .sha256
    names their inode), never through a symlink; runs of earlier releases (no marker) and
    checkpoints sesemi cannot prove it saved are counted and left alone.

    Python: sesemi.ops.runs.remove_checkpoints

    Examples:
      $ sesemi rm-states runs --dry-run
      $ sesemi rm-states runs --all        # no checkpoints left at all
    """
    from sesemi.ops.runs import remove_checkpoints

    _report(remove_checkpoints(runs_dir, everything=all_, dry_run=dry_run), dry_run, "checkpoint")


@command()
def group(
    runs_dir: RunsDir,
    by: Annotated[list[str], typer.Option("--by", help="Config fields to group by (repeat or comma-separate), or `method`.")],
    name: Annotated[str, typer.Option("--name", help="The group's name.")],
    force: Annotated[bool, typer.Option("--force", help="Replace a group of that name (one sesemi made).")] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only list the folders it would make.")] = False,
) -> None:
    """Gather runs into RUNS_DIR/groups/NAME/, one folder of links per value, with a summary.

    Python: sesemi.ops.postprocess.group

    Examples:
      $ sesemi group runs --by learner.hparams.optimizer.lr --name lr-sweep
      $ sesemi group runs --by method,run.data_root --name methods --dry-run
    """
    from sesemi.ops.postprocess import group as gather

    made = gather(runs_dir, _fields(by), name, force=force, dry_run=dry_run)
    if made.summary is None:
        for label, members in made.members.items():
            echo(f"  {made.folder / label}/: {counted(len(members), 'run')}")
        replacing = " (replacing the group there)" if made.replaced else ""
        echo(f"would group {counted(sum(map(len, made.members.values())), 'run')} under {made.folder}{replacing}")
        return
    _print_summary(made.summary, made.folder / "summary")
    echo(f"grouped {counted(len(made.summary.runs), 'run')} under {made.folder}")


@command()
def publish(
    run: Annotated[Path, typer.Argument(help="A training run's folder, or a checkpoint in it.")],
    name: Annotated[str, typer.Option("--name", help="The model's name, e.g. digits-cnn.")],
    version: Annotated[str, typer.Option("--version", help="Its version, e.g. 1.0.0.")],
    repository: Annotated[str, typer.Option("--repository", "-r", help="A folder or fsspec URL (s3://bucket/models).")],
    subgroup: Annotated[str | None, typer.Option("--subgroup", help="Dot-separated groups, e.g. images.digits.")] = None,
    param: Annotated[
        list[str] | None, typer.Option("--param", help="key=value that tells it apart from models of its name (repeat).")
    ] = None,
    author: Annotated[str | None, typer.Option("--author", help="Who publishes it.")] = None,
    allow_unfinished: Annotated[
        bool, typer.Option("--allow-unfinished", help="Publish a run that is running, failed or was interrupted.")
    ] = False,
    allow: Allow = None,
) -> None:
    """Publish a run's model: its weights (safetensors), config, labels, metrics and a model card.

    The uid is a short hash of name, subgroup and params, then the version. Each version is final.
    Only finished runs are published (finish a stopped one with `sesemi resume RUN`).

    Python: sesemi.hub.publish

    Examples:
      $ sesemi publish runs/digits/flexmatch/2026-11-23_16-09-06 --name digits-cnn --version 1.0.0 -r models
      $ sesemi publish runs/digits/flexmatch/<time>/checkpoints/last.ckpt --name digits-cnn --version 1.1.0 -r s3://bucket/models
      $ sesemi publish runs/digits/flexmatch/<time> --name digits-cnn --version 2.0.0 -r models --param labels=50
    """
    import yaml

    from sesemi.hub import publish as publish_model

    malformed = [item for item in param or () if "=" not in item]
    if malformed:
        raise SesemiError(f"params are key=value, not {malformed[0]!r}")
    params = {key: yaml.safe_load(value) for key, _, value in (item.partition("=") for item in param or ())}
    uid = publish_model(
        run, name, version, repository, subgroup, params, author, allow=allow or (), allow_unfinished=allow_unfinished
    )
    reference = f"{subgroup}.{name}@{version}" if subgroup else f"{name}@{version}"
    echo(f"published {reference} as {uid} to {repository}")


@command()
def models(repository: Repository = None) -> None:
    """List the published models: uid, name@version, date, metrics, params.

    Python: sesemi.hub.models

    Examples:
      $ sesemi models -r /shared/models
      $ SESEMI_REPOSITORIES=/shared/models,s3://bucket/models sesemi models
    """
    from sesemi.hub import models as published

    found = published(repository)
    if not found:
        echo("no models published yet")
        return
    rows = [
        (info.uid, info.reference, info.date[:10], _metrics(info.metrics), ", ".join(f"{k}={v}" for k, v in info.params.items()))
        for info in found
    ]
    print_table(["uid", "model", "date", "metrics", "params"], rows)


@command()
def load(
    uid: Annotated[str, typer.Argument(help="A uid, or [subgroup.]name[@version].")],
    repository: Repository = None,
    device: Device = "auto",
    allow: Allow = None,
) -> None:
    """Download a published model into the cache ($SESEMI_CACHE_ROOT) and check that it builds.

    Python: sesemi.hub.load

    Examples:
      $ sesemi load 3f1c9a0e-1.0.0 -r /shared/models
      $ sesemi load digits-cnn@1.0.0       # from $SESEMI_REPOSITORIES
    """
    from sesemi.hub import load as load_model

    model = load_model(uid, device=device, allow=allow or (), repository=repository)
    info = model.info
    echo(f"{info.reference} ({info.uid}): {len(info.labels)} classes ({', '.join(info.labels)}), in {model.model.source}")


@command()
def export(
    model: Model,
    format: Annotated[
        str | None,
        typer.Option(
            "--format", "-f", help="onnx or torchscript; default: as --output's extension says (.onnx, .pt), else onnx.",
            autocompletion=completion.export_formats,
        ),
    ] = None,
    output: Annotated[
        str | None,
        typer.Option("--output", "-o", help="The model file, or a folder for it; default: model.onnx (.pt) in the run folder."),
    ] = None,
    checkpoint: Annotated[str, typer.Option("--checkpoint", help="For a run folder: best or last.")] = "best",
    force: Annotated[bool, typer.Option("--force", help="Replace an earlier export (never another file).")] = False,
    repository: Repository = None,
    allow: Allow = None,
) -> None:
    """Export a trained model to ONNX or TorchScript, to predict without sesemi.

    Beside the file, <file>.json says what the inputs must be (shape, resizing, mean and std,
    or sample rate) and lists the labels. ONNX needs `pip install 'sesemi\\[export]'`.

    Python: sesemi.export.export

    Examples:
      $ sesemi export runs/digits/flexmatch/<time>                  # .../model.onnx
      $ sesemi export runs/digits/flexmatch/<time> -o digits.pt                  # TorchScript
      $ sesemi export digits-cnn@1.0.0 -r /shared/models            # digits-cnn-1.0.0.onnx
    """
    from sesemi.export import export as export_model

    exported = export_model(
        model, format, output, force=force, checkpoint=checkpoint, allow=allow or (), repository=repository
    )
    echo(f"{'replaced' if exported.replaced else 'wrote'} {exported.path} and {exported.description_path}")


trust_app = typer.Typer(
    name="trust",
    help="Which classes models, checkpoints and run folders may build: sesemi's, torch's, "
    "torchvision's and timm's network and training classes, and the module paths you add.\n\n"
    "Python: sesemi.trust.add, sesemi.trust.remove, sesemi.trust.user_prefixes\n\n"
    "Examples:\n\n"
    "  $ sesemi trust add my_project.backbones\n\n"
    "  $ sesemi trust list\n\n"
    "  $ sesemi trust remove my_project.backbones",
    **SETTINGS,
)
app.add_typer(trust_app)
Prefix = Annotated[str, typer.Argument(help="A module path, e.g. my_project or my_project.backbones.")]


@command(group=trust_app, name="add")
def trust_add(prefix: Prefix) -> None:
    """Trust the classes under a module path when loading models, checkpoints and run folders.

    Only add the packages of publishers you trust: loading builds what their files name.

    Python: sesemi.trust.add

    Examples:
      $ sesemi trust add my_project.backbones
      $ sesemi load their-model@1.0.0
    """
    from sesemi.trust import add, check_prefix, trust_file, user_prefixes

    prefix = check_prefix(prefix)
    known = prefix in user_prefixes()
    add(prefix)
    echo(f"{'already trusted' if known else 'trusted'}: {prefix} (in {trust_file()})")


@command(group=trust_app, name="remove")
def trust_remove(prefix: Prefix) -> None:
    """Stop trusting a module path added with `sesemi trust add`.

    Python: sesemi.trust.remove

    Examples:
      $ sesemi trust remove my_project.backbones
    """
    from sesemi.trust import check_prefix, remove, trust_file

    remove(prefix)
    echo(f"no longer trusted: {check_prefix(prefix)} (in {trust_file()})")


@command(group=trust_app, name="list")
def trust_list() -> None:
    """List what files may build: sesemi's own rules, then the module paths you added.

    Python: sesemi.trust.BUILDING_BLOCKS, sesemi.trust.user_prefixes

    Examples:
      $ sesemi trust list
    """
    from sesemi.trust import BUILDING_BLOCKS, TRACKERS, trust_file, user_prefixes

    rows = [(prefix, "sesemi") for prefix in BUILDING_BLOCKS]
    rows += [(prefix, "sesemi, as a run's loggers.<name>") for prefix in TRACKERS]
    rows += [(prefix, f"you ({trust_file()})") for prefix in user_prefixes()]
    print_table(["trusted", "by"], rows)


def main() -> None:
    """The `sesemi` console script."""
    sys.path.append(os.getcwd())  # a project's src/ modules, as for open_sesemi (last: never in place of a library)
    show_notices(results=False)
    app()

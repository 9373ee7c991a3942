"""`sesemi`: the lifecycle command line (typer), one command per function of `sesemi.cli.functions`.

Nothing heavy is imported until a command runs, so `sesemi --help` answers at once.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

from sesemi.cli import functions
from sesemi.errors import SesemiError
from sesemi.version import __version__

app = typer.Typer(
    name="sesemi",
    help="Semi-supervised image and audio classification: the life of a project, from "
    "`sesemi create` to `sesemi postprocess`. Every command is also a Python function: "
    "sesemi.cli.train(...), sesemi.cli.postprocess(...), ...",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode="rich",
    pretty_exceptions_show_locals=False,
)


def _error_message(error: Exception) -> str | None:
    """The one line to print for an error the user can fix, or None for a bug."""
    from hydra.errors import CompactHydraException

    from sesemi.cli.open_sesemi import user_error

    message = user_error(error)
    if message is None and isinstance(error, CompactHydraException):  # a bad override, say
        cause = f" ({str(error.__cause__).splitlines()[0]})" if error.__cause__ else ""
        message = " ".join(str(error).split()) + cause
    return message


def command(**settings: Any) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """Registers a command that prints `error: ...` and exits with 1 on a user error
    (a traceback with HYDRA_FULL_ERROR=1), like `open_sesemi`."""

    def register(function: Callable[..., None]) -> Callable[..., None]:
        @functools.wraps(function)
        def run(*args: Any, **kwargs: Any) -> None:
            try:
                function(*args, **kwargs)
            except Exception as error:
                message = _error_message(error)
                if message is None or os.environ.get("HYDRA_FULL_ERROR") == "1":
                    raise
                typer.echo(f"error: {message}", err=True)
                raise typer.Exit(1) from None

        return app.command(**settings)(run)

    return register


def _show_version(value: bool) -> None:
    if value:
        typer.echo(f"sesemi {__version__}")
        raise typer.Exit()


@app.callback()
def _options(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_show_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """Semi-supervised image and audio classification: `sesemi create` to `sesemi postprocess`."""


RunsDir = Annotated[Path, typer.Argument(help="A folder of runs, e.g. runs or runs/digits.")]
DryRun = Annotated[bool, typer.Option("--dry-run", help="Only list what would be deleted.")]
Force = Annotated[bool, typer.Option("--force", help="Overwrite what exists.")]
DATA = Path("data")


@command()
def create(
    directory: Annotated[Path, typer.Argument(help="The project folder.")] = Path("."),
    force: Force = False,
) -> None:
    """Start a project: configs/custom.yaml (commented, starts from `base`), data/, runs/, src/.

    Examples:
      $ sesemi create my-project
      $ sesemi create . --force      # rewrite configs/custom.yaml
    """
    functions.create(directory, force=force)


@command(name="list")
def list_(
    group: Annotated[
        str | None, typer.Argument(help="A config group: backbone, dataset, ops, ...")
    ] = None,
    pattern: Annotated[
        str, typer.Option("--pattern", "-p", help="Shell-style pattern on the names.")
    ] = "*",
) -> None:
    """List the built-in configs and what each is for.

    Examples:
      $ sesemi list                   # the configs `sesemi train -cn NAME` runs
      $ sesemi list --pattern '*digits*'
      $ sesemi list method            # the methods any config takes: -cn digits method=NAME
      $ sesemi list backbone
    """
    functions.list(group, pattern=pattern)


@command()
def show(
    name: Annotated[
        str, typer.Argument(help="A built-in config, e.g. digits or backbone/resnet18.")
    ],
    save: Annotated[
        Path | None, typer.Option("--save", help="Copy it to this file or folder.")
    ] = None,
    force: Force = False,
) -> None:
    """Print a built-in config, or copy it out to start your own from.

    Examples:
      $ sesemi show fixmatch
      $ sesemi show digits --save configs/my_digits.yaml
      $ sesemi train -cd configs -cn my_digits      # your copy, changed as you like
    """
    functions.show(name, save=save, force=force)


@command()
def fetch(
    name: Annotated[str, typer.Argument(help="A built-in data set: digits, imagewoof, ...")],
    data_dir: Annotated[Path, typer.Option("--data-dir", help="The folder of data sets.")] = DATA,
) -> None:
    """Build a built-in data set into data/ (or check one that must be downloaded).

    Safe to run in parallel: the data set is written once, under a lock.

    Examples:
      $ sesemi fetch digits           # data/digits: train/, unlabeled/, val/
      $ sesemi fetch imagewoof        # says where to download it and how it is laid out
    """
    functions.fetch(name, data_dir=data_dir)


@command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def train(
    config_name: Annotated[
        str | None,
        typer.Option("--config-name", "-cn", help="A built-in config or one in --config-dir."),
    ] = None,
    config_dir: Annotated[
        Path | None, typer.Option("--config-dir", "-cd", help="A folder of your own configs.")
    ] = None,
    overrides: Annotated[
        list[str] | None,
        typer.Argument(help="Hydra overrides (run.seed=1) and flags (--info, --cfg job, -m)."),
    ] = None,
) -> None:
    """Train from a config: the same as open_sesemi, with the same arguments.

    Examples:
      $ sesemi train -cn digits
      $ sesemi train -cn digits run.num_iterations=500 run.seed=1
      $ sesemi train -cd configs -cn custom
      $ sesemi train -cn digits --cfg job      # print the composed config
      $ sesemi train -cn digits -m run.seed=1,2,3   # a sweep
      $ sesemi train -h                        # the config groups (Hydra's help)
    """
    functions.train(config_name, config_dir=config_dir, overrides=overrides)


@command(context_settings={"ignore_unknown_options": True})
def inference(
    model: Annotated[
        str,
        typer.Argument(
            help="A training run's folder, a checkpoint in it, or a published model's uid or name@version."
        ),
    ],
    input: Annotated[
        Path, typer.Argument(help="A file, a folder (recursive), or a .txt file listing paths.")
    ],
    overrides: Annotated[
        list[str] | None,
        typer.Argument(
            help="checkpoint=last, window_seconds=2, hop_seconds=1, per_window=true, "
            "num_workers=2, on_error=raise"
        ),
    ] = None,
    save_dir: Annotated[
        Path, typer.Option("--save-dir", help="Where predictions.csv goes.")
    ] = Path("predictions"),
    device: Annotated[str, typer.Option("--device", help="auto, cpu, cuda, cuda:1, ...")] = "auto",
    batch_size: Annotated[
        int, typer.Option("--batch-size", help="Inputs (audio windows) per forward pass.")
    ] = 64,
    embeddings: Annotated[
        bool, typer.Option("--embeddings", help="Also write the features as embeddings.npy.")
    ] = False,
    force: Force = False,
    tta: Annotated[
        bool,
        typer.Option(
            "--tta",
            help="Test-time augmentation: average over each image and its horizontal flip (audio: "
            "windows shifted by the training's max_shift). Not for text or digits.",
        ),
    ] = False,
) -> None:
    """Predict image or audio files with a trained run: predictions.csv (path, label, score, one
    probability per class).

    Long recordings are predicted in sliding windows whose probabilities are averaged.

    Examples:
      $ sesemi inference runs/digits/2026-11-23_16-09-06 data/new_images --save-dir out
      $ sesemi inference runs/digits/2026-11-23_16-09-06/checkpoints/last.ckpt files.txt
      $ sesemi inference runs/spoken_digits/<time> recordings window_seconds=2 per_window=true
      $ sesemi inference runs/digits/<time> data/new_images --embeddings --force
      $ sesemi inference runs/pets/<time> photos --tta     # average with horizontal flips
      $ sesemi inference digits-cnn@1.0.0 data/new_images    # published (sesemi publish, sesemi load)
    """
    functions.inference(
        model,
        input,
        overrides,
        save_dir=save_dir,
        device=device,
        batch_size=batch_size,
        embeddings=embeddings,
        force=force,
        tta=tta,
    )


@command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def preprocess(
    arguments: Annotated[
        list[str] | None,
        typer.Argument(help="A folder of recordings, or with -cn the config's overrides."),
    ] = None,
    config_name: Annotated[
        str | None,
        typer.Option("--config-name", "-cn", help="An audio config, instead of a folder."),
    ] = None,
    config_dir: Annotated[
        Path | None, typer.Option("--config-dir", "-cd", help="A folder of your own configs.")
    ] = None,
    sample_rate: Annotated[int, typer.Option("--sample-rate", help="For a folder, in Hz.")] = 16000,
    cache_dir: Annotated[
        Path | None, typer.Option("--cache-dir", help="Default: FOLDER/.sesemi_cache/audio.")
    ] = None,
    num_workers: Annotated[int, typer.Option("--num-workers", help="Decoding processes.")] = 0,
    on_error: Annotated[
        str, typer.Option("--on-error", help="skip unreadable files, or raise on the first.")
    ] = "skip",
) -> None:
    """Decode and resample recordings once, into the cache audio training reads.

    Run it again after adding or changing files: only those are decoded.

    Examples:
      $ sesemi preprocess data/my_sounds --sample-rate 16000
      $ sesemi preprocess -cn audio run.data_root=data/my_sounds
      $ sesemi preprocess -cn spoken_digits --num-workers 2
    """
    arguments = arguments or []
    if config_name is None and len(arguments) > 1:
        raise SesemiError(f"give one folder of recordings (or a config with -cn), not {arguments}")
    functions.preprocess(
        None if config_name or not arguments else arguments[0],
        config_name=config_name,
        config_dir=config_dir,
        overrides=arguments if config_name else None,
        sample_rate=sample_rate,
        cache_dir=cache_dir,
        num_workers=num_workers,
        on_error=on_error,
    )


@command()
def postprocess(
    runs_dir: RunsDir,
    output_dir: Annotated[
        Path | None, typer.Option("--output-dir", "-o", help="Default: RUNS_DIR/summary.")
    ] = None,
    by: Annotated[
        list[str] | None,
        typer.Option(
            "--by", help="Config fields that define a configuration (repeat or comma-separate)."
        ),
    ] = None,
) -> None:
    """Summarize runs: a table (CSV, Markdown, screen), mean ± std over seeds, curves as PNG.

    Reads only the files runs write (config.yaml, results.json, metrics.csv).

    Examples:
      $ sesemi postprocess runs                     # writes runs/summary/
      $ sesemi postprocess runs/digits -o report
      $ sesemi postprocess runs --by learner.hparams.optimizer.lr
    """
    functions.postprocess(runs_dir, output_dir=output_dir, by=by)


@command(name="rm-failed")
def rm_failed(runs_dir: RunsDir, dry_run: DryRun = False) -> None:
    """Delete the run folders without results.json (failed or killed runs).

    A run still training has none either: do not use it while runs are going.

    Examples:
      $ sesemi rm-failed runs --dry-run
      $ sesemi rm-failed runs
    """
    functions.rm_failed(runs_dir, dry_run=dry_run)


@command(name="rm-states")
def rm_states(
    runs_dir: RunsDir,
    all_: Annotated[
        bool, typer.Option("--all", help="Also delete best.ckpt and last.ckpt.")
    ] = False,
    dry_run: DryRun = False,
) -> None:
    """Delete the checkpoints of finished runs, except best.ckpt and last.ckpt.

    Examples:
      $ sesemi rm-states runs --dry-run
      $ sesemi rm-states runs --all        # no checkpoints left at all
    """
    functions.rm_states(runs_dir, all=all_, dry_run=dry_run)


@command()
def group(
    runs_dir: RunsDir,
    by: Annotated[
        list[str],
        typer.Option(
            "--by", help="Config fields to group by (repeat or comma-separate), or `method`."
        ),
    ],
    name: Annotated[str, typer.Option("--name", help="The group's name.")],
    force: Annotated[bool, typer.Option("--force", help="Replace a group of that name.")] = False,
) -> None:
    """Gather runs into RUNS_DIR/groups/NAME/, one folder of links per value, with a summary.

    Examples:
      $ sesemi group runs --by learner.hparams.optimizer.lr --name lr-sweep
      $ sesemi group runs --by method,run.data_root --name methods
    """
    functions.group(runs_dir, by=by, name=name, force=force)


Repository = Annotated[
    str | None,
    typer.Option(
        "--repository", "-r", help="A folder or fsspec URL; default: those of $SESEMI_REPOSITORIES."
    ),
]


@command()
def publish(
    run: Annotated[Path, typer.Argument(help="A training run's folder, or a checkpoint in it.")],
    name: Annotated[str, typer.Option("--name", help="The model's name, e.g. digits-cnn.")],
    version: Annotated[str, typer.Option("--version", help="Its version, e.g. 1.0.0.")],
    repository: Annotated[
        str, typer.Option("--repository", "-r", help="A folder or fsspec URL (s3://bucket/models).")
    ],
    subgroup: Annotated[
        str | None, typer.Option("--subgroup", help="Dot-separated groups, e.g. images.digits.")
    ] = None,
    param: Annotated[
        list[str] | None,
        typer.Option("--param", help="key=value that tells it apart from models of its name (repeat)."),
    ] = None,
    author: Annotated[str | None, typer.Option("--author", help="Who publishes it.")] = None,
) -> None:
    """Publish a run's model: its weights (safetensors), config, labels, metrics and a model card.

    The uid is a short hash of name, subgroup and params, then the version. Each version is final.

    Examples:
      $ sesemi publish runs/digits/2026-11-23_16-09-06 --name digits-cnn --version 1.0.0 -r models
      $ sesemi publish runs/digits/<time>/checkpoints/last.ckpt --name digits-cnn --version 1.1.0 -r s3://bucket/models
      $ sesemi publish runs/digits/<time> --name digits-cnn --version 2.0.0 -r models --param labels=50
    """
    functions.publish(run, name, version, repository, subgroup=subgroup, params=param, author=author)


@command()
def models(repository: Repository = None) -> None:
    """List the published models: uid, name@version, date, metrics, params.

    Examples:
      $ sesemi models -r /shared/models
      $ SESEMI_REPOSITORIES=/shared/models,s3://bucket/models sesemi models
    """
    functions.models(repository)


@command()
def load(
    uid: Annotated[str, typer.Argument(help="A uid, or [subgroup.]name[@version].")],
    repository: Repository = None,
    device: Annotated[str, typer.Option("--device", help="auto, cpu, cuda, cuda:1, ...")] = "auto",
) -> None:
    """Download a published model into the cache ($SESEMI_CACHE_ROOT) and check that it builds.

    Examples:
      $ sesemi load 3f1c9a0e-1.0.0 -r /shared/models
      $ sesemi load digits-cnn@1.0.0       # from $SESEMI_REPOSITORIES
      $ sesemi inference digits-cnn@1.0.0 new_images --save-dir out
    """
    functions.load(uid, repository=repository, device=device)


def main() -> None:
    """The `sesemi` console script."""
    app()

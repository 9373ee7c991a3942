"""`open_sesemi`: the Hydra app that trains and evaluates from a config.

    open_sesemi -cn digits                       # a built-in config
    open_sesemi -cn digits method=freematch      # any data config x any method
    open_sesemi -cd configs -cn custom           # your own config (starts with `defaults: [image]`)
    open_sesemi -cn digits --info                # the composed config
    open_sesemi -cn digits -m run.seed=0,1,2     # a sweep

It composes with Hydra (keeping Hydra's command line: -cn, -cd, --info, --cfg, -m) and runs
the config with `sesemi.run`, like every other way in.
"""

from __future__ import annotations

import io
import os
import sys
from contextlib import nullcontext, redirect_stderr
from pathlib import Path

import hydra
from hydra._internal.utils import get_args_parser  # the parser @hydra.main reads argv with
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from sesemi.cli.output import exit_on_user_error
from sesemi.config import register_configs, register_resolvers
from sesemi.config.compose import check_config_dir, check_group_choices, expand_alias, one_length
from sesemi.run_folder import check_named_folder, claim_folder, note_unmade


@hydra.main(version_base="1.3", config_path="pkg://sesemi.configs", config_name="sesemi_config")
def _app(config: DictConfig) -> None:
    hydra_config = HydraConfig.get()
    run_dir = Path(hydra_config.runtime.output_dir)
    # In a sweep, Hydra names the failed job's overrides before its error; alone, the error is one
    # line, without Hydra's "Error executing job" before it.
    multirun = hydra_config.mode == RunMode.MULTIRUN
    with nullcontext() if multirun else exit_on_user_error():
        claim_folder(run_dir)  # Hydra made it (or was given one of someone else's: refused)
        from sesemi.runner import run  # seconds of imports: the folder is the run's own by then

        run(config, run_dir)  # a mistake in the config or data leaves no folder behind


def check_named_folders(arguments: list[str]) -> None:
    """Checks the folders given by hand as `hydra.run.dir=` (a sweep's `hydra.sweep.dir=`)
    before Hydra writes its `.hydra/` and log into them: one that holds a run or files of
    someone else's is refused untouched (`check_named_folder`)."""
    for argument in arguments:
        key, equals, value = argument.partition("=")
        if not equals or "${" in value or value[:1] in "'\"":  # resolved or quoted: Hydra's to read
            continue
        if key.lstrip("+") == "hydra.run.dir" and "-m" not in arguments and "--multirun" not in arguments:
            check_named_folder(value)
        elif key.lstrip("+") == "hydra.sweep.dir":
            note_unmade(value)


def option(arguments: list[str], names: tuple[str, ...]) -> tuple[int, str] | None:
    """The position and value of an option given by any of `names`, as `-cd DIR` or `--config-dir=DIR`."""
    for index, argument in enumerate(arguments):
        if argument in names and index + 1 < len(arguments):
            return index + 1, arguments[index + 1]
        key, equals, value = argument.partition("=")
        if equals and key in names:
            return index, value
    return None


def expand_arguments(arguments: list[str]) -> list[str]:
    """The command line as Hydra's parser takes it: the options, then the overrides (it refuses
    overrides after an option, as in `-cn digits method=fixmatch -m run.seed=0,1`, and reads one
    after a bare `--info` as its value), with an earlier release's config name (`-cn
    digits_fixmatch`) replaced by what it stands for (`-cn digits method=fixmatch`) and a
    length given replacing the config's (`compose.one_length`), after checking the config folder."""
    arguments = [
        "--info=all" if argument in ("--info", "-i") and "=" in following else argument  # `--info run.seed=1`
        for argument, following in zip(arguments, [*arguments[1:], ""], strict=True)
    ]
    try:
        with redirect_stderr(io.StringIO()):
            parsed = get_args_parser().parse_intermixed_args(arguments)
    except SystemExit:
        return arguments  # Hydra's parser says what is wrong when it reads them
    check_config_dir(parsed.config_dir)
    check_group_choices(parsed.overrides)
    options = list(arguments)
    for override in parsed.overrides:
        options.remove(override)
    overrides = one_length(parsed.overrides)
    if parsed.config_name is None:
        return options + overrides
    data, overrides = expand_alias(parsed.config_name, overrides, parsed.config_dir)
    name = option(options, ("-cn", "--config-name"))
    if data != parsed.config_name and name is not None:
        position, value = name
        options[position] = options[position].removesuffix(value) + data
    return options + overrides


def usage() -> str:
    """`open_sesemi --help`: the ways to call it, then the built-in configs and groups, read from
    the packaged folders (Hydra's own help copies its config repository per group: a second)."""
    from sesemi.config.catalog import configs, data_configs, groups
    from sesemi.config.store import GROUPS

    lines = [
        "Usage:",
        __doc__.split("\n\n")[1],
        "",
        "Configs (-cn NAME): " + ", ".join(data_configs()),
        "Groups (GROUP=NAME):",
    ]
    options = {group: list(configs(group)) for group in groups() if group != "hydra"}
    options.update({group: list(stored) for group, stored in GROUPS.items()})
    lines += [f"  {group}: {', '.join(names)}" for group, names in sorted(options.items())]
    lines += [
        "",
        "A composed config, every key you can override: open_sesemi -cn digits --cfg job",
        "Hydra's flags: open_sesemi --hydra-help; the other commands: sesemi --help",
    ]
    return "\n".join(lines)


def main() -> None:
    """The `open_sesemi` console script."""
    # Make modules of the working directory (a project's src/) importable, so configs can name
    # them as `_target_: src.my_module.MyBackbone`; searched last, so that a file there (a
    # download named yaml.py) never stands in for a library.
    sys.path.append(os.getcwd())
    if "--version" in sys.argv[1:]:  # sesemi's version, not Hydra's
        from sesemi.version import __version__

        print(f"open_sesemi (sesemi {__version__})")
        return
    if {"--help", "-h"} & set(sys.argv[1:]):
        print(usage())
        return
    given = option(sys.argv[1:], ("-cd", "--config-dir"))
    with exit_on_user_error(given[1] if given else None):
        sys.argv = [sys.argv[0], *expand_arguments(sys.argv[1:])]
        check_named_folders(sys.argv[1:])
        register_configs()
        register_resolvers()
        _app()


if __name__ == "__main__":
    main()

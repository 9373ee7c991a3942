"""`open_sesemi`: the Hydra app that trains and evaluates from a config.

    open_sesemi -cn digits                       # a built-in config
    open_sesemi -cd configs -cn custom           # your own config (starts with `defaults: [base]`)
    open_sesemi -cn digits run.num_iterations=500 backbone=resnet18
    open_sesemi -cn digits --info                # the composed config
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.errors import InstantiationException
from omegaconf import DictConfig, OmegaConf

from sesemi.cli.project import check_config_dir
from sesemi.config import register_configs, register_resolvers
from sesemi.errors import SesemiError


def user_error(error: BaseException) -> str | None:
    """The one-line message of an error the user can fix, or None for a bug."""
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, SesemiError):
            message = str(error)
            if "Original Traceback" in message:  # re-raised from a DataLoader worker
                message = message.strip().splitlines()[-1].split("SesemiError: ", 1)[-1]
            return message
        if isinstance(error, InstantiationException):
            inner = user_error(error.__cause__) if error.__cause__ else None
            return inner or " ".join(str(error).split())
        error = error.__cause__ or error.__context__
    return None


def run(config: DictConfig, output_dir: Path) -> object:
    """Trains/evaluates a `SESEMIConfig`, or calls the operation an ops config targets."""
    if "learner" in config:
        from sesemi.runner import execute

        return execute(config, output_dir)
    if "_target_" in config:  # configs/ops/*: the op function takes the config's fields
        from hydra.utils import instantiate

        missing = sorted(OmegaConf.missing_keys(config))
        if missing:
            raise SesemiError(f"the config leaves required values unset: {', '.join(missing)}")
        return instantiate(config)
    raise SesemiError("this config is neither a training config (no `learner`) nor an operation (no `_target_`)")


@contextmanager
def _reported_as_one_line() -> Iterator[None]:
    """Errors the user can fix end the program with `error: ...`; bugs keep their traceback."""
    try:
        yield
    except Exception as error:
        message = user_error(error)
        if message is None or os.environ.get("HYDRA_FULL_ERROR") == "1":
            raise
        print(f"error: {message}", file=sys.stderr)
        sys.exit(1)


@hydra.main(version_base="1.3", config_path="pkg://sesemi.configs", config_name="sesemi_config")
def _app(config: DictConfig) -> None:
    with _reported_as_one_line():
        run(config, Path(HydraConfig.get().runtime.output_dir))


def option(arguments: list[str], *names: str) -> str | None:
    """The value of an option given by any of `names`, as `-cd DIR` or `--config-dir=DIR`."""
    for index, argument in enumerate(arguments):
        if argument in names and index + 1 < len(arguments):
            return arguments[index + 1]
        key, equals, value = argument.partition("=")
        if equals and key in names:
            return value
    return None


def main() -> None:
    """The `open_sesemi` console script."""
    # Like `python -m`, make modules of the working directory (a project's src/) importable, so
    # configs can name them as `_target_: src.my_module.MyBackbone`.
    sys.path.insert(0, os.getcwd())
    arguments = sys.argv[1:]
    with _reported_as_one_line():
        check_config_dir(option(arguments, "-cn", "--config-name"), option(arguments, "-cd", "--config-dir"))
    register_configs()
    register_resolvers()
    _app()


if __name__ == "__main__":
    main()

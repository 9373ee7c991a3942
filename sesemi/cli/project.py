"""The built-in configs: as files (for `sesemi list` and `show`), composed (for commands that
read a config), and the project `sesemi create` starts."""

from __future__ import annotations

import difflib
import logging
import re
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

from sesemi.errors import SesemiError

if TYPE_CHECKING:
    from importlib.resources.abc import Traversable

    from omegaconf import DictConfig

logger = logging.getLogger(__name__)

PROJECT_FOLDERS = ("configs", "data", "runs", "src")
# A full stop (not of "et al.") before a capital or a number, or a colon before a spaced-out layout.
SENTENCE_END = re.compile(r"(?<=\.)(?<! al\.)\s+(?=[A-Z0-9])|:\s{2,}")

CUSTOM_CONFIG = """\
# Your experiment: the built-in `base` config (supervised + rotation prediction on a ResNet-50d)
# with what differs from it overridden below. Every field is listed, with its default, by
#   sesemi train -cd configs -cn custom --cfg job
# and any of them can be changed on the command line, e.g. `run.seed=1`.
#
#   sesemi fetch digits                   # the embedded demo data, into data/digits
#   sesemi train -cd configs -cn custom   # trains; the run goes to runs/custom/<timestamp>/
#   sesemi postprocess runs               # tables and curves of all runs
#
# Other starting points: `sesemi list` (e.g. image, digits), `sesemi show image`; another method
# with `method=NAME` on the command line or `override method: NAME` below (`sesemi list method`).
defaults:
  - base
  - override backbone: convnet_small  # small images; resnet18 or resnet50d for photos
  - _self_

run:
  id: custom
  seed: 42
  # train/<class>/*.png (labeled), unlabeled/*.png, val/<class>/*.png
  data_root: ./data/digits
  num_epochs: null
  num_iterations: 1000
  batch_size_per_gpu: 32
data:
  views:  # the transforms every loader and method reads by name
    weak:  # 32 px crops of 32 px images; the defaults suit 224 px photos
      random_resized_crop: False
      resize: 32
      crop_dim: 32
      padding: 2
      p_hflip: 0.0  # flipped digits are other symbols
    eval:
      resize: 32
      crop_dim: 32
  train:
    supervised:
      num_workers: 0  # the methods' loaders load as the supervised one does
  val:
    num_workers: 0
# Modules of your own go in src/ and are named from here, e.g.
#   learner.hparams.model.backbone._target_: src.my_backbones.MyBackbone
"""


def builtin_configs(group: str | None = None) -> dict[str, Traversable]:
    """The built-in config files of a group (None: the top-level, runnable ones), by name."""
    folder = resources.files("sesemi.configs")
    if group:
        groups = builtin_groups()
        if group not in groups:
            raise SesemiError(f"no config group {group!r}; the groups are: {', '.join(groups)}")
        folder = folder.joinpath(group)
    return {
        entry.name.removesuffix(".yaml"): entry
        for entry in sorted(folder.iterdir(), key=lambda e: e.name)
        if entry.is_file() and entry.name.endswith(".yaml")
    }


def builtin_groups() -> list[str]:
    """The config groups: the folders of the built-in configs (backbone, dataset, ops, ...)."""
    folder = resources.files("sesemi.configs")
    return sorted(e.name for e in folder.iterdir() if e.is_dir() and not e.name.startswith("__"))


def builtin_config(name: str) -> Traversable:
    """The file of a built-in config such as `digits` or `backbone/resnet18`."""
    group, _, stem = name.removesuffix(".yaml").rpartition("/")
    configs = builtin_configs(group or None)
    if stem not in configs:
        close = difflib.get_close_matches(stem, configs, n=3)
        hint = f"did you mean {', '.join(close)}? " if close else ""
        raise SesemiError(f"no built-in config {name!r}; {hint}see `sesemi list`")
    return configs[stem]


def description(text: str) -> str:
    """The first sentence of a config's leading comment: what the config is for."""
    lines = []
    for line in text.splitlines():
        if not line.startswith("#") or line.startswith("#  "):  # the config, or an example
            break
        if not line.startswith("# @package"):
            lines.append(line[1:].strip())
    return SENTENCE_END.split(" ".join(lines), maxsplit=1)[0].rstrip(":")


def shadowed_configs(config_dir: str | Path) -> list[str]:
    """The configs of `config_dir` that Hydra never reads, as it finds a built-in of that name first."""
    root = Path(config_dir)
    builtins = {None: builtin_configs()} | {group: builtin_configs(group) for group in builtin_groups()}
    shadowed = []
    for path in sorted(root.rglob("*.yaml")):
        group, _, stem = path.relative_to(root).with_suffix("").as_posix().rpartition("/")
        if stem in builtins.get(group or None, {}):
            shadowed.append(f"{group}/{stem}" if group else stem)
    return shadowed


def check_config_dir(config_name: str | None, config_dir: str | Path | None) -> None:
    """Fails if `-cd config_dir` is no folder, or its `-cn config_name` would lose to a built-in."""
    if config_dir is None:
        return
    if not Path(config_dir).is_dir():
        raise SesemiError(f"config folder {str(config_dir)!r} not found (from -cd); check the path")
    shadowed = shadowed_configs(config_dir)
    name = (config_name or "").removesuffix(".yaml")
    if name in shadowed:
        raise SesemiError(
            f"{Path(config_dir) / name}.yaml has the name of a built-in config, which Hydra reads "
            f"instead; rename yours (e.g. my_{name.rpartition('/')[2]}.yaml)"
        )
    if shadowed:
        files = ", ".join(str(Path(config_dir) / f"{other}.yaml") for other in shadowed)
        logger.warning("not read, as built-in configs of the same names come first (rename them): %s", files)


def compose(
    config_name: str, config_dir: str | Path | None = None, overrides: Sequence[str] = ()
) -> DictConfig:
    """The config `open_sesemi -cn NAME -cd DIR OVERRIDES...` runs (interpolations unresolved)."""
    check_config_dir(config_name, config_dir)
    from hydra import compose as hydra_compose
    from hydra import initialize_config_module
    from hydra.core.global_hydra import GlobalHydra

    from sesemi.config import register_configs, register_resolvers

    register_configs()
    register_resolvers()
    search = [f"hydra.searchpath=[file://{Path(config_dir).absolute()}]"] if config_dir else []
    GlobalHydra.instance().clear()  # a run in this process leaves Hydra initialized
    with initialize_config_module("sesemi.configs", version_base="1.3"):
        return hydra_compose(config_name, overrides=[*search, *overrides])

"""A user's project folder: `sesemi create` starts one, `sesemi show --save` copies configs into it.

    my-project/
      configs/   your Hydra configs (custom.yaml to start from)
      data/      data sets, in the standard layout
      runs/      what sesemi writes: checkpoints, metrics, configs
      src/       your own modules, which configs can name as `_target_: src.module.Class`
"""

from __future__ import annotations

import os
from contextlib import suppress
from pathlib import Path

from sesemi.config import catalog
from sesemi.errors import SesemiError
from sesemi.ownership import write_atomically

PROJECT_FOLDERS = ("configs", "data", "runs", "src")
# The first line of a copied config (after Hydra's `# @package` header): `--force` overwrites
# only a file that has it, never one of the user's own.
COPIED = "# Copied from sesemi's built-in config"

CREATED = "# Written by `sesemi create`"
CUSTOM_CONFIG = f"""\
{CREATED}: your experiment, the built-in `base` config (supervised + rotation prediction on a ResNet-50d)
# with what differs from it overridden below. Every field is listed, with its default, by
#   sesemi train -cd configs custom --show-config
# and any of them can be changed on the command line, e.g. `run.seed=1`.
#
#   sesemi fetch digits                   # the embedded demo data, into data/digits
#   sesemi train -cd configs custom       # trains; the run goes to runs/custom/<timestamp>/
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


def create_project(directory: str | Path = ".", force: bool = False) -> Path:
    """Creates a project: `configs/custom.yaml` (a commented config to start from) and the
    `data/`, `runs/` and `src/` folders.

    Args:
        directory: The project folder (created if needed).
        force: Overwrite an existing `configs/custom.yaml`.

    Returns:
        The project folder.
    """
    root = Path(directory)
    config = root / "configs" / "custom.yaml"
    refusal = f"will not overwrite {config}: `sesemi create` did not write it (its first line is not {CREATED!r})"
    _check_overwrite(config, force, CREATED, refusal)
    for name in PROJECT_FOLDERS:
        (root / name).mkdir(parents=True, exist_ok=True)
    write_atomically(config, CUSTOM_CONFIG)
    return root


def _header(text: str) -> tuple[list[str], list[str]]:
    """Hydra's header lines (`# @package ...`, which must come first) and the rest."""
    lines = text.splitlines(keepends=True)
    count = 0
    while count < len(lines) and lines[count].lstrip().startswith("#") and lines[count].lstrip("# \t").startswith("@"):
        count += 1
    return lines[:count], lines[count:]


def _check_overwrite(path: Path, force: bool, first_line: str, refusal: str) -> None:
    """Refuses an existing `path` without `force`, and even with it (`refusal`) unless its first
    line after Hydra's `# @package` header starts with `first_line`: a file sesemi wrote."""
    if not os.path.lexists(path):
        return
    if not force:
        raise SesemiError(f"{path} exists; pass --force to overwrite it")
    rest: list[str] = []
    with suppress(OSError):
        if not path.is_symlink():  # a link is never sesemi's
            with open(path, encoding="utf-8", errors="replace") as file:
                _, rest = _header(file.read(64 * 1024))
    if not (rest and rest[0].startswith(first_line)):
        raise SesemiError(refusal)


def save_config(name: str, target: str | Path, force: bool = False) -> Path:
    """Copies a built-in config (e.g. `digits`, `method/flexmatch`) to a file or folder, to start
    a config of your own from.

    The copy's first line (after Hydra's `# @package` header) says where it came from; with
    `force`, only a file that starts so is overwritten, never a config of your own.

    Returns:
        The file written.
    """
    source = catalog.config_file(name)
    path = Path(target)
    if path.is_dir() or str(target).endswith(("/", os.sep)):
        path = path / source.name
    refusal = f"will not overwrite {path}: it is not a copy `sesemi show --save` made (its first line is not {COPIED!r}); choose another file"
    _check_overwrite(path, force, COPIED, refusal)
    header, rest = _header(source.read_text())
    note = f"{COPIED} `{name.removesuffix('.yaml')}` (sesemi show --save)\n"
    try:
        write_atomically(path, "".join([*header, note, *rest]))
    except OSError as error:
        raise SesemiError(f"cannot write {path} ({error.strerror or error}); choose another file") from None
    return path

"""A user's project folder: `sesemi create` starts one, `sesemi show --save` copies configs into it.

    my-project/
      configs/   your Hydra configs (custom.yaml to start from)
      data/      data sets, in the standard layout
      runs/      what sesemi writes: checkpoints, metrics, configs
      src/       your own modules, which configs can name as `_target_: src.module.Class`
"""

from __future__ import annotations

import os
import re
from contextlib import suppress
from pathlib import Path

from sesemi.config import catalog
from sesemi.errors import SesemiError
from sesemi.ownership import names_folder, write_atomically

PROJECT_FOLDERS = ("configs", "data", "runs", "src")
# The first line of a copied config (after Hydra's `# @package` header): `--force` overwrites
# only a file that has it, never one of the user's own.
COPIED = "# Copied from sesemi's built-in config"

CREATED = "# Written by `sesemi create`"
CUSTOM_CONFIG = """\
{created}: your experiment, the built-in `image` config (the standard folder layout
# of small images, a small CNN) trained with FlexMatch, the recommended method, with what differs
# from it overridden below. Every field is listed, with its default, by
#   sesemi train -cd configs custom --show-config
# and any of them can be changed on the command line, e.g. `run.seed=1` or `method=freematch`.
#
#   sesemi fetch digits                   # the embedded demo data, into data/digits
#   sesemi train -cd configs custom       # trains; the run goes to runs/custom/flexmatch/<time>/
#   sesemi postprocess runs               # tables and curves of all runs
#
# Other starting points: `sesemi list` (e.g. image, audio, digits), `sesemi show image`; another
# method with `method=NAME` on the command line or `override method: NAME` below (`sesemi list
# method`); photos: `override backbone: resnet18` and `data.views.weak.crop_dim: 96` or more.
defaults:
  - image
  - _self_

run:
  id: custom
  seed: 42
  # train/<class>/*.png (labeled), unlabeled/*.png, val/<class>/*.png
  data_root: ./data/digits
{budget}
data:
  views:  # the transforms every loader and method reads by name
    weak:
      p_hflip: 0.0  # flipped digits are other symbols; 0.5 suits most photos
# Modules of your own go in src/ and are named from here, e.g. a backbone: add
# `- override backbone: null` to the defaults above (or the built-in one's arguments come too), then
#   learner.hparams.model.backbone._target_: src.my_backbones.MyBackbone
# Training builds it as your config says; to predict, publish or resume such a run, trust your code
# once with `sesemi trust add src` (sesemi builds only classes you trust from a run's files).
"""
# The training length, sized when the project is made: on a CPU a wall-clock budget that the
# first steps are measured against (run.time_budget); on a GPU the config's own iterations.
CPU_BUDGET = "  time_budget: 15m  # sized for a CPU: fits the run in it; run.num_iterations=N instead trains N steps"
GPU_BUDGET = "  num_iterations: 20000  # sized for a GPU; or run.time_budget, e.g. 2h"


def create_project(directory: str | Path = ".", force: bool = False) -> Path:
    """Creates (and returns) a project folder: `configs/custom.yaml`, a commented config to start
    from (`force` overwrites one `create_project` wrote), and `data/`, `runs/` and `src/`."""
    import torch  # the budget suits this machine's CUDA, if any

    root = Path(directory)
    if root.exists() and not root.is_dir():
        raise SesemiError(f"{root} is a file; name a folder for the project")
    config = root / "configs" / "custom.yaml"
    refusal = f"will not overwrite {config}: `sesemi create` did not write it (its first line is not {CREATED!r})"
    _check_overwrite(config, force, CREATED, refusal)
    for name in PROJECT_FOLDERS:
        (root / name).mkdir(parents=True, exist_ok=True)
    budget = GPU_BUDGET if torch.cuda.is_available() else CPU_BUDGET
    write_atomically(config, CUSTOM_CONFIG.format(created=CREATED, budget=budget))
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


def _builtin_name(path: Path) -> str | None:
    """The built-in config that a config file at `path` would shadow in a config folder (a
    group's in the group's folder), or None."""
    if path.stem in catalog.configs():
        return path.stem
    group = path.parent.name
    if group in catalog.groups() and path.stem in catalog.configs(group):
        return f"{group}/{path.stem}"
    return None


def save_config(name: str, target: str | Path, force: bool = False) -> Path:
    """Copies a built-in config (e.g. `digits`, `method/flexmatch`) to a file, or into a config
    folder as `my_<name>.yaml` (a group's config into the folder's `<group>/`, where `GROUP=my_<name>`
    finds it; a copy under the built-in's own name would be refused there), to start your own
    from; returns the file. Its first line (after Hydra's `# @package` header) says where it came
    from: `force` overwrites only such a file, never a config of your own."""
    source = catalog.config_file(name)
    group = name.removesuffix(".yaml").rpartition("/")[0]
    path = Path(target)
    if names_folder(target):
        path = (path if path.name == group or not group else path / group) / f"my_{source.name}"
        if path.parent != Path(target) and path.parent.is_symlink():  # `configs/method` linked elsewhere
            raise SesemiError(f"will not write into {path.parent}: it is a symbolic link out of {target}; save into the folder it links to")
    elif path.suffix == ".yaml" and (builtin := _builtin_name(path)):  # configs/image.yaml, configs/method/fixmatch.yaml
        raise SesemiError(
            f"will not save as {path}: {builtin} is a built-in config's name, and -cd refuses a folder "
            f"holding one; choose another, e.g. {path.with_name('my_' + path.name)}"
        )
    refusal = f"will not overwrite {path}: it is not a copy `sesemi show --save` made (its first line is not {COPIED!r}); choose another file"
    _check_overwrite(path, force, COPIED, refusal)
    header, rest = _header(source.read_text())
    if group == "method":  # runs of the copy are filed and summarized under its own name
        rest = [re.sub(rf"^([ \t]+method:[ \t]*){re.escape(source.stem)}(?=[ \t]*$)", rf"\g<1>{path.stem}", line) for line in rest]
    note = f"{COPIED} `{name.removesuffix('.yaml')}` (sesemi show --save)\n"
    try:
        write_atomically(path, "".join([*header, note, *rest]))
    except OSError as error:
        raise SesemiError(f"cannot write {path} ({error.strerror or error}); choose another file") from None
    return path

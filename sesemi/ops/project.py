"""A user's project folder: `sesemi create` starts one, `sesemi show --save` copies configs into it.

    my-project/
      configs/   your Hydra configs (custom.yaml to start from)
      data/      data sets, in the standard layout
      runs/      what sesemi writes: checkpoints, metrics, configs
      src/       your own modules, which configs can name as `_target_: src.module.Class`
"""

from __future__ import annotations

import hashlib
import os
import re
from contextlib import suppress
from pathlib import Path

from sesemi.config import catalog
from sesemi.errors import SesemiError
from sesemi.ownership import names_folder, within, write_atomically
from sesemi.results import read_regular

PROJECT_FOLDERS = ("configs", "data", "runs", "src")
# The first line of a config sesemi writes (after Hydra's `# @package` header), which ends with
# the SHA-256 of the lines after it (`stamped`): `--force` overwrites only a file that has it and
# is unchanged since, never one of the user's own, nor a copy they have edited.
COPIED = "# Copied from sesemi's built-in config"
CREATED = "# Written by `sesemi create`"

CUSTOM_CONFIG = """\
# Your experiment: the built-in `image` config (the standard folder layout
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
    _check_overwrite(config, force, CREATED, root)
    for name in PROJECT_FOLDERS:
        (root / name).mkdir(parents=True, exist_ok=True)
    budget = GPU_BUDGET if torch.cuda.is_available() else CPU_BUDGET
    write_atomically(config, stamped(CREATED, CUSTOM_CONFIG.format(budget=budget)))
    return root


def stamped(first_line: str, text: str) -> str:
    """`first_line`, ending with the SHA-256 of `text`, then `text`: a file sesemi wrote, which
    `--force` may overwrite while it is unchanged."""
    return f"{first_line} (sha256 {_digest(text)})\n{text}"


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def _header(text: str) -> tuple[list[str], list[str]]:
    """Hydra's header lines (`# @package ...`, which must come first) and the rest."""
    lines = text.splitlines(keepends=True)
    count = 0
    while count < len(lines) and lines[count].lstrip().startswith("#") and lines[count].lstrip("# \t").startswith("@"):
        count += 1
    return lines[:count], lines[count:]


def _check_overwrite(path: Path, force: bool, first_line: str, inside: Path) -> None:
    """Refuses an existing `path` without `force`, and even with it unless it is a file sesemi
    wrote (`stamped` with `first_line`, after Hydra's `# @package` header) and nobody changed
    since, in `inside` (not through a link out of it)."""
    if not os.path.lexists(path):
        return
    if not force:
        raise SesemiError(f"{path} exists; pass --force to overwrite it")
    rest: list[str] = []
    with suppress(OSError, UnicodeDecodeError):
        if not path.is_symlink() and within(path, inside):  # a link is never sesemi's
            _, rest = _header(read_regular(path))
    if not (rest and rest[0].startswith(first_line) and f"(sha256 {_digest(''.join(rest[1:]))})" in rest[0]):
        raise SesemiError(
            f"will not overwrite {path}: sesemi did not write it there, or it was changed since, or an earlier "
            f"release wrote it (its first line is not {first_line!r} with the SHA-256 of the rest); move it away, "
            "or choose another file"
        )


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
    from: `force` overwrites only such a file, unchanged since, never a config of your own."""
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
    _check_overwrite(path, force, COPIED, Path(target) if names_folder(target) else path.parent)
    header, rest = _header(source.read_text())
    if group == "method":  # runs of the copy are filed and summarized under its own name
        rest = [re.sub(rf"^([ \t]+method:[ \t]*){re.escape(source.stem)}(?=[ \t]*$)", rf"\g<1>{path.stem}", line) for line in rest]
    note = f"{COPIED} `{name.removesuffix('.yaml')}`, by sesemi show --save"
    try:
        write_atomically(path, "".join(header) + stamped(note, "".join(rest)))
    except OSError as error:
        raise SesemiError(f"cannot write {path} ({error.strerror or error}); choose another file") from None
    return path

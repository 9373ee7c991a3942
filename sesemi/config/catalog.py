"""The built-in configs as the package ships them: names, groups, methods and what each is for.

Everything that lists configs or methods (`sesemi list`, shell completion, the docs tables,
parametrized tests, the aliases of old config names) reads them from here, so a config file
added to the package is listed everywhere without editing code.
"""

from __future__ import annotations

import difflib
import fnmatch
import re
from importlib import resources
from importlib.resources.abc import Traversable

from sesemi.errors import SesemiError

METHOD_GROUP = "method"
# A full stop (not of "et al.") before a capital or a number, or a colon before a spaced-out layout.
SENTENCE_END = re.compile(r"(?<=\.)(?<! al\.)\s+(?=[A-Z0-9])|:\s{2,}")


def _root() -> Traversable:
    return resources.files("sesemi.configs")


def groups() -> list[str]:
    """The config groups: the folders of the built-in configs (backbone, method, ...)."""
    return sorted(e.name for e in _root().iterdir() if e.is_dir() and not e.name.startswith(("_", ".")))


def configs(group: str | None = None, pattern: str = "*") -> dict[str, Traversable]:
    """The built-in config files of a group (None: the top-level, runnable ones) whose names
    match a shell-style `pattern`, by name."""
    folder = _root()
    if group:
        if group not in groups():
            raise SesemiError(f"no config group {group!r}; the groups are: {', '.join(groups())}")
        folder = folder.joinpath(group)
    return {
        entry.name.removesuffix(".yaml"): entry
        for entry in sorted(folder.iterdir(), key=lambda e: e.name)
        if entry.is_file() and fnmatch.fnmatch(entry.name, f"{pattern}.yaml")
    }


def methods() -> list[str]:
    """The methods: the configs of the `method` group, as `method=NAME` takes them."""
    return list(configs(METHOD_GROUP))


def data_configs() -> list[str]:
    """The top-level configs, each a data set (or data layout) that any method trains on."""
    return list(configs())


def package(group: str) -> str | None:
    """Where a group's options go in the composed config (their `# @package` headers), e.g.
    `learner.hparams.model.backbone` for `backbone`, `loggers.NAME` for `logger`; None when
    they go to the top (`_global_`) or to no one place."""
    places = set()
    for name, entry in configs(group).items():
        header = entry.read_text().partition("\n")[0]
        place = header.removeprefix("# @package ").strip() if header.startswith("# @package ") else None
        parent, _, last = (place or "").rpartition(".")
        if last == name:  # a place per option, e.g. `loggers.wandb` for wandb
            place = f"{parent}.NAME"
        places.add(place)
    place = places.pop() if len(places) == 1 else None
    return None if place == "_global_" else place


def config_file(name: str) -> Traversable:
    """The file of a built-in config such as `digits` or `method/fixmatch`."""
    group, _, stem = name.removesuffix(".yaml").rpartition("/")
    found = configs(group or None)
    if stem not in found:
        close = difflib.get_close_matches(stem, found, n=3)
        hint = f"did you mean {', '.join(close)}? " if close else ""
        raise SesemiError(f"no built-in config {name!r}; {hint}see `sesemi list`")
    return found[stem]


def description(text: str) -> str:
    """The first sentence of a config's leading comment: what the config is for."""
    lines = []
    for line in text.splitlines():
        if not line.startswith("#") or line.startswith("#  "):  # the config, or an example
            break
        if not line.startswith("# @package"):
            lines.append(line[1:].strip())
    return SENTENCE_END.split(" ".join(lines), maxsplit=1)[0].rstrip(":")


# Config names of earlier releases whose new form the general rules below cannot guess.
RENAMED = {
    "imagewoof_entmin": ("imagewoof", "entropy_minimization"),
    "audio_base": ("audio", "supervised"),
}


def alias(name: str) -> tuple[str, str] | None:
    """The `(data config, method)` an earlier config name stands for, or None.

    `fixmatch` is the method on the standard layout (`image`), `<data>_<method>` the method on a
    data config, e.g. `digits_fixmatch` or `audio_mean_teacher`.
    """
    if name in RENAMED:
        return RENAMED[name]
    known = methods()
    if name in known:
        return "image", name
    data, _, method = name.partition("_")
    while method:
        if data in data_configs() and method in known:
            return data, method
        head, _, method = method.partition("_")
        data = f"{data}_{head}"
    return None

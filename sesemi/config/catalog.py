"""What the built-in configs offer, read off the installed `sesemi.configs` package.

Every list of methods or data configs (command-line help, `sesemi list`, docs tables,
parametrized tests, experiments) comes from here, so adding `configs/method/<name>.yaml` is
all it takes for a method to be listed everywhere.
"""

from __future__ import annotations

from importlib import resources

METHOD_GROUP = "method"


def _names(group: str | None = None) -> list[str]:
    folder = resources.files("sesemi.configs")
    if group:
        folder = folder.joinpath(group)
    return sorted(
        entry.name.removesuffix(".yaml")
        for entry in folder.iterdir()
        if entry.is_file() and entry.name.endswith(".yaml")
    )


def methods() -> list[str]:
    """The built-in methods: the files of `configs/method/`, e.g. `fixmatch` for `method=fixmatch`."""
    return _names(METHOD_GROUP)


def data_configs() -> list[str]:
    """The built-in data configs: the top-level configs, which `-cn NAME` runs with any method."""
    return _names()

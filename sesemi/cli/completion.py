"""What the shell completes for `sesemi` arguments: config names, groups and their options,
read from the installed configs (sesemi.config.catalog), so a config added to the package is
completed without editing code.

Completion runs `sesemi` at every Tab; the catalog (with the config schema) is imported only
then, so `sesemi --help` stays fast. Install it with `sesemi --install-completion`, or with
the line for your shell at the end of `sesemi --help`.
"""

from __future__ import annotations

from types import ModuleType

import typer

EXPORT_FORMATS = ("onnx", "torchscript")  # sesemi.export.FORMATS, without importing torch


def _catalog() -> ModuleType:
    from sesemi.config import catalog

    return catalog


def data_configs(incomplete: str) -> list[str]:
    """The data configs `sesemi train NAME` runs."""
    return [name for name in _catalog().data_configs() if name.startswith(incomplete)]


def groups(incomplete: str) -> list[str]:
    """The config groups `sesemi list GROUP` lists."""
    return [name for name in _catalog().groups() if name.startswith(incomplete)]


def config_names(incomplete: str) -> list[str]:
    """The configs `sesemi show NAME` prints: data configs, then `group/name`."""
    catalog = _catalog()
    group, slash, _ = incomplete.partition("/")
    if slash and group in catalog.groups():
        return [
            f"{group}/{name}"
            for name in catalog.configs(group)
            if f"{group}/{name}".startswith(incomplete)
        ]
    return data_configs(incomplete) + [f"{name}/" for name in groups(incomplete)]


def overrides(ctx: typer.Context, incomplete: str) -> list[str]:
    """The overrides of `sesemi train`: `method=` completes to the methods, `backbone=` to the
    backbones; anything else to the group names followed by `=`.

    bash splits words at `=`: there `method=fi` arrives as the words `method`, `=` and the
    incomplete `fi`, and the shell replaces only `fi`, so the names are completed alone.
    """
    catalog = _catalog()
    before = ctx.params.get("overrides") or []
    if len(before) >= 2 and before[-1] == "=" and before[-2] in catalog.groups():
        return [name for name in catalog.configs(before[-2]) if name.startswith(incomplete)]
    group, equals, _ = incomplete.partition("=")
    if equals:
        if group not in catalog.groups():
            return []
        return [
            f"{group}={name}"
            for name in catalog.configs(group)
            if f"{group}={name}".startswith(incomplete)
        ]
    return [f"{name}=" for name in groups(incomplete)]


def export_formats(incomplete: str) -> list[str]:
    """The formats `sesemi export --format` writes."""
    return [name for name in EXPORT_FORMATS if name.startswith(incomplete)]

"""What the shell completes for `sesemi` arguments, read from the installed configs
(sesemi.config.catalog), so a config added to the package is completed without editing code.

The catalog is imported only when completing, so `sesemi --help` stays fast. Install it with
`sesemi --install-completion`, or with the line for your shell at the end of `sesemi --help`.
"""

from __future__ import annotations

from collections.abc import Iterable
from types import ModuleType

import typer

EXPORT_FORMATS = ("onnx", "torchscript")  # sesemi.export.FORMATS, without importing torch


def _catalog() -> ModuleType:
    from sesemi.config import catalog

    return catalog


def _starting(names: Iterable[str], incomplete: str) -> list[str]:
    return [name for name in names if name.startswith(incomplete)]


def data_configs(incomplete: str) -> list[str]:
    """The data configs `sesemi train NAME` runs."""
    return _starting(_catalog().data_configs(), incomplete)


def groups(incomplete: str) -> list[str]:
    """The config groups `sesemi list GROUP` lists."""
    return _starting(_catalog().groups(), incomplete)


def _options(group: str, separator: str, incomplete: str) -> list[str]:
    """`group<separator>name` of the group's options that start as typed; none for an unknown group."""
    catalog = _catalog()
    names = catalog.configs(group) if group in catalog.groups() else ()
    return _starting((f"{group}{separator}{name}" for name in names), incomplete)


def config_names(incomplete: str) -> list[str]:
    """The configs `sesemi show NAME` prints: data configs, then `group/name`."""
    group, slash, _ = incomplete.partition("/")
    if slash and group in _catalog().groups():
        return _options(group, "/", incomplete)
    return data_configs(incomplete) + [f"{name}/" for name in groups(incomplete)]


def overrides(ctx: typer.Context, incomplete: str) -> list[str]:
    """The overrides of `sesemi train`: `method=` completes to the methods, `backbone=` to the
    backbones; anything else to the group names followed by `=`.

    bash splits words at `=`: there `method=fi` arrives as the words `method`, `=` and the
    incomplete `fi`, and the shell replaces only `fi`, so the names are completed alone; a bare
    `method=` arrives as `method` with the word `=` being completed, which click passes as empty.
    """
    before = ctx.params.get("overrides") or []
    if len(before) >= 2 and before[-1] == "=" and before[-2] in _catalog().groups():
        return _starting(_catalog().configs(before[-2]), incomplete)
    if incomplete in ("", "=") and before and before[-1] in _catalog().groups():
        return list(_catalog().configs(before[-1]))
    group, equals, _ = incomplete.partition("=")
    if equals:
        return _options(group, "=", incomplete)
    return [f"{name}=" for name in groups(incomplete)]


def export_formats(incomplete: str) -> list[str]:
    """The formats `sesemi export --format` writes."""
    return _starting(EXPORT_FORMATS, incomplete)

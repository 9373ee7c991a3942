"""Finding published models, and fetching them into the cache.

Without a `repository` argument, the repositories are those listed in `$SESEMI_REPOSITORIES`
(comma-separated folders or URLs), searched in that order. A model already in the cache is
loaded without asking any repository.
"""

from __future__ import annotations

import os
from pathlib import Path

from sesemi.errors import SesemiError
from sesemi.hub import cache
from sesemi.hub.ids import check_version
from sesemi.hub.lookup import Archive, ModelInfo, matches
from sesemi.hub.repository import Repository

REPOSITORIES_VARIABLE = "SESEMI_REPOSITORIES"


def repositories(repository: str | Path | None = None) -> list[Repository]:
    """`repository`, else those of `$SESEMI_REPOSITORIES`."""
    if repository is not None:
        return [Repository(repository)]
    urls = [url.strip() for url in os.environ.get(REPOSITORIES_VARIABLE, "").split(",") if url.strip()]
    if not urls:
        raise SesemiError(f"no repository given: pass one, or list them in {REPOSITORIES_VARIABLE} (comma-separated)")
    return [Repository(url) for url in urls]


def lookup(
    reference: str, version: str | None = None, repository: str | Path | None = None
) -> tuple[ModelInfo, Archive, Repository]:
    """The one model a uid or `[subgroup.]name[@version]` names, its archive and its repository
    (the first that has it)."""
    searched = repositories(repository)
    rows: dict[str, tuple[ModelInfo, Archive, Repository]] = {}
    for source in searched:
        for uid, (model, archive) in source.rows().items():
            rows.setdefault(uid, (model, archive, source))
    found = [rows[model.uid] for model in matches([row[0] for row in rows.values()], reference, version)]
    if not found:
        where = ", ".join(source.url for source in searched)
        asked = f"{reference}@{version}" if version and "@" not in reference else reference
        raise SesemiError(f"no model {asked} in {where}; `sesemi models` lists what is published")
    if len(found) > 1:
        choices = ", ".join(f"{model.uid} ({model.reference})" for model, _, _ in found)
        raise SesemiError(f"{reference} names several models: {choices}; load one by its uid")
    return found[0]


def fetch(uid_or_name: str, repository: str | Path | None = None) -> Path:
    """The folder of a published model in the cache, downloaded into it the first time.

    `sesemi.predictor.load` (which `sesemi.hub.load` is) builds the model from it.

    Args:
        uid_or_name: A uid (`3f1c9a0e-1.0.0`), or a name with an optional subgroup and version:
            `digits-cnn`, `images.digits-cnn`, `digits-cnn@1.0.0` (the latest version without one).
        repository: A folder or fsspec URL; by default those of `$SESEMI_REPOSITORIES`.
    """
    folder = cache.find(uid_or_name)
    if folder is None:
        info, archive, source = lookup(uid_or_name, repository=repository)
        folder = cache.fetch(info, archive, source)
    return folder


def models(repository: str | Path | None = None) -> list[ModelInfo]:
    """The models published in `repository` (or all of `$SESEMI_REPOSITORIES`), by name and version."""
    rows = [info for source in repositories(repository) for info, _ in source.rows().values()]
    return sorted(rows, key=lambda info: (info.subgroup or "", info.name, check_version(info.version)))


def info(uid_or_name: str, version: str | None = None, repository: str | Path | None = None) -> ModelInfo:
    """What a published model is: name, version, params, labels, metrics, ... (from the cache
    when it is there)."""
    folder = cache.find(uid_or_name, version)
    return cache.read_info(folder) if folder else lookup(uid_or_name, version, repository)[0]


def url(uid_or_name: str, version: str | None = None, repository: str | Path | None = None) -> str:
    """The URL of a published model's archive."""
    _, archive, source = lookup(uid_or_name, version, repository)
    return source.url_of(archive)

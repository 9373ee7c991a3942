"""Repositories of published models (a folder or any fsspec URL holding `models.json` and one
archive per model), and finding a model in them.

Files are written under a temporary name and moved into place; the table is rewritten under a
file lock (in the cache for object stores, which have none). Without a `repository`, the
functions search `$SESEMI_REPOSITORIES`.
"""

from __future__ import annotations

import hashlib
import logging
import os
import posixpath
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import fsspec
from filelock import FileLock
from fsspec.implementations.local import LocalFileSystem

from sesemi.errors import SesemiError, first_line
from sesemi.hub import cache
from sesemi.hub.ids import check_version, is_uid
from sesemi.hub.lookup import (
    Archive,
    ModelInfo,
    archive_path,
    check_unpublished,
    format_table,
    matches,
    parse_table,
)
from sesemi.ownership import file_lock, sha256

logger = logging.getLogger(__name__)

TABLE = "models.json"
REPOSITORIES_VARIABLE = "SESEMI_REPOSITORIES"


class Repository:
    """The models published at `url` (a local folder or an fsspec URL)."""

    def __init__(self, url: str | Path):
        self.url = str(url)
        try:
            self.fs, self.root = fsspec.core.url_to_fs(self.url)
        except (ValueError, ImportError) as error:
            raise SesemiError(f"cannot open repository {self.url}: {error}") from None

    def path(self, relative: str) -> str:
        return posixpath.join(self.root, relative)

    def url_of(self, archive: Archive) -> str:
        """The full URL of an archive in this repository."""
        return self.fs.unstrip_protocol(self.path(archive.path))

    @contextmanager
    def reaching(self, action: str) -> Iterator[None]:
        """Turns the file system's errors into one line: `cannot <action> repository <url>: ...`."""
        try:
            yield
        except (OSError, TimeoutError) as error:
            raise Unreachable(f"cannot {action} repository {self.url}: {first_line(error)}") from None

    def rows(self, missing_ok: bool = False) -> dict[str, tuple[ModelInfo, Archive]]:
        """The lookup table by uid: empty for a repository without models, or one that does not
        exist yet with `missing_ok` (to publish the first model)."""
        with self.reaching("read"):
            try:
                text = self.fs.cat_file(self.path(TABLE)).decode()
            except FileNotFoundError:
                if not missing_ok and not self.fs.exists(self.root):
                    raise Unreachable(
                        f"repository {self.url} does not exist or cannot be reached; check the path or URL"
                    ) from None
                return {}
        return parse_table(text, self.fs.unstrip_protocol(self.path(TABLE)))

    def lock(self) -> FileLock:
        """The lock that publishers of this repository take."""
        if isinstance(self.fs, LocalFileSystem):
            return file_lock(Path(self.root) / f".{TABLE}.lock")
        name = hashlib.sha256(self.fs.unstrip_protocol(self.root).encode()).hexdigest()[:16]
        folder = cache.cache_root() / "locks"
        folder.mkdir(parents=True, exist_ok=True)
        return file_lock(folder / f"{name}.lock")

    def _refuse_links(self, relative: str) -> None:
        """Refuses a symlink on the way from a local repository's root to `relative`, which would
        have the archive written outside the repository."""
        if not isinstance(self.fs, LocalFileSystem):
            return
        parts = relative.split("/")
        for depth in range(1, len(parts) + 1):
            path = Path(self.root, *parts[:depth])
            if path.is_symlink():
                raise SesemiError(f"will not write through {path}: it is a symbolic link in repository {self.url}; remove it")

    def _atomically(self, path: str, write: Callable[[str], None]) -> None:
        """Writes `path` through `write(temporary path)` and a move, leaving nothing on failure."""
        partial = f"{path}.partial-{uuid.uuid4().hex[:8]}"
        try:
            write(partial)
            self.fs.mv(partial, path)
        finally:
            if self.fs.exists(partial):
                self.fs.rm(partial)

    def add(self, info: ModelInfo, archive_file: Path) -> Archive:
        """Uploads a model's archive and adds its row to the table, refusing a uid or a name and
        version that exist, and an archive file the table does not list; the table never names an
        archive that is not in place."""
        relative = archive_path(info)
        archive = Archive(relative, sha256(archive_file), archive_file.stat().st_size)
        with self.reaching("write to"):
            self.fs.makedirs(self.root, exist_ok=True)
            with self.lock():
                rows = self.rows(missing_ok=True)
                check_unpublished(rows, info)
                target = self.path(relative)
                self._refuse_links(relative)
                if self.fs.exists(target):  # not in the table: not one sesemi can prove it published
                    raise SesemiError(
                        f"will not publish over {self.url_of(archive)}: models.json does not list it (a publish "
                        "stopped before it finished, or a file of someone else's); delete it to publish"
                    )
                self.fs.makedirs(posixpath.dirname(target), exist_ok=True)
                self._atomically(target, lambda partial: self.fs.put_file(str(archive_file), partial))
                table = format_table({**rows, info.uid: (info, archive)}).encode()
                try:
                    self._atomically(self.path(TABLE), lambda partial: self.fs.pipe_file(partial, table))
                except BaseException:
                    self.fs.rm(target)
                    raise
        return archive

    def download(self, info: ModelInfo, archive: Archive, target: Path) -> None:
        """Copies a model's archive to the local file `target`."""
        with self.reaching("download from"):
            try:
                self.fs.get_file(self.path(archive.path), str(target))
            except FileNotFoundError:
                raise SesemiError(
                    f"the archive of {info.uid} ({self.url_of(archive)}) is missing from its repository"
                ) from None


class Unreachable(SesemiError):
    """No repository can be asked: none given or listed, or one cannot be read."""


def repositories(repository: str | Path | None = None) -> list[Repository]:
    """`repository`, else those of `$SESEMI_REPOSITORIES`."""
    if repository is not None:
        return [Repository(repository)]
    urls = [url.strip() for url in os.environ.get(REPOSITORIES_VARIABLE, "").split(",") if url.strip()]
    if not urls:
        raise Unreachable(f"no repository given: pass one, or list them in {REPOSITORIES_VARIABLE} (comma-separated)")
    return [Repository(url) for url in urls]


def _tables(repository: str | Path | None) -> list[tuple[Repository, dict[str, tuple[ModelInfo, Archive]]]]:
    """Each repository searched (`repositories`) with its lookup table. Of the several of
    `$SESEMI_REPOSITORIES`, one that cannot be read (a share not mounted, a bucket offline) is
    passed over with a warning, as long as another can be: the others may have the model."""
    searched = repositories(repository)
    tables, unreachable = [], []
    for source in searched:
        try:
            tables.append((source, source.rows()))
        except Unreachable as error:
            if len(searched) == 1:
                raise
            unreachable.append(error)
            logger.warning("passing over a repository of %s: %s", REPOSITORIES_VARIABLE, error)
    if not tables:
        raise unreachable[0]
    return tables


def lookup(reference: str, repository: str | Path | None = None) -> tuple[ModelInfo, Archive, Repository]:
    """The one model a uid or `[subgroup.]name[@version]` names, its archive and its repository
    (the first that has it, of those that can be read)."""
    tables = _tables(repository)
    searched = [source for source, _ in tables]
    rows: dict[str, tuple[ModelInfo, Archive, Repository]] = {}
    for source, table in tables:
        for uid, (model, archive) in table.items():
            rows.setdefault(uid, (model, archive, source))
    found = [rows[model.uid] for model in matches([row[0] for row in rows.values()], reference)]
    if not found:
        where = ", ".join(source.url for source in searched)
        raise SesemiError(f"no model {reference} in {where}; `sesemi models` lists what is published")
    if len(found) > 1:
        choices = ", ".join(f"{model.uid} ({model.reference})" for model, _, _ in found)
        raise SesemiError(f"{reference} names several models: {choices}; load one by its uid")
    return found[0]


def _locate(
    uid_or_name: str, repository: str | Path | None
) -> tuple[Path | None, tuple[ModelInfo, Archive, Repository] | None]:
    """A model's cached folder (or None) and the repositories' row for it (None when not asked).

    A uid is the cache's to answer. A name is the repositories' (another repository's model of
    that name@version may be cached); only when none can be asked does the cache answer alone,
    if it holds exactly one model of that name and version (a second load works offline)."""
    if is_uid(uid_or_name) and (folder := cache.find(uid_or_name)):
        return folder, None
    try:
        row = lookup(uid_or_name, repository=repository)
    except Unreachable:
        if (folder := cache.find(uid_or_name)) is None:
            raise
        return folder, None
    folder = cache.find(row[0].uid)
    return (cache.check_same_archive(folder, row[1], row[2]) if folder else None), row


def fetch(uid_or_name: str, repository: str | Path | None = None) -> Path:
    """The folder of a published model (a uid or `[subgroup.]name[@version]`, the latest version
    without one) in the cache, downloaded into it from `repository` the first time."""
    folder, row = _locate(uid_or_name, repository)
    return folder or cache.fetch(*row)


def models(repository: str | Path | None = None) -> list[ModelInfo]:
    """The models published in `repository` (or all of `$SESEMI_REPOSITORIES`), by name and version."""
    rows = [info for _, table in _tables(repository) for info, _ in table.values()]
    return sorted(rows, key=lambda info: (info.subgroup or "", info.name, check_version(info.version)))


def info(uid_or_name: str, repository: str | Path | None = None) -> ModelInfo:
    """What a published model is: name, version, params, labels, metrics, ... (from the cache
    when it is there)."""
    folder, row = _locate(uid_or_name, repository)
    return cache.read_info(folder) if folder else row[0]


def url(uid_or_name: str, repository: str | Path | None = None) -> str:
    """The URL of a published model's archive."""
    _, archive, source = lookup(uid_or_name, repository)
    return source.url_of(archive)

"""The local cache of loaded models: `<cache_root()>/<subgroup parts>/<name>/<version>/<uid>/`.

A model's folder is downloaded, verified and extracted beside its place, then renamed into it,
under a file lock: it is complete or absent, and fetched once however many processes ask. Its
path is made of checked ids and, symlinks resolved, must lie inside the root.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from sesemi.errors import SesemiError
from sesemi.hub.archive import extract
from sesemi.hub.ids import check_uid, is_uid, split_reference
from sesemi.hub.lookup import Archive, ModelInfo, check_info, matches
from sesemi.learners.published import META
from sesemi.ownership import locked, owned, sha256, staged, within

if TYPE_CHECKING:
    from sesemi.hub.repository import Repository

logger = logging.getLogger(__name__)


def cache_root() -> Path:
    """Where loaded models are kept: `$SESEMI_CACHE_ROOT`, else `$XDG_CACHE_HOME/sesemi/models`
    (`~/.cache/sesemi/models`)."""
    if os.environ.get("SESEMI_CACHE_ROOT"):
        return Path(os.environ["SESEMI_CACHE_ROOT"]).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "sesemi" / "models"


def _inside(path: Path, root: Path) -> Path:
    if not within(path, root):
        raise SesemiError(f"will not write {path}: it is outside the model cache {root}")
    return path


ARCHIVE_SHA256 = ".archive.sha256"  # in a cached model's folder: the archive it came from


def read_info(folder: Path) -> ModelInfo:
    """The `meta.json` of a model's folder, checked as a repository's rows are."""
    path = folder / META
    try:
        return ModelInfo.from_dict(json.loads(path.read_text(encoding="utf-8")))
    except (ValueError, OSError, TypeError, SesemiError) as error:
        raise SesemiError(f"{path} is not a published model's meta.json ({error})") from None


def find(reference: str) -> Path | None:
    """The cached folder of a uid, or of a `[subgroup.]name@version` when exactly one is cached."""
    root = cache_root()
    if is_uid(reference):
        candidates = root.glob(f"**/{check_uid(reference)}/{META}")
    else:
        _, name, version = split_reference(reference)
        if version is None:  # the latest version is the repository's to say
            return None
        candidates = root.glob(f"**/{name}/{version}/*/{META}")
    # A model's folder is named by its uid; a fetch stages it beside as `.<uid>.*` (hidden) first.
    found_folders = (meta.parent for meta in candidates if not meta.parent.name.startswith("."))
    folders = {folder: read_info(folder) for folder in found_folders if within(folder, root)}
    wanted = matches(folders.values(), reference)
    found = [folder for folder, info in folders.items() if info in wanted]
    return found[0] if len(found) == 1 else None


def fetch(info: ModelInfo, archive: Archive, repository: Repository) -> Path:
    """The model's folder in the cache, downloaded, verified and extracted if it is not there;
    on a refusal (SesemiError) the cache is left as it was."""
    root = cache_root()
    folder = _inside(root.joinpath(*check_info(info).folders, info.uid), root)
    folder.parent.mkdir(parents=True, exist_ok=True)
    _inside(folder, root)  # again, now that the folders on the way exist
    source = f"the archive of {info.uid} from {repository.url}"
    with locked(folder.parent / f"{info.uid}.lock"):
        if (folder / META).is_file():  # another process got it while we waited
            return folder
        if os.path.lexists(folder) and not owned(folder, "model"):  # a model's folder emptied by hand is replaced
            raise SesemiError(f"will not replace {folder}: it is not a sesemi model folder (no .sesemi marker); move it away")
        with tempfile.TemporaryDirectory(dir=folder.parent, prefix=f".{info.uid}.") as scratch, staged(folder, "model") as extracted:
            download = Path(scratch) / "model.tar.gz"
            logger.info("downloading %s from %s", info.uid, repository.url)
            repository.download(info, archive, download)
            if sha256(download) != archive.sha256:
                raise SesemiError(
                    f"{source} does not match the checksum recorded when it was published; "
                    "it was changed or damaged: do not use it, and publish the model again"
                )
            extract(download, extracted, source)  # refuses an archive without a model's files
            try:
                uid = read_info(extracted).uid
            except SesemiError:
                raise SesemiError(f"{source} is not a sesemi model's: its {META} does not describe a model") from None
            if uid != info.uid:
                raise SesemiError(f"{source} is not a sesemi model's: it holds another model ({uid})")
            (extracted / ARCHIVE_SHA256).write_text(archive.sha256 + "\n")
    return folder


def check_same_archive(folder: Path, archive: Archive, repository: Repository) -> Path:
    """`folder`, the cached model of a uid, if it came from `archive`: two repositories can each
    publish a model of one name, subgroup, params and version, which have one uid."""
    try:
        recorded = (folder / ARCHIVE_SHA256).read_text().strip()
    except OSError:
        return folder  # cached before the archive was recorded
    if recorded != archive.sha256:
        raise SesemiError(
            f"the cache holds another model of uid {folder.name} than {repository.url} has (their archives "
            f"differ, as models of two repositories may); delete {folder} to load {repository.url}'s"
        )
    return folder

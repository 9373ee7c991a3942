"""The local cache of loaded models: `<cache root>/<subgroup parts>/<name>/<version>/<uid>/`.

The root is `$SESEMI_CACHE_ROOT`, else `$XDG_CACHE_HOME/sesemi/models` (`~/.cache/sesemi/models`).
A model's folder appears complete or not at all: it is downloaded, verified and extracted into
a scratch folder beside it, marked as sesemi's (`.sesemi`, kind "model") and then renamed, under
a file lock, so processes that load the same model at once download it once. A model in the
cache is found without asking any repository.

Nothing is written outside the root: the parts of a model's path are checked ids
(`sesemi.hub.ids`), and the path, with symlinks resolved, must lie inside the root. A folder in
the way of a download is replaced only if it carries sesemi's marker.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from filelock import FileLock

from sesemi.errors import SesemiError
from sesemi.hub.archive import extract, sha256
from sesemi.hub.ids import check_uid, is_uid, split_reference
from sesemi.hub.lookup import Archive, ModelInfo, check_info, matches
from sesemi.learners.published import CONFIG, META, WEIGHTS
from sesemi.ownership import mark, owned, remove, within

if TYPE_CHECKING:
    from sesemi.hub.repository import Repository

logger = logging.getLogger(__name__)

CACHE_ROOT_VARIABLE = "SESEMI_CACHE_ROOT"


def cache_root() -> Path:
    """Where loaded models are kept (see the module's docstring)."""
    if os.environ.get(CACHE_ROOT_VARIABLE):
        return Path(os.environ[CACHE_ROOT_VARIABLE]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "sesemi" / "models"


def _inside(path: Path, root: Path) -> Path:
    """`path`, if it lies inside the cache `root` (symlinks resolved); else a SesemiError."""
    if not within(path, root):
        raise SesemiError(f"will not write {path}: it is outside the model cache {root}")
    return path


def model_folder(info: ModelInfo) -> Path:
    """Where a model is (or will be) in the cache, checked to lie inside it."""
    check_info(info)
    root = cache_root()
    return _inside(root.joinpath(*info.folders, info.uid), root)


def read_info(folder: Path) -> ModelInfo:
    """The `meta.json` of a model's folder, checked as a repository's rows are."""
    path = folder / META
    try:
        return ModelInfo.from_dict(json.loads(path.read_text(encoding="utf-8")))
    except (ValueError, OSError, TypeError, SesemiError) as error:
        raise SesemiError(f"{path} is not a published model's meta.json ({error})") from None


def find(reference: str, version: str | None = None) -> Path | None:
    """The cached folder of a uid, or of a `[subgroup.]name@version` when exactly one is cached."""
    root = cache_root()
    if is_uid(reference):
        check_uid(reference)
        candidates = root.glob(f"**/{reference}/{META}")
    else:
        _, name, version = split_reference(reference, version)
        if version is None:  # the latest version is the repository's to say
            return None
        candidates = root.glob(f"**/{name}/{version}/*/{META}")
    folders = {meta.parent: read_info(meta.parent) for meta in candidates if within(meta.parent, root)}
    found = [folder for folder, info in folders.items() if info in matches(folders.values(), reference, version)]
    return found[0] if len(found) == 1 else None


def fetch(info: ModelInfo, archive: Archive, repository: Repository) -> Path:
    """The model's folder in the cache, downloaded, verified and extracted if it is not there.

    Raises:
        SesemiError: The archive does not match its checksum, is unsafe or not a sesemi model's,
            or a folder without sesemi's marker is in the way; the cache is left as it was.
    """
    root = cache_root()
    folder = model_folder(info)
    folder.parent.mkdir(parents=True, exist_ok=True)
    _inside(folder, root)  # again, now that the folders on the way exist
    source = f"the archive of {info.uid} from {repository.url}"
    with FileLock(folder.parent / f"{info.uid}.lock"):
        if (folder / META).is_file():  # another process got it while we waited
            return folder
        with tempfile.TemporaryDirectory(dir=folder.parent, prefix=f".{info.uid}.") as scratch:
            download = Path(scratch) / "model.tar.gz"
            logger.info("downloading %s from %s", info.uid, repository.url)
            repository.download(info, archive, download)
            if sha256(download) != archive.sha256:
                raise SesemiError(
                    f"{source} does not match the checksum recorded when it was published; "
                    "it was changed or damaged: do not use it, and publish the model again"
                )
            extracted = Path(scratch) / "model"
            extract(download, extracted, source)
            problem = _problem(extracted, info)
            if problem:
                raise SesemiError(f"{source} is not a sesemi model's: {problem}")
            mark(extracted, "model")
            if folder.exists() or folder.is_symlink():  # a model's folder someone emptied by hand
                if not owned(folder, "model"):
                    raise SesemiError(
                        f"will not replace {folder}: it is not a sesemi model folder (no .sesemi marker); move it away"
                    )
                remove(folder, root, "model")
            os.replace(extracted, folder)
    return folder


def _problem(folder: Path, info: ModelInfo) -> str | None:
    """What is wrong with an extracted model, if anything."""
    missing = [name for name in (META, WEIGHTS, CONFIG) if not (folder / name).is_file()]
    if missing:
        return f"it has no {', '.join(missing)}"
    try:
        uid = read_info(folder).uid
    except SesemiError:
        return f"its {META} does not describe a model"
    return None if uid == info.uid else f"it holds another model ({uid})"

"""The local cache of loaded models: `<cache root>/<subgroup parts>/<name>/<version>/<uid>/`.

The root is `$SESEMI_CACHE_ROOT`, else `$XDG_CACHE_HOME/sesemi/models` (`~/.cache/sesemi/models`).
A model's folder appears complete or not at all: it is downloaded, verified and extracted into
a scratch folder beside it and then renamed, under a file lock, so processes that load the same
model at once download it once. A model in the cache is found without asking any repository.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from filelock import FileLock

from sesemi.errors import SesemiError
from sesemi.hub.archive import extract, sha256
from sesemi.hub.ids import is_uid, split_reference
from sesemi.hub.lookup import Archive, ModelInfo, matches
from sesemi.learners.published import CONFIG, META, WEIGHTS

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


def model_folder(info: ModelInfo) -> Path:
    """Where a model is (or will be) in the cache."""
    return cache_root().joinpath(*info.folders, info.uid)


def read_info(folder: Path) -> ModelInfo:
    """The `meta.json` of a model's folder."""
    return ModelInfo.from_dict(json.loads((folder / META).read_text()))


def find(reference: str, version: str | None = None) -> Path | None:
    """The cached folder of a uid, or of a `[subgroup.]name@version` when exactly one is cached."""
    root = cache_root()
    if is_uid(reference):
        candidates = root.glob(f"**/{reference}/{META}")
    else:
        _, name, version = split_reference(reference, version)
        if version is None:  # the latest version is the repository's to say
            return None
        candidates = root.glob(f"**/{name}/{version}/*/{META}")
    folders = {meta.parent: read_info(meta.parent) for meta in candidates}
    found = [folder for folder, info in folders.items() if info in matches(folders.values(), reference, version)]
    return found[0] if len(found) == 1 else None


def fetch(info: ModelInfo, archive: Archive, repository: Repository) -> Path:
    """The model's folder in the cache, downloaded, verified and extracted if it is not there."""
    folder = model_folder(info)
    folder.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(folder.parent / f"{info.uid}.lock"):
        if (folder / META).is_file():  # another process got it while we waited
            return folder
        with tempfile.TemporaryDirectory(dir=folder.parent, prefix=f".{info.uid}.") as scratch:
            download = Path(scratch) / "model.tar.gz"
            logger.info("downloading %s from %s", info.uid, repository.url)
            repository.download(info, archive, download)
            if sha256(download) != archive.sha256:
                raise SesemiError(
                    f"the archive of {info.uid} from {repository.url} does not match the checksum "
                    "recorded when it was published; it was changed or damaged, publish it again"
                )
            extracted = Path(scratch) / "model"
            extract(download, extracted)
            problem = _problem(extracted, info)
            if problem:
                raise SesemiError(f"the archive of {info.uid} from {repository.url} {problem}")
            if folder.exists():  # a folder someone emptied by hand
                shutil.rmtree(folder)
            os.replace(extracted, folder)
    return folder


def _problem(folder: Path, info: ModelInfo) -> str | None:
    """What is wrong with an extracted model, if anything."""
    missing = [name for name in (META, WEIGHTS, CONFIG) if not (folder / name).is_file()]
    if missing:
        return f"has no {', '.join(missing)}"
    try:
        uid = read_info(folder).uid
    except (ValueError, TypeError):
        return f"has a {META} that is not a model's"
    return None if uid == info.uid else f"holds another model ({uid})"

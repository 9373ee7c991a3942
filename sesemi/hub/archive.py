"""A model's archive: a gzipped tar of a flat folder, packed at publish and checked at load.

Extraction refuses, before writing anything, links, special files, absolute names, `..` and
folders; tarfile's "data" filter (PEP 706, Python 3.10.12+) also strips unwanted permissions.
"""

from __future__ import annotations

import tarfile
import zlib
from pathlib import Path, PurePosixPath

from sesemi.errors import SesemiError

FOREIGN = "it is not a sesemi model's"


def pack(folder: Path, target: Path) -> None:
    """Writes the files of `folder` (not its subfolders) to the archive `target`."""
    with tarfile.open(target, "w:gz") as tar:
        for path in sorted(folder.iterdir()):
            if path.is_file():
                tar.add(path, arcname=path.name)


def _refusal(member: tarfile.TarInfo) -> str | None:
    """Why a member is unsafe to extract, or not of sesemi's layout (a flat folder of files)."""
    name = PurePosixPath(member.name)
    if not (member.isfile() or member.isdir()):
        return f"{member.name} is a link or special file"
    if name.is_absolute() or ".." in name.parts:
        return f"{member.name} points outside the model's folder"
    if member.isdir() or "/" in member.name:
        return f"{FOREIGN} ({member.name} is a folder or in one, and a model's archive holds only files)"
    return None


def extract(archive: Path, target: Path, source: str | None = None) -> None:
    """Extracts a model's archive into the folder `target`, or (SesemiError, nothing written)
    refuses an unsafe member, another layout, or a truncated or corrupt archive; `source` says
    what the archive is, for messages."""
    source = source or f"the archive {archive.name}"
    try:
        with tarfile.open(archive, "r:gz") as tar:
            members = tar.getmembers()  # reads the whole archive: a truncated one fails here
            # Unsafe members are named first, then those of another layout.
            refusals = sorted(filter(None, map(_refusal, members)), key=lambda reason: reason.startswith(FOREIGN))
            if refusals:
                raise SesemiError(f"refusing {source}: {refusals[0]}")
            safe = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
            tar.extractall(target, members, **safe)
    except (tarfile.TarError, EOFError, zlib.error) as error:
        raise SesemiError(f"{source} is truncated or corrupt, or not a gzipped tar ({error})") from None

"""A model's archive: a gzipped tar of a flat folder, packed at publish and checked at load.

Extraction refuses, before writing anything, links, special files, absolute names, `..`,
folders, an archive without a model's files or with other files, and files that would take more
than `RATIO` times the archive's size (`FLOOR` for a small one); tarfile's "data" filter (PEP 706,
Python 3.10.12+) also strips unwanted permissions.
"""

from __future__ import annotations

import tarfile
import zlib
from pathlib import Path, PurePosixPath

from sesemi.errors import SesemiError, first_line
from sesemi.learners.published import CARD, CONFIG, META, WEIGHTS

FOREIGN = "it is not a sesemi model's"
FILES = (META, WEIGHTS, CONFIG, CARD)  # what `publish` packs; the first three are needed to load
# At most this many bytes extracted per byte of archive (gzip shrinks weights far less), or FLOOR.
RATIO, FLOOR = 100, 2**20


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


def _members(tar: tarfile.TarFile, size: int, source: str) -> list[tarfile.TarInfo]:
    """The members of an archive of `size` bytes, read header by header (a truncated archive fails
    here), refused once their files would take too much, before the rest is decompressed."""
    members, total, limit = [], 0, max(RATIO * size, FLOOR)
    for member in tar:
        members.append(member)
        total += member.size
        if total > limit:
            raise SesemiError(f"refusing {source}: its files would take over {limit} bytes, too many for an archive of {size}; {FOREIGN}")
    return members


def extract(archive: Path, target: Path, source: str | None = None) -> None:
    """Extracts a model's archive into the folder `target`, or (SesemiError, nothing written)
    refuses an unsafe member, another layout, a model's file missing, too much data, or a
    truncated or corrupt archive; `source` says what the archive is, for messages."""
    source = source or f"the archive {archive.name}"
    try:
        with tarfile.open(archive, "r:gz") as tar:
            members = _members(tar, archive.stat().st_size, source)
            # Unsafe members are named first, then those of another layout, then missing files.
            refusals = sorted(filter(None, map(_refusal, members)), key=lambda reason: reason.startswith(FOREIGN))
            if refusals:
                raise SesemiError(f"refusing {source}: {refusals[0]}")
            names = [member.name for member in members]
            missing = [name for name in FILES[:3] if name not in names]
            if missing:
                raise SesemiError(f"{source} is not a sesemi model's: it has no {', '.join(missing)}")
            unknown = [name for name in names if name not in FILES]
            if unknown:
                raise SesemiError(f"refusing {source}: {FOREIGN} ({unknown[0][:80]!r} is none of its files, {', '.join(FILES)})")
            safe = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
            tar.extractall(target, members, **safe)
    except (tarfile.TarError, EOFError, zlib.error) as error:
        raise SesemiError(f"{source} is truncated or corrupt, or not a gzipped tar ({error})") from None
    except OSError as error:
        raise SesemiError(f"cannot extract {source} into {target}: {first_line(error)}") from None

"""What sesemi made: a marker file in every folder it creates, checked before anything is removed.

    <folder>/.sesemi    {"made_by": "sesemi 1.0.0", "kind": "run", "created": "...",
                         "state": "running", "pid": 1234, "host": "...", "inode": 5678}

A command that deletes, overwrites or replaces a folder (`rm-failed`, `rm-states`, `group
--force`, `TrainingRun`, `fetch`, the model cache, ...) first asks `owned` and refuses a folder
without the marker: sesemi never touches what it cannot prove it made. A marker proves only the
folder it was written in (its inode, which a `mv` keeps and a copy does not): one copied into
another folder proves nothing there. `walk` lists the folders under one without following a
symlink out of it, `remove` deletes only what is marked and inside. Every file sesemi writes
goes through `open_atomically` (a temporary name, then a rename), so a killed command leaves
the previous file or none, never a part of one.
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import secrets
import shutil
import socket
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, Any, Literal

from filelock import FileLock

from sesemi.errors import SesemiError, first_line
from sesemi.results import read_regular
from sesemi.version import __version__

MARKER = ".sesemi"
# The second line of a checkpoint's `<name>.ckpt.sha256` (a comment `sha256sum -c` skips): the
# inode of the file sesemi saved, which proves it saved that file (see `saved_by_sesemi`).
_SAVED = "# saved by sesemi, inode"
State = Literal["running", "finished", "failed", "interrupted", "complete"]


@dataclass(frozen=True)
class Marker:
    """Who made a folder, when, and where it stands.

    Attributes:
        made_by: `sesemi <version>`.
        kind: What the folder is: run, data, group, training_run, predictions, cache, ...
        created: When it was made (UTC, ISO 8601).
        state: A run's state (running, finished, failed, interrupted), else complete.
        pid: The process that made it (to tell a run that was killed from one still going).
        host: The machine that process runs on.
        inode: The folder's inode number, which ties the marker to the folder it was written in;
            None in markers of releases before it (see `marker`).
    """

    made_by: str
    kind: str
    created: str
    state: str = "complete"
    pid: int | None = None
    host: str | None = None
    inode: int | None = None

    @property
    def alive(self) -> bool:
        """Whether the process that made the folder still runs (on this machine; elsewhere it
        cannot be told, so it counts as alive)."""
        if self.pid is None or self.host != socket.gethostname():
            return self.state == "running"
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True

    @property
    def stopped(self) -> bool:
        """A run that ended without finishing, or whose process is gone while it says running."""
        return self.state in ("failed", "interrupted") or (self.state == "running" and not self.alive)


@contextmanager
def open_atomically(path: str | Path, mode: str = "w", **options: Any) -> Iterator[IO[Any]]:
    """Opens a temporary file beside `path` that replaces `path` when the block ends (written to
    disk first), and is deleted when the block raises: readers see the old file or the new one,
    never a part.

    A process killed in the block leaves at most a hidden `.<name>.<pid>.<random>.partial` file.

    Args:
        path: The file to write (its folder is created if needed).
        mode: "w" (text, UTF-8 unless `encoding` says otherwise) or "wb".
        **options: Further arguments of `open` (`newline`, `errors`, ...).

    Example:
        >>> with open_atomically(folder / "embeddings.npy", "wb") as file:
        ...     np.save(file, vectors)
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if "b" not in mode:
        options.setdefault("encoding", "utf-8")
    partial = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.partial")
    # os.open with 0o666 lets the umask decide the mode, as for any file the user writes.
    handle = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(handle, mode, **options) as file:
            yield file
            file.flush()
            os.fsync(file.fileno())  # on disk before the rename: a power loss leaves the old file, not an empty one
        os.replace(partial, path)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise


def write_atomically(path: str | Path, text: str, **options: Any) -> None:
    """Writes `text` to `path` through a temporary file and a rename (see `open_atomically`)."""
    with open_atomically(path, "w", **options) as file:
        file.write(text)


def file_lock(path: str | Path, **options: Any) -> FileLock:
    """A lock on the file `path` (filelock's `options`), refused when `path` is a link or not a
    file (some filelock versions follow a link and truncate what it points to)."""
    path = Path(path)
    if os.path.islink(path) or (os.path.lexists(path) and not path.is_file()):
        raise SesemiError(f"will not lock {path}: it is a link or not a file; remove it")
    return FileLock(path, **options)


@contextmanager
def locked(path: str | Path) -> Iterator[None]:
    """Holds `file_lock(path)`; a lock that cannot be taken (a link, a read-only folder) is one
    error line."""
    lock = file_lock(path)
    try:
        lock.acquire()
    except OSError as error:
        raise SesemiError(f"cannot lock {path}: {first_line(error)}") from None
    try:
        yield
    finally:
        lock.release()


def names_folder(target: str | os.PathLike) -> bool:
    """Whether a place to write names a folder to write into: one that exists, or a path given
    with a trailing slash (which `Path` would drop)."""
    return Path(target).is_dir() or os.fspath(target).endswith(("/", os.sep))


def sha256(path: str | Path) -> str:
    """The SHA-256 of a file, in hex: what checkpoints and model archives are checked against."""
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        while block := file.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def checksum_path(path: str | Path) -> Path:
    """Where the SHA-256 of checkpoint `path` is recorded: `<path>.sha256`."""
    return Path(f"{os.fspath(path)}.sha256")


def record_checksum(path: str | Path) -> Path:
    """Writes the SHA-256 of checkpoint `path` beside it (atomically) and returns where."""
    target = checksum_path(path)
    name = os.fsencode(Path(path).name).decode("utf-8", "replace")
    write_atomically(target, f"{sha256(path)}  {name}\n{_saved_line(os.stat(path))}\n")
    return target


def saved_by_sesemi(path: str | Path) -> bool:
    """Whether sesemi saved the checkpoint file `path`: its checksum file, written when it was
    saved, records its inode, size and time (a copy, a checksum written by hand, or a file
    written since under the name, even where the file system gave it the inode again, does
    not). Links are never sesemi's."""
    path, recorded_at = Path(path), checksum_path(path)
    if path.is_symlink() or not path.is_file() or recorded_at.is_symlink():
        return False
    try:
        lines = read_regular(recorded_at).splitlines()
    except (OSError, UnicodeDecodeError):
        return False
    return _saved_line(path.stat()) in lines


def _saved_line(stat: os.stat_result) -> str:
    return f"{_SAVED} {stat.st_ino}, size {stat.st_size}, mtime_ns {stat.st_mtime_ns}"


def mark(folder: str | Path, kind: str, state: State = "complete") -> Marker:
    """Creates `folder` if needed and marks it as made by sesemi (keeping its creation time)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    previous = marker(folder)
    made = Marker(
        made_by=f"sesemi {__version__}",
        kind=kind,
        created=previous.created if previous else datetime.now(timezone.utc).isoformat(timespec="seconds"),
        state=state,
        pid=os.getpid() if state == "running" else None,
        host=socket.gethostname() if state == "running" else None,
        inode=folder.stat().st_ino,
    )
    write_atomically(folder / MARKER, json.dumps(asdict(made)) + "\n")
    return made


def marker(folder: str | Path) -> Marker | None:
    """The marker of a folder sesemi made, or None: no marker, not one of sesemi's, or one
    written in another folder (copied here: its inode is not this folder's).

    A marker of a release before markers held their inode (`inode` None) counts only for a run:
    refusing those would leave `rm-failed`, `rm-states` and `resume` unable to touch the runs
    users made with it. Of any other kind (predictions, group, data, model, ...) it proves
    nothing, so such a folder is used as it is but never replaced; delete it yourself to have
    sesemi make it again.
    """
    path = Path(folder) / MARKER
    if path.is_symlink() or not path.is_file():
        return None
    try:
        values = json.loads(path.read_text())
        found = Marker(**values) if str(values.get("made_by", "")).startswith("sesemi") else None
        inode = os.stat(folder).st_ino
    except (OSError, ValueError, TypeError):
        return None
    if found is None or (found.inode is None and found.kind != "run"):
        return None
    return found if found.inode in (None, inode) else None


def owned(folder: str | Path, kind: str | None = None) -> bool:
    """Whether sesemi made `folder` (as a `kind`, when given). A symlink is never owned."""
    found = marker(folder) if not Path(folder).is_symlink() else None
    return found is not None and (kind is None or found.kind == kind)


def require_owned(folder: str | Path, kind: str | None, action: str) -> None:
    """Refuses to `action` a folder sesemi cannot prove it made."""
    if not owned(folder, kind):
        what = f"a sesemi {kind} folder" if kind else "made by sesemi"
        raise SesemiError(f"will not {action} {folder}: it is not {what} (no {MARKER} marker of its own in it)")


def claim(folder: str | Path, kind: str) -> bool:
    """Marks `folder` as a `kind` sesemi made when it is new or empty (creating it), and tells
    whether sesemi owns it as that kind. A folder that already holds files of someone else's
    stays unmarked: sesemi may add files to it but never replaces or deletes any.

    Raises:
        SesemiError: The folder cannot be created or written (a read-only place, a file).
    """
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise SesemiError(f"{folder} is a file, not a folder; choose a folder")
    if folder.exists() and not os.access(folder, os.W_OK | os.X_OK):
        raise SesemiError(f"cannot write to {folder} (it is read-only for this user); choose another folder")
    try:
        if not folder.is_symlink() and (not folder.exists() or not any(folder.iterdir())):
            mark(folder, kind)
    except OSError as error:
        raise SesemiError(f"cannot write to {folder} ({error.strerror or error}); choose another folder") from None
    return owned(folder, kind)


def within(path: Path, root: Path) -> bool:
    """Whether `path`, with every symlink on the way resolved, lies inside `root`."""
    return Path(os.path.realpath(path)).is_relative_to(os.path.realpath(root))


def walk(root: str | Path) -> Iterator[Path]:
    """Every folder under `root` (itself included), without following symlinks."""
    for folder, subfolders, _ in os.walk(root, followlinks=False):
        subfolders.sort()
        yield Path(folder)


def remove(path: Path, root: Path, kind: str | None = None) -> None:
    """Deletes a file or a folder sesemi made under `root`; a symlink is unlinked, never followed.

    Raises:
        SesemiError: `path` is outside `root`, or a folder without sesemi's marker.
    """
    if not path.is_symlink() and not within(path, root):
        raise SesemiError(f"will not delete {path}: it is outside {root}")
    if path.is_symlink() or path.is_file():
        path.unlink()
        return
    require_owned(path, kind, "delete")
    shutil.rmtree(path)


@contextmanager
def staged(target: str | Path, kind: str) -> Iterator[Path]:
    """Builds a folder under a temporary name beside `target` and renames it into place, marked
    as a `kind`, when the block ends without an error; a `target` that exists is replaced only
    if sesemi made it as that kind. Readers see the old folder or the new one, never a part.

    Ownership is checked again when the folder is put in place (`_put_in_place`): one of the
    user's that appeared at `target` while the block ran is left as it is.

    The temporary folder is marked "staging" with this process's id: one that a killed process
    left beside `target` is deleted by the next call (`remove_abandoned`).

    Raises:
        SesemiError: `target` exists, or appeared meanwhile, and is not a `kind` folder sesemi made.
    """
    target = Path(target)
    if os.path.lexists(target):
        require_owned(target, kind, "replace")
    remove_abandoned(target)
    token = f"{os.getpid()}.{secrets.token_hex(4)}"
    staging = target.with_name(f".{target.name}.{token}.partial")
    mark(staging, "staging", "running")
    try:
        yield staging
        mark(staging, kind)
        _put_in_place(staging, target, kind, target.with_name(f".{target.name}.{token}.old"))
    except BaseException:
        if staging.is_dir():
            shutil.rmtree(staging, ignore_errors=True)
        raise


def _put_in_place(staging: Path, target: Path, kind: str, old: Path) -> None:
    """Renames `staging` to `target`, replacing only a `kind` folder sesemi made there. That one
    is checked, renamed to `old` and checked again (what is deleted is what was checked), so a
    folder that took its place meanwhile is put back, never deleted."""
    gone = SesemiError(
        f"will not replace {target}: something sesemi did not make took its place while sesemi built "
        f"it (no {MARKER} marker of a {kind} folder); move it away and try again"
    )
    if os.path.lexists(target):
        if not owned(target, kind):
            raise gone
        os.rename(target, old)
        if not owned(old, kind):
            os.rename(old, target)
            raise gone
    try:
        os.rename(staging, target)  # fails on a folder made meanwhile, unless it is empty
    except OSError:
        with suppress(OSError):  # fails too if what appeared is still there: ours stays at `old`
            os.rename(old, target)
        raise gone from None
    if os.path.lexists(old):
        mark(old, "staging", "running")  # deleted now, or by the next call if killed here
        remove(old, target.parent, "staging")


def remove_abandoned(target: str | Path) -> list[Path]:
    """Deletes the staging folders of `target` that killed processes left beside it (marked
    "staging" by a process of this machine that is gone); returns them."""
    target = Path(target)
    removed = []
    for path in sorted(target.parent.glob(f".{glob.escape(target.name)}*")):
        found = marker(path) if path.is_dir() and not path.is_symlink() else None
        if found is not None and found.kind == "staging" and found.stopped:
            shutil.rmtree(path)
            removed.append(path)
    return removed

"""What sesemi made: a marker file in every folder it creates, checked before anything is removed.

    <folder>/.sesemi    {"made_by": "sesemi 1.0.0", "kind": "run", "created": "...",
                         "state": "running", "pid": 1234, "host": "..."}

A command that deletes, overwrites or replaces a folder (`rm-failed`, `rm-states`, `group
--force`, `TrainingRun`, `fetch`, the model cache, ...) first asks `owned` and refuses a folder
without the marker: sesemi never touches what it cannot prove it made. `removable` lists what
may go under a folder without following a symlink out of it.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import tempfile
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Literal

from sesemi.errors import SesemiError
from sesemi.version import __version__

MARKER = ".sesemi"
State = Literal["running", "finished", "failed", "interrupted", "complete"]
ENDED = ("finished", "failed", "interrupted")


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
    """

    made_by: str
    kind: str
    created: str
    state: str = "complete"
    pid: int | None = None
    host: str | None = None

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


def write_atomically(path: Path, text: str) -> None:
    """Writes `text` to `path` through a temporary file and a rename: readers see the old file
    or the new one, never a part."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, partial = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".partial", dir=path.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as file:
            file.write(text)
        os.replace(partial, path)
    except BaseException:
        Path(partial).unlink(missing_ok=True)
        raise


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
    )
    write_atomically(folder / MARKER, json.dumps(asdict(made)) + "\n")
    return made


def marker(folder: str | Path) -> Marker | None:
    """The marker of a folder sesemi made, or None (no marker, or not one of sesemi's)."""
    path = Path(folder) / MARKER
    if path.is_symlink() or not path.is_file():
        return None
    try:
        values = json.loads(path.read_text())
        return Marker(**values) if str(values.get("made_by", "")).startswith("sesemi") else None
    except (OSError, ValueError, TypeError):
        return None


def owned(folder: str | Path, kind: str | None = None) -> bool:
    """Whether sesemi made `folder` (as a `kind`, when given). A symlink is never owned."""
    found = marker(folder) if not Path(folder).is_symlink() else None
    return found is not None and (kind is None or found.kind == kind)


def require_owned(folder: str | Path, kind: str | None, action: str) -> None:
    """Refuses to `action` a folder sesemi cannot prove it made."""
    if not owned(folder, kind):
        what = f"a sesemi {kind} folder" if kind else "made by sesemi"
        raise SesemiError(f"will not {action} {folder}: it is not {what} (no {MARKER} marker in it)")


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

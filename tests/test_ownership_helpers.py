"""What sesemi made (sesemi/ownership.py): markers, atomic files and folders, and removal.

Named apart from tests/faults/test_ownership.py: test modules here share one namespace.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys

import numpy as np
import pytest

from sesemi.errors import SesemiError
from sesemi.ownership import (
    MARKER,
    claim,
    mark,
    marker,
    open_atomically,
    owned,
    remove,
    remove_abandoned,
    staged,
    write_atomically,
)


def dead_pid() -> int:
    """The id of a process that has ended."""
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def mark_staging_of(folder, pid: int) -> None:
    """Marks `folder` as a staging folder of the process `pid` on this machine."""
    folder.mkdir(parents=True)
    values = {"made_by": "sesemi 1.0.0", "kind": "staging", "created": "2026-01-01T00:00:00+00:00",
              "state": "running", "pid": pid, "host": socket.gethostname(), "inode": folder.stat().st_ino}
    (folder / MARKER).write_text(json.dumps(values))


def test_open_atomically_replaces_or_keeps_the_previous_file(tmp_path):
    path = tmp_path / "table.csv"
    write_atomically(path, "old\n")
    with pytest.raises(KeyboardInterrupt), open_atomically(path) as file:
        file.write("half")
        raise KeyboardInterrupt
    assert path.read_text() == "old\n" and [p.name for p in tmp_path.iterdir()] == ["table.csv"]
    with open_atomically(tmp_path / "vectors.npy", "wb") as file:
        np.save(file, np.arange(3))
    assert np.load(tmp_path / "vectors.npy").tolist() == [0, 1, 2]


def test_files_get_the_mode_of_any_file_the_user_writes(tmp_path):
    """Not the private 0o600 of a temporary file: others can read predictions as usual."""
    write_atomically(tmp_path / "results.json", "{}")
    (tmp_path / "plain.txt").write_text("{}")
    assert (tmp_path / "results.json").stat().st_mode == (tmp_path / "plain.txt").stat().st_mode


def test_claim_marks_only_new_or_empty_folders(tmp_path):
    assert claim(tmp_path / "new", "predictions") and marker(tmp_path / "new").kind == "predictions"
    (tmp_path / "empty").mkdir()
    assert claim(tmp_path / "empty", "predictions")
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("mine")
    assert not claim(tmp_path / "mine", "predictions") and not (tmp_path / "mine" / MARKER).exists()
    assert not claim(tmp_path / "new", "pseudo")  # sesemi's, but another kind
    (tmp_path / "file").write_text("")
    with pytest.raises(SesemiError, match="is a file, not a folder"):
        claim(tmp_path / "file", "predictions")


def test_a_symlink_is_never_owned_and_remove_unlinks_it(tmp_path):
    target = tmp_path / "target"
    mark(target, "run", "failed")
    (tmp_path / "root").mkdir()
    link = tmp_path / "root" / "link"
    link.symlink_to(target, target_is_directory=True)
    assert owned(target, "run") and not owned(link, "run")
    remove(link, tmp_path / "root", "run")
    assert not link.exists() and (target / MARKER).is_file()
    with pytest.raises(SesemiError, match="outside"):
        remove(target, tmp_path / "root", "run")
    (tmp_path / "root" / "mine").mkdir()
    with pytest.raises(SesemiError, match="not a sesemi run folder"):
        remove(tmp_path / "root" / "mine", tmp_path / "root", "run")
    assert (tmp_path / "root" / "mine").is_dir()


def test_staged_replaces_only_its_own_kind_and_leaves_no_trace(tmp_path):
    target = tmp_path / "groups" / "g"
    with staged(target, "group") as folder:
        (folder / "a").write_text("1")
    assert (target / "a").read_text() == "1" and marker(target).kind == "group"
    with staged(target, "group") as folder:
        (folder / "b").write_text("2")
    assert sorted(p.name for p in target.iterdir()) == [MARKER, "b"]
    with pytest.raises(ValueError), staged(target, "group") as folder:
        (folder / "c").write_text("3")
        raise ValueError
    assert sorted(p.name for p in target.iterdir()) == [MARKER, "b"]
    assert [p.name for p in target.parent.iterdir()] == ["g"]
    (tmp_path / "groups" / "mine").mkdir()
    with pytest.raises(SesemiError, match="will not replace .*mine"), staged(tmp_path / "groups" / "mine", "group"):
        pass
    with pytest.raises(SesemiError, match="will not replace"), staged(target, "data"):
        pass


def test_remove_abandoned_deletes_staging_of_dead_processes_only(tmp_path):
    target = tmp_path / "digits"
    mark_staging_of(tmp_path / ".digits.1.dead.partial", dead_pid())
    mark_staging_of(tmp_path / ".digits.2.alive.partial", os.getpid())
    (tmp_path / ".digits-mine").mkdir()  # no marker: not sesemi's
    assert [p.name for p in remove_abandoned(target)] == [".digits.1.dead.partial"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [".digits-mine", ".digits.2.alive.partial"]


def test_staged_leaves_a_folder_that_appeared_while_it_built(tmp_path):
    """A folder of the user's made at the target while sesemi built (none there before, or one
    in place of sesemi's): kept as it is, one line, and no staging folder left."""
    target = tmp_path / "data" / "digits"
    with pytest.raises(SesemiError, match="will not replace .*digits: something sesemi did not make took its place"):
        with staged(target, "data") as folder:
            (folder / "a").write_text("1")
            target.mkdir()
            (target / "notes.txt").write_text("mine")
    assert [p.name for p in target.parent.iterdir()] == ["digits"]
    assert [p.name for p in target.iterdir()] == ["notes.txt"]
    shutil.rmtree(target)
    with staged(target, "data"):
        pass
    with pytest.raises(SesemiError, match="took its place"), staged(target, "data"):
        os.rename(target, tmp_path / "data" / "elsewhere")  # sesemi's folder moved away
        target.mkdir()
        (target / "notes.txt").write_text("mine")
    assert sorted(p.name for p in target.parent.iterdir()) == ["digits", "elsewhere"]
    assert [p.name for p in target.iterdir()] == ["notes.txt"]


def test_a_marker_proves_only_the_folder_it_was_written_in(tmp_path):
    """Moved, a folder stays sesemi's; a copy of it, or of its marker, is not; a marker of an
    earlier release (no inode) counts only for a run."""
    mark(tmp_path / "made", "predictions")
    (tmp_path / "mine").mkdir()
    shutil.copy(tmp_path / "made" / MARKER, tmp_path / "mine" / MARKER)
    assert marker(tmp_path / "mine") is None and not owned(tmp_path / "mine", "predictions")
    shutil.copytree(tmp_path / "made", tmp_path / "copied")
    assert not owned(tmp_path / "copied")
    os.rename(tmp_path / "made", tmp_path / "moved")
    assert owned(tmp_path / "moved", "predictions")
    for kind, kept in (("run", True), ("predictions", False)):
        values = {"made_by": "sesemi 1.0.0", "kind": kind, "created": "2026-01-01T00:00:00+00:00", "state": "failed"}
        (tmp_path / kind).mkdir()
        (tmp_path / kind / MARKER).write_text(json.dumps(values))
        assert owned(tmp_path / kind, kind) is kept

"""Nothing outside what sesemi made is deleted or written: each case gives what sesemi replaced,
deleted or wrote into by mistake before, and checks the one-line answer and what is kept."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

import sesemi
from sesemi.cli.app import app
from sesemi.errors import SesemiError
from sesemi.ownership import MARKER, mark, marker, record_checksum


def sesemi_cli(*args: object):
    """Runs a `sesemi` command in this process; returns typer's result."""
    return CliRunner().invoke(app, [str(a) for a in args], env={"COLUMNS": "250"})


def refused(result) -> str:
    """The one line `error: ...` of a refused command (exit 1, no traceback)."""
    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, SystemExit) and "Traceback" not in result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    return lines[0]


def snapshot(folder: Path) -> dict[str, bytes | str]:
    """Every file (its bytes) and link (its target) under `folder`, without following links."""
    found: dict[str, bytes | str] = {}
    for path in sorted(folder.rglob("*")):
        if path.is_symlink():
            found[str(path.relative_to(folder))] = os.readlink(path)
        elif path.is_file():
            found[str(path.relative_to(folder))] = path.read_bytes()
    return found


def dead_pid() -> int:
    """The id of a process that has ended."""
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


@pytest.fixture
def runs(trained_run, tmp_path) -> Path:
    """A runs folder holding a copy of the session's trained run, marked finished there (a
    copied marker proves nothing: it names the folder it was written in)."""
    folder = tmp_path / "runs"
    shutil.copytree(trained_run.run_dir, folder / "digits" / "t1")
    mark(folder / "digits" / "t1", "run", "finished")
    return folder


def test_rm_failed_leaves_a_folder_with_a_config_but_no_marker(tmp_path):
    """A run of an earlier release and a folder of the user's that holds a config.yaml: both
    stay, and the output says so in one line."""
    runs = tmp_path / "runs"
    (runs / "digits" / "2025-01-01" / "checkpoints").mkdir(parents=True)
    (runs / "digits" / "2025-01-01" / "config.yaml").write_text("learner: {}\n")
    (runs / "my-notes").mkdir()
    (runs / "my-notes" / "config.yaml").write_text("mine: true\n")
    before = snapshot(runs)
    for dry_run in ("--dry-run", None):
        result = sesemi_cli("rm-failed", runs, *([dry_run] if dry_run else []))
        assert result.exit_code == 0, result.output
        assert "0 failed runs" in result.output
        assert "left alone 2 run folders without a .sesemi marker" in result.output
    assert snapshot(runs) == before


def test_a_link_in_the_runs_folder_is_not_followed(tmp_path):
    """A failed run and a finished run's checkpoints outside, linked into the runs folder: the
    commands that delete neither follow the links nor remove them."""
    outside = tmp_path / "elsewhere"
    mark(outside / "failed", "run", "failed")
    (outside / "failed" / "config.yaml").write_text("learner: {}\n")
    mark(outside / "done", "run", "finished")
    (outside / "done" / "results.json").write_text(json.dumps({"mode": "FIT", "metrics": {}}))
    (outside / "done" / "checkpoints").mkdir()
    (outside / "done" / "checkpoints" / "best.ckpt").write_bytes(b"weights")
    runs = tmp_path / "runs"
    runs.mkdir()
    (runs / "failed").symlink_to(outside / "failed", target_is_directory=True)
    (runs / "done").symlink_to(outside / "done", target_is_directory=True)
    before, links = snapshot(outside), snapshot(runs)
    assert "deleted 0 failed runs" in sesemi_cli("rm-failed", runs).output
    assert "deleted 0 checkpoints" in sesemi_cli("rm-states", runs, "--all").output
    assert snapshot(outside) == before and snapshot(runs) == links


def test_rm_states_leaves_the_checkpoints_of_unmarked_runs(runs):
    """A finished run of an earlier release (no marker) keeps every checkpoint, even with
    --all; a run sesemi marked loses its extra ones."""
    earlier = runs / "digits" / "t0"
    shutil.copytree(runs / "digits" / "t1", earlier)
    (earlier / MARKER).unlink()
    for run in (earlier, runs / "digits" / "t1"):  # a top-k checkpoint, saved as sesemi saves one
        shutil.copy(run / "checkpoints" / "last.ckpt", run / "checkpoints" / "epoch=0-step=2.ckpt")
        record_checksum(run / "checkpoints" / "epoch=0-step=2.ckpt")
    before = snapshot(earlier)
    result = sesemi_cli("rm-states", runs)
    assert result.exit_code == 0, result.output
    assert "deleted 1 checkpoint (" in result.output and "t1/checkpoints/epoch=0-step=2.ckpt" in result.output
    assert "left alone 1 run folder without a .sesemi marker (made before" in result.output
    assert "deleted 0 checkpoints" in sesemi_cli("rm-states", earlier, "--all").output
    assert snapshot(earlier) == before


def test_group_force_does_not_replace_a_folder_sesemi_did_not_make(runs):
    mine = runs / "groups" / "seeds"
    mine.mkdir(parents=True)
    (mine / "plan.md").write_text("mine")
    line = refused(sesemi_cli("group", runs, "--by", "method", "--name", "seeds", "--force"))
    assert f"will not replace {mine}: it is not a group sesemi made" in line
    assert snapshot(mine) == {"plan.md": b"mine"}
    assert [p.name for p in (runs / "groups").iterdir()] == ["seeds"]  # no staging folder left


def test_group_makes_nothing_outside_the_group_for_a_value_with_slashes(runs, tmp_path):
    """A config value that is a path out (`["/../../../../outside/"]`) names one folder inside
    the group, not folders and links outside it."""
    config = runs / "digits" / "t1" / "config.yaml"
    config.write_text(config.read_text() + 'run_tags: ["/../../../../outside/"]\n')
    shutil.copytree(runs / "digits" / "t1", runs / "digits" / "t2")
    (runs / "digits" / "t2" / "config.yaml").write_text(config.read_text().replace('"]', '.."]'))
    before = snapshot(tmp_path)
    result = sesemi_cli("group", runs, "--by", "run_tags", "--name", "g")
    assert result.exit_code == 0, result.output
    group = runs / "groups" / "g"
    made = {path for path in snapshot(tmp_path) if path not in before}
    assert all(path.startswith(str(group.relative_to(tmp_path)) + "/") for path in made)
    labels = sorted(p.name for p in group.iterdir() if p.name not in (MARKER, "summary"))
    assert labels == ['run_tags=["%2F..%2F..%2F..%2F..%2Foutside%2F"]', 'run_tags=["%2F..%2F..%2F..%2F..%2Foutside%2F.."]']
    assert not (tmp_path / "outside").exists()


def test_postprocess_replaces_a_linked_plots_folder_instead_of_writing_through_it(runs, tmp_path):
    """After a first postprocess, `summary/plots` replaced by a link to a folder of the user's:
    the second one leaves that folder as it was."""
    assert sesemi_cli("postprocess", runs).exit_code == 0
    plots = runs / "summary" / "plots"
    shutil.rmtree(plots)
    mine = tmp_path / "figures"
    mine.mkdir()
    (mine / "val_top1.png").write_bytes(b"my figure")
    plots.symlink_to(mine, target_is_directory=True)
    result = sesemi_cli("postprocess", runs)
    assert result.exit_code == 0, result.output
    assert snapshot(mine) == {"val_top1.png": b"my figure"}
    assert not plots.is_symlink() and (plots / "val_top1.png").is_file()


def test_a_fifo_in_a_run_folder_does_not_block(runs):
    """A named pipe as a run's config.yaml or results.json: `rm-failed --dry-run` and
    `postprocess` read it as unreadable, and return."""
    failed = runs / "digits" / "failed"
    mark(failed, "run", "failed")
    os.mkfifo(failed / "config.yaml")
    shutil.copytree(runs / "digits" / "t1", runs / "digits" / "piped")
    (runs / "digits" / "piped" / "results.json").unlink()
    os.mkfifo(runs / "digits" / "piped" / "results.json")

    class Blocked(Exception):  # not an OSError: the code under test would catch that
        pass

    def expire(*_: object) -> None:
        raise Blocked("blocked reading a FIFO")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, 30, 1)  # then every second: each blocked open fails
    try:
        result = sesemi_cli("rm-failed", runs, "--dry-run")
        assert result.exit_code == 0, result.output
        assert "would delete 1 failed run" in result.output and "digits/failed" in result.output
        result = sesemi_cli("postprocess", runs)
        assert result.exit_code == 0, result.output
        assert "digits/t1" in (runs / "summary" / "summary.md").read_text()
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    assert failed.is_dir()


def test_training_run_does_not_write_into_an_existing_unmarked_folder(trained_run, tmp_path):
    mine = tmp_path / "runs" / "pets"
    (mine / "data" / "train").mkdir(parents=True)
    (mine / "data" / "train" / "cat.jpg").write_bytes(b"a photo")
    before = snapshot(mine)
    run = sesemi.training_run(name="pets", label_names=trained_run.tree.classes, dir=tmp_path / "runs")
    images = sorted((trained_run.tree.root / "train").glob("*/*.png"))
    with pytest.raises(SesemiError, match=f"{mine} exists without sesemi's .sesemi marker") as error:
        run.train([(str(p), p.parent.name) for p in images])
    assert "\n" not in str(error.value)
    assert snapshot(mine) == before and not (mine / MARKER).exists()


def test_show_save_force_does_not_overwrite_a_users_config(tmp_path):
    mine = tmp_path / "my_digits.yaml"
    mine.write_text("# my experiment\nrun: {seed: 3}\n")
    line = refused(sesemi_cli("show", "digits", "--save", mine, "--force"))
    assert f"will not overwrite {mine}: sesemi did not write it there, or it was changed since" in line
    assert mine.read_text() == "# my experiment\nrun: {seed: 3}\n"


def test_inference_force_does_not_overwrite_predictions_in_a_users_folder(trained_run, tmp_path):
    mine = tmp_path / "results"
    mine.mkdir()
    (mine / "predictions.csv").write_text("path,label\nx.png,cat\n")
    before = snapshot(mine)
    args = ["inference", trained_run.run_dir, trained_run.tree.root / "val", "--device", "cpu", "--save-dir", mine]
    line = refused(sesemi_cli(*args, "--force"))
    assert f"will not overwrite {mine / 'predictions.csv'}" in line and "choose another --save-dir" in line
    assert snapshot(mine) == before

    out = tmp_path / "out"  # a folder inference made: --force replaces its predictions
    assert sesemi_cli(*args[:-1], out).exit_code == 0
    assert "pass --force" in refused(sesemi_cli(*args[:-1], out))
    assert sesemi_cli(*args[:-1], out, "--force").exit_code == 0
    assert marker(out).kind == "predictions"


def test_a_killed_fetch_is_cleaned_up_by_the_next(tmp_path):
    """The staging folder of a fetch killed with -9 (marked, its process gone) is deleted and the
    data set built; a hidden folder of the user's beside it, without a marker, stays."""
    data = tmp_path / "data"
    staging = data / ".digits.4242.0a1b2c3d.partial"
    staging.mkdir(parents=True)
    (staging / "train").mkdir()  # half written
    values = {"made_by": "sesemi 1.0.0", "kind": "staging", "created": "2026-01-01T00:00:00+00:00",
              "state": "running", "pid": dead_pid(), "host": socket.gethostname(), "inode": staging.stat().st_ino}
    (staging / MARKER).write_text(json.dumps(values))
    (data / ".digits-mine").mkdir()
    (data / ".digits-mine" / "notes.txt").write_text("mine")
    result = sesemi_cli("fetch", "digits", "--data-dir", data)
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in data.iterdir()) == [".digits-mine", "digits", "digits.lock"]
    assert marker(data / "digits").kind == "data" and len(list((data / "digits" / "val").rglob("*.png"))) == 500
    assert (data / ".digits-mine" / "notes.txt").read_text() == "mine"


def test_fetch_leaves_a_folder_made_while_it_builds(tmp_path, monkeypatch):
    """`mkdir data/digits` while a fetch builds: the user's folder and its file stay, the fetch
    fails in one line and leaves no staging folder."""
    from sesemi.datasets import builtin

    data, mine = tmp_path / "data", tmp_path / "data" / "digits"

    def build_while_the_user_writes(staging: Path) -> None:
        (staging / "train").mkdir()
        mine.mkdir()
        (mine / "notes.txt").write_text("mine")

    monkeypatch.setitem(builtin.BUILDERS, "digits", build_while_the_user_writes)
    line = refused(sesemi_cli("fetch", "digits", "--data-dir", data))
    assert f"will not replace {mine}: something sesemi did not make took its place" in line
    assert snapshot(data) == {"digits.lock": b"", "digits/notes.txt": b"mine"}


def test_fetch_with_a_linked_lock_is_one_line(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "digits.lock").symlink_to(tmp_path / "elsewhere")
    assert f"will not lock {data / 'digits.lock'}: it is a link" in refused(sesemi_cli("fetch", "digits", "--data-dir", data))
    assert not (tmp_path / "elsewhere").exists() and sorted(p.name for p in data.iterdir()) == ["digits.lock"]


def test_inference_force_does_not_trust_a_marker_copied_into_a_users_folder(trained_run, tmp_path):
    """The marker of a predictions folder sesemi made, copied into one of the user's: --force
    neither overwrites their predictions.csv nor deletes their embeddings.npy."""
    args = ["inference", trained_run.run_dir, trained_run.tree.root / "val", "--device", "cpu", "--save-dir"]
    assert sesemi_cli(*args, tmp_path / "preds1").exit_code == 0
    mine = tmp_path / "mywork"
    mine.mkdir()
    (mine / "predictions.csv").write_text("path,label\nx.png,cat\n")
    (mine / "embeddings.npy").write_bytes(b"my vectors")
    shutil.copy(tmp_path / "preds1" / MARKER, mine / MARKER)
    before = snapshot(mine)
    line = refused(sesemi_cli(*args, mine, "--force"))
    assert f"will not overwrite {mine / 'predictions.csv'}" in line and "choose another --save-dir" in line
    assert snapshot(mine) == before


def test_fetch_uses_an_unmarked_data_folder_as_it_is(tmp_path):
    """A digits folder sesemi cannot prove it made is neither rebuilt nor deleted."""
    mine = tmp_path / "data" / "digits"
    (mine / "train" / "0").mkdir(parents=True)
    (mine / "train" / "0" / "scan.png").write_bytes(b"mine")
    before = snapshot(mine)
    result = sesemi_cli("fetch", "digits", "--data-dir", tmp_path / "data")
    assert result.exit_code == 0, result.output
    assert snapshot(mine) == before and not (mine / MARKER).exists()


def test_a_read_only_output_folder_is_one_line(trained_run, tmp_path):
    folder = tmp_path / "read-only"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        if os.access(folder, os.W_OK):
            pytest.skip("this user may write anywhere (root): permissions cannot be tested")
        args = ["inference", trained_run.run_dir, trained_run.tree.root / "val", "--device", "cpu"]
        line = refused(sesemi_cli(*args, "--save-dir", folder))
        assert f"cannot write to {folder} (it is read-only for this user)" in line
        line = refused(sesemi_cli(*args, "--save-dir", folder / "inside"))
        assert f"cannot write to {folder} (it is read-only for this user)" in line
        assert list(folder.iterdir()) == []
    finally:
        folder.chmod(0o700)

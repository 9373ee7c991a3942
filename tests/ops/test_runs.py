"""Finding, reading and tidying run folders (sesemi/ops/runs.py)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil

import pytest
import yaml
from run_folders import run_config, write_run

from sesemi.errors import SesemiError
from sesemi.ops.runs import (
    LABEL_BYTES,
    LINK_BYTES,
    field_value,
    find_runs,
    group_runs,
    method,
    remove_checkpoints,
    remove_failed,
    surplus_checkpoints,
)
from sesemi.ownership import mark, record_checksum
from sesemi.results import RunResult


def tagged(tags: object, **kwargs: object) -> dict:
    """A run config with `run.tags` set to `tags`."""
    config = run_config(**kwargs)
    config["run"]["tags"] = tags
    return config


@pytest.fixture
def make_run(tmp_path):
    """`make_run("digits/t1", config=run_config(seed=2), top1=[0.3, 0.6])` writes
    `tmp_path/runs/digits/t1` (see run_folders.write_run)."""
    return lambda name, **kwargs: write_run(tmp_path / "runs" / name, **kwargs)


def test_find_runs_reads_every_layout(make_run, tmp_path):
    """Single runs, Hydra multirun members and failed runs are found, sorted by name; run
    folders are not searched further, and folders of operations are not runs."""
    make_run("digits/2026-01-01_00-00-00")
    make_run("digits/multirun_2026-01-02_00-00-00/0", config=run_config(seed=1))
    make_run("digits/multirun_2026-01-02_00-00-00/1", config=run_config(seed=2))
    make_run("fixmatch/2026-01-03_00-00-00", top1=None)  # failed: no results.json
    early = (
        tmp_path / "runs" / "digits" / "2026-01-04_00-00-00" / ".hydra"
    )  # failed before config.yaml
    early.mkdir(parents=True)
    (early / "config.yaml").write_text(
        yaml.safe_dump({"learner": {"_target_": "sesemi.Classifier"}})
    )
    op = tmp_path / "runs" / "ops" / "2026-01-05_00-00-00" / ".hydra"  # an operation, not a run
    op.mkdir(parents=True)
    (op / "config.yaml").write_text(
        yaml.safe_dump({"_target_": "sesemi.ops.pseudo_dataset.pseudo_dataset"})
    )

    runs = find_runs(tmp_path / "runs")
    assert [run.name for run in runs] == [
        "digits/2026-01-01_00-00-00",
        "digits/2026-01-04_00-00-00",
        "digits/multirun_2026-01-02_00-00-00/0",
        "digits/multirun_2026-01-02_00-00-00/1",
        "fixmatch/2026-01-03_00-00-00",
    ]
    assert [run.finished for run in runs] == [True, False, True, True, False]
    assert runs[2].config["run"]["seed"] == 1 and runs[2].result.best_score == 0.5
    assert [run.name for run in runs if not run.finished] == [
        "digits/2026-01-04_00-00-00",
        "fixmatch/2026-01-03_00-00-00",
    ]


def test_a_run_reached_through_a_link_is_listed_once_by_its_own_path(make_run, tmp_path):
    """Runs linked into a group are not counted twice when the whole folder is searched."""
    run = make_run("digits/t1")
    group = tmp_path / "runs" / "groups" / "g" / "seed=1"
    group.mkdir(parents=True)
    (group / "digits_t1").symlink_to(run, target_is_directory=True)
    assert [r.name for r in find_runs(tmp_path / "runs")] == ["digits/t1"]
    assert [r.name for r in find_runs(tmp_path / "runs" / "groups")] == ["g/seed=1/digits_t1"]


def test_link_loops_are_searched_once(make_run, tmp_path, time_limit):
    """Links to `.` and to a folder above end the search, not loop; a folder of runs linked
    before its own path (`0link` sorts first) still lists its runs by their direct paths."""
    runs = tmp_path / "runs"
    make_run("x/r")
    for name, target in (("a", "."), ("b", "."), ("x/up", "../.."), ("0link", "x")):
        (runs / name).symlink_to(target, target_is_directory=True)
    with time_limit(10):
        assert [r.name for r in find_runs(runs)] == ["x/r"]
        assert [r.name for r in find_runs(runs / "0link")] == ["r"]
        assert remove_failed(runs).removed == []


def test_damaged_results_are_unreadable_not_a_crash(make_run, tmp_path):
    """A results.json that is not an object, is nested too deep, or holds values of the wrong
    type is damaged: its run is listed as unfinished and tidying goes on."""
    damaged = {
        "text": '"x"',
        "deep": "[" * 100_000 + "]" * 100_000,
        "no_mode": json.dumps({"metrics": {}}),
        "metrics": json.dumps({"mode": "FIT", "metrics": "abc"}),
        "metric": json.dumps({"mode": "FIT", "metrics": {"val/top1": "high"}}),
        "shares": json.dumps({"mode": "FIT", "unlabeled": {"pseudo_labeled_per_class": {"0": "x"}}}),
        "checkpoint": json.dumps({"mode": "FIT", "best": {"checkpoint": 5}}),
        "steps": json.dumps({"mode": "FIT", "global_step": [1]}),
        "huge": json.dumps({"mode": "FIT", "metrics": {"val/top1": 10**400}}),  # no float holds it: publish failed
    }
    for name, text in damaged.items():
        (make_run(name, top1=None, state="finished") / "results.json").write_text(text)
    make_run("good")
    (make_run("digits_in_config") / "config.yaml").write_text(f"run:\n  seed: {'9' * 5000}\n")  # int() refuses it
    assert {run.name: run.config for run in find_runs(tmp_path / "runs")}["digits_in_config"] is None
    shutil.rmtree(tmp_path / "runs" / "digits_in_config")
    for name in damaged:
        with pytest.raises(SesemiError, match=r"results.json.*the file is damaged"):
            RunResult.read(tmp_path / "runs" / name)
    runs = find_runs(tmp_path / "runs")
    assert [run.name for run in runs if run.finished] == ["good"]
    assert remove_failed(tmp_path / "runs").removed == []
    assert remove_checkpoints(tmp_path / "runs").removed == []


def test_a_missing_runs_folder_is_one_line(tmp_path):
    with pytest.raises(SesemiError, match="runs folder .*nowhere does not exist"):
        find_runs(tmp_path / "nowhere")


def test_method_is_the_configs_else_the_loss_heads_names():
    """The method config's name (flexmatch and fixmatch share a head); for runs from before
    `run.method`, the loss heads' names, `supervised` without any."""
    config = run_config(heads=["fixmatch"])
    assert method(config) == "fixmatch"
    config["run"]["method"] = "flexmatch"
    assert method(config) == "flexmatch"
    assert (
        method(run_config(heads=["rotation_prediction", "jigsaw"])) == "jigsaw+rotation_prediction"
    )
    assert method(run_config(heads=[])) == "supervised"


def test_method_of_a_config_of_any_shape():
    """Configs come from anyone: a method or heads of other types are named, never a crash."""
    assert method({"run": {"method": 5}}) == "5"
    assert method({"learner": {"hparams": {"model": 5}}}) == "none"
    assert method({"learner": {"hparams": {"model": {"regularization_loss_heads": {1: "a", "b": 2}}}}}) == "1+b"
    assert method({"learner": {"hparams": {"model": {"regularization_loss_heads": 3}}}}) == "none"


def test_field_value_reads_dotted_fields(make_run, tmp_path):
    make_run("r", config=run_config(lr=0.03))
    (run,) = find_runs(tmp_path / "runs")
    assert field_value(run, "learner.hparams.optimizer.lr") == 0.03
    assert field_value(run, "method") == "rotation_prediction"
    assert field_value(run, "learner.hparams.nothing") is None


def test_surplus_checkpoints_keep_best_and_last(make_run, tmp_path):
    """Extra checkpoints of a finished run go; best and last stay unless `everything`;
    unfinished runs keep all of theirs (they may be resumed)."""
    make_run(
        "done", checkpoints=("best.ckpt", "last.ckpt", "interrupted.ckpt", "epoch=0-step=10.ckpt")
    )
    make_run("failed", top1=None, checkpoints=("last.ckpt", "interrupted.ckpt"))
    done, failed = find_runs(tmp_path / "runs")
    assert [p.name for p in surplus_checkpoints(done)] == [
        "epoch=0-step=10.ckpt",
        "interrupted.ckpt",
    ]
    assert len(surplus_checkpoints(done, everything=True)) == 4
    assert surplus_checkpoints(failed) == [] and surplus_checkpoints(failed, everything=True) == []


def test_group_runs_links_runs_by_field_values(make_run, tmp_path):
    """One folder per value of the fields, holding relative links to the runs."""
    for seed, lr in ((1, 0.1), (2, 0.1), (1, 0.01)):
        make_run(f"digits/s{seed}-lr{lr}", config=run_config(seed=seed, lr=lr))
    runs = find_runs(tmp_path / "runs")
    folder = tmp_path / "runs" / "groups" / "lr"
    groups = group_runs(runs, ["learner.hparams.optimizer.lr"], folder)
    assert {label: len(members) for label, members in groups.items()} == {"lr=0.01": 1, "lr=0.1": 2}
    link = folder / "lr=0.1" / "digits_s2-lr0.1"
    assert link.is_symlink() and not os.path.isabs(os.readlink(link))
    assert (link / "results.json").is_file()


def test_runs_whose_names_flatten_alike_get_a_link_each(make_run, tmp_path):
    """`a/b_c` and `a_b/c` both flatten to `a_b_c`: both are linked, neither is lost."""
    make_run("a/b_c", config=run_config(seed=1))
    make_run("a_b/c", config=run_config(seed=1))
    folder = tmp_path / "runs" / "groups" / "seeds"
    group_runs(find_runs(tmp_path / "runs"), ["run.seed"], folder)
    links = sorted(p.name for p in (folder / "seed=1").iterdir())
    assert links == ["a_b_c", "a_b_c~2"]
    assert {os.path.realpath(folder / "seed=1" / name) for name in links} == {
        str((tmp_path / "runs" / name).resolve()) for name in ("a/b_c", "a_b/c")
    }


def test_link_names_are_bounded_and_unique(make_run, tmp_path):
    """Runs whose paths are longer than a file name get links of a bounded length, one each."""
    for name in ("d" * 200 + "/" + "e" * 100 + "/r0", "d" * 200 + "/" + "e" * 100 + "/r1", "d" * 200 + "_e/r0", "d" * 200 + "/e/r0"):
        make_run(name, config=run_config(seed=1))  # the last two flatten alike
    folder = tmp_path / "runs" / "groups" / "seeds"
    group_runs(find_runs(tmp_path / "runs"), ["run.seed"], folder)
    links = list((folder / "seed=1").iterdir())
    assert len(links) == 4 and all(len(link.name.encode()) <= LINK_BYTES for link in links)
    assert {os.path.realpath(link) for link in links} == {str(run.path.resolve()) for run in find_runs(tmp_path / "runs")}


def test_group_labels_are_folder_names_inside_the_group(make_run, tmp_path):
    """Values with `/`, `..`, a leading dot, `\\` or a NUL (lists and mappings as JSON too)
    become one folder each, directly in the group: nothing is made outside it."""
    values = [
        ["/../../../../outside/"],  # unfixed: tmp_path/outside
        {"../../../../outside": 1},
        "..",
        ".hidden",
        "back\\slash",
        "nul\x00",
    ]
    for i, value in enumerate(values):
        make_run(f"digits/r{i}", config=tagged(value, seed=i))
    runs = find_runs(tmp_path / "runs")
    folder = tmp_path / "runs" / "groups" / "tags"
    groups = group_runs(runs, ["run.tags"], folder)
    assert len(groups) == len(values)
    for label in groups:
        assert "/" not in label and "\\" not in label and "\x00" not in label and not label.startswith(".")
        assert (folder / label).is_dir() and (folder / label).parent == folder
    assert sorted(p.name for p in folder.iterdir()) == sorted(groups)
    assert "tags=[\"%2F..%2F..%2F..%2F..%2Foutside%2F\"]" in groups  # readable
    assert sorted(p.name for p in tmp_path.iterdir()) == ["runs"]
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == ["digits", "groups"]
    assert sorted(p.name for p in (tmp_path / "runs" / "digits").iterdir()) == [f"r{i}" for i in range(len(values))]


def test_different_values_get_different_labels(make_run, tmp_path):
    """Values that would read alike (`a/b` and `a_b`, a value with a comma of two fields) or
    that are too long for a folder name each get a label of their own, of a bounded length."""
    values = ["a/b", "a_b", "a%2Fb", ["a/b"], "x" * 300, "x" * 300 + "y", "é" * 200]
    for i, value in enumerate(values):
        make_run(f"one/r{i}", config=tagged(value, seed=i))
    groups = group_runs(find_runs(tmp_path / "runs" / "one"), ["run.tags"], tmp_path / "one")
    assert len(groups) == len(values) and all(len(members) == 1 for members in groups.values())
    assert {"tags=a%2Fb", "tags=a_b", "tags=a%252Fb"} <= set(groups)
    assert all(len(label.encode()) <= LABEL_BYTES for label in groups)

    make_run("two/r0", config=tagged("x,seed=1", seed=2))
    make_run("two/r1", config=tagged("x", seed="1,seed=2"))  # tags=x,seed=1,seed=2 as well
    groups = group_runs(find_runs(tmp_path / "runs" / "two"), ["run.tags", "run.seed"], tmp_path / "two")
    assert len(groups) == 2 and "tags=x,seed=1,seed=2" in groups
    assert sorted(p.name for p in (tmp_path / "two").iterdir()) == sorted(groups)


def test_group_runs_refuses_a_label_that_is_not_a_folder_name(make_run, tmp_path, monkeypatch):
    """Whatever makes the labels, none is made outside the group folder."""
    make_run("r")
    runs = find_runs(tmp_path / "runs")
    for label in ("../../escape", "..", "sub/dir", ".hidden"):
        monkeypatch.setattr("sesemi.ops.runs.partition", lambda runs, by, label=label: {label: list(runs)})
        with pytest.raises(SesemiError, match="is not a folder name inside"):
            group_runs(runs, ["run.seed"], tmp_path / "g")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["g", "runs"] and not any((tmp_path / "g").iterdir())


def test_a_fifo_as_a_runs_file_is_unreadable_without_blocking(make_run, tmp_path, time_limit):
    """A named pipe (or a link to one) as config.yaml or results.json, or a config that is not
    UTF-8: the run is listed as unreadable, and tidying does not block on it."""
    piped_config = make_run("piped_config", top1=None)
    (piped_config / "config.yaml").unlink()
    os.mkfifo(piped_config / "config.yaml")
    piped_result = make_run("piped_result")
    (piped_result / "results.json").unlink()
    os.mkfifo(piped_result / "results.json")
    linked = make_run("linked")
    os.mkfifo(tmp_path / "pipe")
    (linked / "results.json").unlink()
    (linked / "results.json").symlink_to(tmp_path / "pipe")
    binary = make_run("binary")
    (binary / "config.yaml").write_bytes(b"run: \xff\xfe\n")
    bomb = make_run("bomb")  # 9 levels of 9 aliases: 387 million strings to build
    levels = ["a0: &a0 [x, x, x, x, x, x, x, x, x]"]
    levels += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 10)]
    (bomb / "config.yaml").write_text("\n".join(levels) + "\n")
    with time_limit(10):
        runs = {run.name: run for run in find_runs(tmp_path / "runs")}
        assert runs["piped_config"].config is None and runs["binary"].config is None and runs["bomb"].config is None
        assert runs["piped_result"].result is None and runs["linked"].result is None
        assert runs["binary"].finished and runs["piped_result"].config is not None
        assert remove_failed(tmp_path / "runs", dry_run=True).removed == [piped_config]
        with pytest.raises(SesemiError, match="results.json: it is not a regular file"):
            RunResult.read(piped_result)
    (tmp_path / "results.json").write_text(json.dumps({"mode": "FIT"}))
    (linked / "results.json").unlink()
    (linked / "results.json").symlink_to(tmp_path / "results.json")  # a link to a regular file reads
    assert RunResult.read(linked).mode == "FIT"


def test_remove_failed_deletes_only_stopped_runs_sesemi_marked(make_run, tmp_path):
    """Failed, interrupted and killed (running, process gone) runs go; a live run, a finished
    one and an unmarked folder of an earlier release stay; a dry run deletes nothing."""
    runs = tmp_path / "runs"
    failed = make_run("failed", top1=None)
    interrupted = make_run("interrupted", top1=None, state="interrupted")
    killed = make_run("killed", top1=None, state="running")
    stamp = (killed / ".sesemi").read_text()
    (killed / ".sesemi").write_text(stamp.replace(f'"pid": {os.getpid()}', '"pid": 999999999'))  # gone
    live = make_run("live", top1=None, state="running")
    earlier = make_run("earlier", top1=None, state=None)
    finished = make_run("finished")
    # killed between writing results.json and marking itself finished: its results are whole
    just_finished = make_run("just_finished", state="running")
    own = (just_finished / ".sesemi").read_text()
    (just_finished / ".sesemi").write_text(own.replace(f'"pid": {os.getpid()}', '"pid": 999999999'))

    dry = remove_failed(runs, dry_run=True)
    assert dry.removed == [failed, interrupted, killed] and dry.size > 0
    assert dry.unmarked == [earlier] and dry.running == [live]
    assert all(path.exists() for path in (failed, interrupted, killed))
    assert "left alone 1 run folder without a .sesemi marker" in dry.left_alone()
    assert dry.left_alone().endswith("and 1 run still running")

    assert remove_failed(runs).removed == [failed, interrupted, killed]
    assert sorted(p.name for p in runs.iterdir()) == ["earlier", "finished", "just_finished", "live"]
    assert finished.exists() and earlier.exists() and live.exists()


def test_tidying_a_folder_given_as_a_link_tidies_where_it_leads(make_run, tmp_path):
    """`sesemi rm-failed my_link` (a link to a failed run, or to a folder of runs): the run goes,
    not the link in its place while the run stays."""
    failed = make_run("failed", top1=None)
    (tmp_path / "my_link").symlink_to(failed, target_is_directory=True)
    assert remove_failed(tmp_path / "my_link").removed == [failed]
    assert not failed.exists() and (tmp_path / "my_link").is_symlink()
    done = make_run("done", checkpoints=("best.ckpt", "last.ckpt", "epoch=0-step=10.ckpt"))
    (tmp_path / "all_runs").symlink_to(tmp_path / "runs", target_is_directory=True)
    assert remove_checkpoints(tmp_path / "all_runs").removed == [done / "checkpoints" / "epoch=0-step=10.ckpt"]


def test_remove_failed_never_follows_a_link_out_of_the_folder(make_run, tmp_path):
    """A failed run outside the folder, linked into it, is neither deleted nor counted."""
    outside = write_run(tmp_path / "elsewhere" / "failed", top1=None)
    (tmp_path / "runs").mkdir()
    (tmp_path / "runs" / "link").symlink_to(outside, target_is_directory=True)
    assert remove_failed(tmp_path / "runs").removed == []
    assert (outside / "config.yaml").is_file() and (tmp_path / "runs" / "link").is_symlink()
    assert [r.name for r in find_runs(tmp_path / "runs", follow_links=False)] == []
    assert [r.name for r in find_runs(tmp_path / "runs")] == ["link"]


def test_remove_checkpoints_only_of_runs_marked_finished(make_run, tmp_path):
    extra = ("best.ckpt", "last.ckpt", "epoch=0-step=10.ckpt")
    done = make_run("done", checkpoints=extra)
    earlier = make_run("earlier", checkpoints=extra, state=None)
    running = make_run("running", checkpoints=extra, state="running")  # results.json, still going
    tidied = remove_checkpoints(tmp_path / "runs")
    assert tidied.removed == [done / "checkpoints" / "epoch=0-step=10.ckpt"] and tidied.size == 1000
    assert tidied.unmarked == [earlier]
    assert not tidied.removed[0].exists()
    assert len(list(earlier.glob("checkpoints/*.ckpt"))) == 3
    assert len(list(running.glob("checkpoints/*.ckpt"))) == 3


def test_rm_states_leaves_checkpoints_sesemi_did_not_save(make_run, tmp_path):
    """Copies a user put beside the run's checkpoints are theirs, with or without --all, even
    with a checksum beside them (copied with the checkpoint, written by `sha256sum`, or empty);
    sesemi's own go, with their checksums."""
    run = make_run("done", checkpoints=("best.ckpt", "last.ckpt", "epoch=0-step=10.ckpt"))
    folder = run / "checkpoints"
    (folder / "my_backup.ckpt").write_bytes((folder / "best.ckpt").read_bytes())
    shutil.copy(folder / "epoch=0-step=10.ckpt", folder / "snapshot.ckpt")
    shutil.copy(folder / "epoch=0-step=10.ckpt.sha256", folder / "snapshot.ckpt.sha256")
    (folder / "summed.ckpt").write_bytes(b"mine")
    (folder / "summed.ckpt.sha256").write_text(f"{hashlib.sha256(b'mine').hexdigest()}  summed.ckpt\n")
    (folder / "notes.ckpt").write_text("hello")
    (folder / "notes.ckpt.sha256").touch()
    replaced = folder / "epoch=1-step=20.ckpt"  # written over since: the file system may reuse the inode
    replaced.write_bytes(b"0" * 1000)
    record_checksum(replaced)
    os.utime(replaced, ns=(1, 1))
    mine = ["epoch=1-step=20.ckpt", "epoch=1-step=20.ckpt.sha256", "my_backup.ckpt", "notes.ckpt", "notes.ckpt.sha256"]
    mine += ["snapshot.ckpt", "snapshot.ckpt.sha256", "summed.ckpt", "summed.ckpt.sha256"]
    tidied = remove_checkpoints(tmp_path / "runs")
    assert tidied.removed == [folder / "epoch=0-step=10.ckpt"]
    assert [path.name for path in tidied.unproven] == ["epoch=1-step=20.ckpt", "my_backup.ckpt", "notes.ckpt", "snapshot.ckpt", "summed.ckpt"]
    assert "5 checkpoints sesemi cannot prove it saved" in tidied.left_alone()
    assert sorted(p.name for p in remove_checkpoints(tmp_path / "runs", everything=True).removed) == ["best.ckpt", "last.ckpt"]
    assert sorted(p.name for p in folder.iterdir()) == mine


def test_remove_checkpoints_does_not_look_into_linked_checkpoints(make_run, tmp_path):
    """A run whose checkpoints/ is a link elsewhere keeps what is there, even with --all."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "best.ckpt").write_bytes(b"0")
    run = make_run("done", checkpoints=())
    (run / "checkpoints").rmdir()
    (run / "checkpoints").symlink_to(elsewhere, target_is_directory=True)
    assert remove_checkpoints(tmp_path / "runs", everything=True).removed == []
    assert (elsewhere / "best.ckpt").is_file()


def test_a_run_marked_before_it_wrote_anything_is_found(tmp_path):
    """Killed between its marker and its config: still a run, so rm-failed can tidy it."""
    mark(tmp_path / "runs" / "r", "run", "failed")
    assert [r.name for r in find_runs(tmp_path / "runs")] == ["r"]

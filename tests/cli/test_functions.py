"""The commands as Python functions (sesemi/cli/functions.py): same arguments, return values,
and errors raised as `SesemiError` instead of printed."""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml
from audio_samples import audio_tree
from sesemi.cli.project import check_config_dir

import sesemi.cli
from sesemi.datasets import builtin
from sesemi.errors import SesemiError

pytest_plugins = ["cli_project"]  # the project, runs_copy and sesemi_cli fixtures


def test_the_functions_are_exported():
    for name in (
        "create",
        "list",
        "show",
        "fetch",
        "train",
        "postprocess",
        "rm_failed",
        "rm_states",
        "group",
    ):
        assert callable(getattr(sesemi.cli, name))


def test_create_writes_a_config_that_composes(tmp_path, capsys):
    """custom.yaml starts from `base` and composes with the built-in configs behind it."""
    root = sesemi.cli.create(tmp_path / "p")
    capsys.readouterr()
    sesemi.cli.train("custom", config_dir=root / "configs", overrides=["--cfg", "job"])
    config = yaml.safe_load(capsys.readouterr().out)
    assert config["run"]["id"] == "custom" and config["run"]["data_root"] == "./data/digits"
    assert config["learner"]["hparams"]["model"]["backbone"]["widths"] == [
        16,
        32,
        64,
    ]  # convnet_small
    with pytest.raises(SesemiError, match="exists; pass --force"):
        sesemi.cli.create(root)


def test_list_and_show_return_names_and_text(tmp_path):
    names = sesemi.cli.list()
    assert {"base", "digits", "image", "audio"} <= set(names)
    assert sesemi.cli.list("backbone", pattern="convnet*") == [
        "backbone/convnet",
        "backbone/convnet_small",
    ]
    text = sesemi.cli.show("method/fixmatch", save=tmp_path / "mine.yaml")
    assert (tmp_path / "mine.yaml").read_text() == text and "FixMatchLossHead" in text
    with pytest.raises(SesemiError, match="no built-in config 'method/fixmatchh'; did you mean fixmatch"):
        sesemi.cli.show("method/fixmatchh")


def test_fetch_builds_once_under_a_lock(tmp_path, monkeypatch):
    """Parallel fetches of one data set build it once; the others wait and find it complete."""
    calls, active, overlap = [], [], []

    def build(target: Path) -> None:
        active.append(1)
        overlap.append(len(active) > 1)
        time.sleep(0.3)
        (target / "train" / "a").mkdir(parents=True)
        (target / "train" / "a" / "x.png").write_bytes(b"")
        calls.append(target)
        active.pop()

    monkeypatch.setitem(builtin.BUILDERS, "toy", build)
    results: list[Path] = []
    threads = [
        threading.Thread(target=lambda: results.append(sesemi.cli.fetch("toy", tmp_path)))
        for _ in range(4)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(calls) == 1 and not any(overlap)
    assert results == [tmp_path / "toy"] * 4
    assert (tmp_path / "toy" / "train" / "a" / "x.png").is_file()


def test_fetch_errors(tmp_path):
    with pytest.raises(SesemiError, match="sesemi cannot download imagewoof; .*curl"):
        sesemi.cli.fetch("imagewoof", tmp_path)
    (tmp_path / "imagewoof2" / "train").mkdir(parents=True)
    (tmp_path / "imagewoof2" / "val").mkdir()
    assert sesemi.cli.fetch("imagewoof", tmp_path) == tmp_path / "imagewoof2"


def test_train_raises_user_errors(tmp_path, monkeypatch):
    """From Python, a bad data folder is a SesemiError (not an exit), and the environment is
    left as it was."""
    monkeypatch.delenv("HYDRA_FULL_ERROR", raising=False)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SesemiError, match="data folder .*nowhere/train does not exist"):
        sesemi.cli.train(
            "digits", overrides=[f"run.data_root={tmp_path / 'nowhere'}", "run.gpus=0"]
        )
    assert "HYDRA_FULL_ERROR" not in os.environ


def test_configs_shadowed_by_builtins_are_named(tmp_path, caplog):
    """A config of the selected name fails; other files Hydra would skip get a warning."""
    (tmp_path / "backbone").mkdir()
    for name in ("image.yaml", "mine.yaml", "backbone/resnet18.yaml", "backbone/my_net.yaml"):
        (tmp_path / name).write_text("run:\n  id: mine\n")
    with pytest.raises(SesemiError, match="image.yaml has the name of a built-in config"):
        sesemi.cli.train("image", tmp_path)
    check_config_dir("mine", tmp_path)
    assert "backbone/resnet18.yaml" in caplog.text and "image.yaml" in caplog.text
    assert "mine.yaml" not in caplog.text and "my_net" not in caplog.text


def test_inference_agrees_with_the_run_s_validation(project, tmp_path):
    """Predicting the whole validation folder with the best checkpoint gives the accuracy the run
    recorded for it."""
    (results,) = [
        json.loads(p.read_text())
        for p in sorted(project.glob("runs/custom/multirun_*/*/results.json"))[:1]
    ]
    target = sesemi.cli.inference(
        Path(results["run_dir"]), project / "data" / "digits" / "val", save_dir=tmp_path
    )
    table = pd.read_csv(target, dtype={"label": str})
    truth = table["path"].map(lambda path: Path(path).parent.name)
    assert len(table) == 500
    assert (table["label"] == truth).mean() == pytest.approx(results["best"]["val/top1"], abs=1e-6)


def test_preprocess_returns_counts(tmp_path):
    tree = audio_tree(tmp_path / "sounds", train=1, val=1, unlabeled=1)
    (first,) = sesemi.cli.preprocess(tree.root, sample_rate=8000)
    assert first["sample_rate"] == 8000 and first["written"] == first["files"] == 7
    (again,) = sesemi.cli.preprocess(tree.root, sample_rate=8000)
    assert again["written"] == 0 and again["up_to_date"] == 7


def test_postprocess_returns_the_tables(project, tmp_path):
    summary = sesemi.cli.postprocess(project / "runs", output_dir=tmp_path)
    assert len(summary.runs) == 2 and summary.by == ["id", "method"]
    assert summary.aggregated["runs"].tolist() == [2]
    assert {p.name for p in summary.plots} >= {"val_top1.png", "train_loss.png"}


def test_rm_states_and_rm_failed_return_what_they_delete(runs_copy):
    assert sesemi.cli.rm_states(runs_copy) == []
    every = sesemi.cli.rm_states(runs_copy, all=True, dry_run=True)
    assert len(every) == 4 and all(p.exists() for p in every)
    assert sesemi.cli.rm_failed(runs_copy) == []


def test_group_returns_its_folder(runs_copy):
    folder = sesemi.cli.group(runs_copy, by=["method,run.seed"], name="both")
    assert sorted(p.name for p in folder.iterdir()) == [
        "method=rotation_prediction,seed=1",
        "method=rotation_prediction,seed=2",
        "summary",
    ]
    with pytest.raises(SesemiError, match="plain folder name"):
        sesemi.cli.group(runs_copy, by=["run.seed"], name="../up")

"""The `open_sesemi` console script (sesemi/cli/open_sesemi.py), end to end.

Each CLI run is a real subprocess of the installed script on the built `digits` data set with a
tiny network and budget (a few seconds each, mostly start-up).
"""

from __future__ import annotations

import csv
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from hydra.errors import InstantiationException

from sesemi.errors import SesemiError, user_error

OPEN_SESEMI = Path(sys.executable).parent / "open_sesemi"

# A small network, small batches and quiet output: each run takes seconds on a CPU.
TINY = [
    "learner.hparams.model.backbone.widths=[4,8]",
    "run.batch_size_per_gpu=8",
    "run.mu=0.5",  # 4 unlabeled images per step
    "+trainer.enable_progress_bar=false",
    "+trainer.enable_model_summary=false",
]


def open_sesemi(*args: str, cwd: Path, timeout: float = 240) -> subprocess.CompletedProcess:
    """Runs the console script in `cwd` and returns the finished process (text output)."""
    assert OPEN_SESEMI.exists(), f"{OPEN_SESEMI} is not installed"
    env = {k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"}
    env.update(HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1")
    return subprocess.run(
        [str(OPEN_SESEMI), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )


def only_run_dir(cwd: Path, run_id: str = "digits") -> Path:
    """The single run folder `<cwd>/runs/<run_id>/<method>/<timestamp>/`."""
    (method,) = (cwd / "runs" / run_id).iterdir()
    (run_dir,) = method.iterdir()
    return run_dir


def results(run_dir: Path) -> dict:
    return json.loads((run_dir / "results.json").read_text())


def assert_user_error(done: subprocess.CompletedProcess, *fragments: str) -> str:
    """Exit code != 0 and a one-line `error: ...` at the end of stderr, without a traceback (or,
    outside a sweep, Hydra's line naming the failed job)."""
    assert done.returncode != 0
    assert "Traceback" not in done.stderr and "Error executing job" not in done.stderr, done.stderr[-3000:]
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("error:"), done.stderr[-3000:]
    for fragment in fragments:
        assert fragment in last, last
    return last


@pytest.fixture(scope="module")
def fitted(tmp_path_factory, digits_root) -> Path:
    """A 10-iteration digits run (validating every 5) whose outputs several tests inspect."""
    cwd = tmp_path_factory.mktemp("fit")
    done = open_sesemi(
        "-cn", "digits", f"run.data_root={digits_root}", "run.num_iterations=10",
        "trainer.val_check_interval=5", *TINY, cwd=cwd,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return only_run_dir(cwd)


# --- help and config printing (no training) -------------------------------------------------


def test_help_prints_the_config_groups(tmp_path):
    """`open_sesemi -h` lists the config groups, including `learner: classifier`."""
    done = open_sesemi("-h", cwd=tmp_path, timeout=60)
    assert done.returncode == 0, done.stderr
    lines = [line.strip() for line in done.stdout.splitlines()]
    assert "learner: classifier" in lines
    assert any(line.startswith("backbone:") and "resnet18" in line for line in lines)
    assert not (tmp_path / "runs").exists()


def test_cfg_job_prints_the_composed_config(tmp_path):
    """`--cfg job` prints the composed config as YAML, overrides applied, and trains nothing."""
    done = open_sesemi("-cn", "digits", "--cfg", "job", "run.seed=7", cwd=tmp_path, timeout=60)
    assert done.returncode == 0, done.stderr
    config = yaml.safe_load(done.stdout)
    assert config["run"]["id"] == "digits" and config["run"]["seed"] == 7
    assert config["learner"]["_target_"] == "sesemi.Classifier"
    assert config["learner"]["hparams"]["model"]["backbone"]["_target_"] == "sesemi.ConvNet"
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("overrides", [[], ["run.num_iterations=7"]], ids=["alone", "before_overrides"])
def test_info_prints_the_composed_config(tmp_path, overrides):
    """`open_sesemi -cn digits --info` (the form in DESIGN.md) prints the composed config, also
    with overrides after it (Hydra's parser would read the first as the value of `--info`)."""
    done = open_sesemi("-cn", "digits", "--info", *overrides, cwd=tmp_path, timeout=60)
    assert done.returncode == 0, done.stderr[-2000:]
    assert f"num_iterations: {7 if overrides else 400}" in done.stdout
    assert not (tmp_path / "runs").exists()


def test_mistyped_key_is_a_short_hydra_error(tmp_path):
    """`run.num_iteration=5` fails at composition with a short message naming the key."""
    done = open_sesemi("-cn", "digits", "run.num_iteration=5", cwd=tmp_path, timeout=60)
    assert done.returncode != 0
    assert "num_iteration" in done.stderr
    assert "Traceback" not in done.stderr
    assert len([line for line in done.stderr.splitlines() if line.strip()]) <= 10
    assert not (tmp_path / "runs").exists()


def test_a_list_of_methods_is_refused_rather_than_merged(tmp_path):
    """Hydra merges `method=[a,b]` into one config with both methods' heads, filed under the
    last: refused before anything runs, with the sweep that runs each."""
    done = open_sesemi("-cn", "digits", "method=[fixmatch,supervised]", cwd=tmp_path, timeout=60)
    assert done.returncode == 1
    assert done.stderr.strip() == (
        "error: method=[fixmatch,supervised]: a run takes one method; to run each, sweep with open_sesemi -m method=fixmatch,supervised"
    )
    assert not (tmp_path / "runs").exists()


# --- training ---------------------------------------------------------------------------------


@pytest.mark.slow
def test_fit_writes_the_run_outputs(fitted):
    """A digits run writes results.json, config.yaml, metrics.csv and best/last checkpoints."""
    summary = results(fitted)
    assert summary["mode"] == "FIT" and summary["global_step"] == 10
    top1 = summary["metrics"]["val/top1"]
    assert 0.0 <= top1 <= 1.0
    assert math.isfinite(summary["metrics"]["val/loss"])
    assert summary["classes"] == [str(c) for c in range(10)]
    assert len(summary["per_class_top1"]) == 10
    assert (fitted / "checkpoints" / "best.ckpt").is_file()
    assert (fitted / "checkpoints" / "last.ckpt").is_file()
    assert summary["best_checkpoint"] == "checkpoints/best.ckpt"  # relative: the folder can move

    config = yaml.safe_load((fitted / "config.yaml").read_text())
    assert config["learner"]["hparams"]["num_classes"] == 10  # ${sesemi:num_classes} resolved
    assert "${" not in (fitted / "config.yaml").read_text()
    assert config["run"]["num_iterations"] == 10

    with open(fitted / "metrics.csv") as file:
        rows = list(csv.DictReader(file))
    assert any(row.get("val/top1") for row in rows)
    assert any(row.get("train/loss") for row in rows)
    hydra = fitted / ".hydra"  # Hydra's record, as Hydra writes it, once the folder was claimed
    assert {"run.num_iterations=10", "trainer.val_check_interval=5"} <= set(yaml.safe_load((hydra / "overrides.yaml").read_text()))
    assert "learner" in yaml.safe_load((hydra / "config.yaml").read_text())
    assert "run" in yaml.safe_load((hydra / "hydra.yaml").read_text())["hydra"]
    assert (fitted / "open_sesemi.log").stat().st_size > 0


@pytest.mark.slow
def test_a_sweep_runs_each_job_with_overrides_before_and_after_the_flag(digits_root, tmp_path):
    """`-cn digits run.seed=3 -m method=supervised,fixmatch`: Hydra's parser alone refuses
    overrides on both sides of `-m`; each job is a finished run filed under its own method, and
    the sweep's multirun.yaml under none (it was under the config's own, flexmatch)."""
    done = open_sesemi(
        "-cn", "digits", "run.seed=3", f"run.data_root={digits_root}", *TINY,
        "-m", "method=supervised,fixmatch", "run.num_iterations=2", cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    runs = tmp_path / "runs" / "digits"
    (sweep,) = runs.glob("multirun_*/multirun.yaml")
    jobs = [runs / method / sweep.parent.name / number for method, number in (("supervised", "0"), ("fixmatch", "1"))]
    configs = [yaml.safe_load((job / "config.yaml").read_text())["run"] for job in jobs]
    assert [(config["method"], config["seed"]) for config in configs] == [("supervised", 3), ("fixmatch", 3)]
    assert all(results(job)["global_step"] == 2 for job in jobs)
    assert sorted(path.name for path in runs.iterdir()) == ["fixmatch", sweep.parent.name, "supervised"]


def test_a_sweep_of_multi_process_jobs_is_refused_before_a_job_trains(digits_root, tmp_path):
    """Lightning starts a job's other processes with the command line it was given, `-m` and all,
    so each would run the whole sweep again (and, with a time budget, wait for ever): refused in
    one line, once, with no job folder left."""
    done = open_sesemi(
        "-cn", "digits", "method=supervised", f"run.data_root={digits_root}", *TINY,
        "-m", "run.accelerator=ddp", "+trainer.devices=2", "run.seed=0,1", "run.num_iterations=2", cwd=tmp_path,
    )
    assert done.returncode == 1
    assert done.stderr.count("error: open_sesemi -m runs a sweep's jobs one process each") == 1
    assert (done.stdout + done.stderr).count("Launching 2 jobs") == 1
    assert not list(tmp_path.glob("runs/digits/supervised/*/*/"))


def test_checkpoints_load_safely(fitted):
    """The run's checkpoints load with weights_only=True and hold the 10-class model."""
    checkpoint = torch.load(fitted / "checkpoints" / "best.ckpt", map_location="cpu", weights_only=True)
    assert checkpoint["state_dict"]["head.fc.weight"].shape == (10, 8)


@pytest.mark.slow
def test_last_checkpoint_is_the_final_state(fitted):
    """`last.ckpt` is written at the end of training (global_step 10), so resuming continues
    where the run stopped rather than from the best validation."""
    last = torch.load(fitted / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert last["global_step"] == results(fitted)["global_step"] == 10


@pytest.mark.slow
def test_validate_mode_reproduces_the_best_score(fitted, digits_root, tmp_path):
    """run.mode=VALIDATE on best.ckpt writes val metrics equal to the best score of the fit."""
    done = open_sesemi(
        "-cn", "digits", f"run.data_root={digits_root}", "run.mode=VALIDATE",
        f"run.pretrained_checkpoint_path={fitted / 'checkpoints' / 'best.ckpt'}", *TINY, cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    summary = results(only_run_dir(tmp_path))
    assert summary["mode"] == "VALIDATE"
    assert 0.0 <= summary["metrics"]["val/top1"] <= 1.0
    assert summary["metrics"]["val/top1"] == pytest.approx(results(fitted)["best_score"], abs=1e-6)
    assert summary["best_checkpoint"] is None


@pytest.mark.slow
@pytest.mark.parametrize("workers", [0, 1], ids=["main_process_loading", "loader_processes"])
def test_resume_continues_to_the_new_budget(fitted, digits_root, tmp_path, workers):
    """Resuming from last.ckpt (mid-epoch) with num_iterations=20 ends at step 20, and the
    resumed run trains only the steps after the checkpoint's, with loader processes too."""
    last = fitted / "checkpoints" / "last.ckpt"
    start = torch.load(last, map_location="cpu", weights_only=True)["global_step"]
    done = open_sesemi(
        "-cn", "digits", f"run.data_root={digits_root}", "run.num_iterations=20",
        "trainer.val_check_interval=10", f"run.resume_from_checkpoint={last}",
        f"data.train.supervised.num_workers={workers}",
        "+trainer.log_every_n_steps=1", *TINY, cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    run_dir = only_run_dir(tmp_path)
    assert results(run_dir)["global_step"] == 20
    with open(run_dir / "metrics.csv") as file:
        steps = [int(row["step"]) for row in csv.DictReader(file) if row.get("train/loss")]
    assert len(steps) == 20 - start  # a fresh start would log 20 training steps


@pytest.mark.slow
def test_demo_trains_in_bfloat16_mixed_precision(digits_root, tmp_path):
    """`+trainer.precision=bf16-mixed` (docs/runs.md) trains the FlexMatch demo; CPUs have bf16 too."""
    done = open_sesemi(
        "-cn", "digits", f"run.data_root={digits_root}", "run.num_iterations=4", "run.gpus=0",
        "+trainer.precision=bf16-mixed", *TINY, cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    summary = results(only_run_dir(tmp_path))
    assert summary["global_step"] == 4 and math.isfinite(summary["metrics"]["val/loss"])


@pytest.mark.slow
def test_custom_config_folder(digits_root, tmp_path):
    """`-cd configs -cn custom` runs a user config that starts from the built-in digits."""
    (tmp_path / "configs").mkdir()
    (tmp_path / "configs" / "custom.yaml").write_text(
        "defaults:\n  - digits\n  - _self_\n\n"
        f"run:\n  id: custom\n  num_iterations: 4\n  data_root: {digits_root}\n"
        "learner:\n  hparams:\n    model:\n      backbone:\n        widths: [4, 6]\n"
        "trainer:\n  val_check_interval: 4\n"
    )
    done = open_sesemi(
        "-cd", "configs", "-cn", "custom", "run.batch_size_per_gpu=8", "run.mu=0.5", cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    run_dir = only_run_dir(tmp_path, "custom")
    assert results(run_dir)["global_step"] == 4
    config = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert config["learner"]["hparams"]["model"]["backbone"]["widths"] == [4, 6]
    checkpoint = torch.load(run_dir / "checkpoints" / "best.ckpt", map_location="cpu", weights_only=True)
    assert checkpoint["state_dict"]["head.fc.weight"].shape == (10, 6)


# --- user errors: one line, no traceback ------------------------------------------------------


def test_own_config_with_a_builtin_name_is_an_error(tmp_path):
    """Hydra would silently run the built-in `digits` instead of configs/digits.yaml."""
    (tmp_path / "configs").mkdir()
    (tmp_path / "configs" / "digits.yaml").write_text("run:\n  id: mine\n")
    done = open_sesemi("-cd", "configs", "-cn", "digits", cwd=tmp_path)
    assert_user_error(done, "configs/digits.yaml", "built-in", "my_digits.yaml")


def test_a_value_of_the_wrong_shape_in_ones_config_names_its_key(tmp_path):
    (tmp_path / "configs").mkdir()
    (tmp_path / "configs" / "custom.yaml").write_text("defaults:\n  - digits\n  - _self_\ndata:\n  train: [x]\n")
    done = open_sesemi("-cd", "configs", "-cn", "custom", cwd=tmp_path)
    assert_user_error(done, "in the config custom: data.train must be a mapping")


def test_missing_config_folder(tmp_path):
    done = open_sesemi("--config-dir=confs", "-cn", "custom", cwd=tmp_path)
    assert_user_error(done, "'confs' not found")


@pytest.mark.slow
def test_missing_data_folder(tmp_path):
    """A data root that does not exist: `error: data folder ... does not exist`."""
    missing = tmp_path / "nonexistent" / "x"
    done = open_sesemi("-cn", "digits", f"run.data_root={missing}", *TINY, cwd=tmp_path)
    assert_user_error(done, "does not exist", str(missing))
    assert not missing.exists()
    assert not (tmp_path / "runs").exists(), "the mistake left folders behind"


def test_a_folder_given_empty_is_kept_when_the_run_fails_to_start(tmp_path):
    """`hydra.run.dir` naming an empty folder of one's own: a run that fails before it starts
    empties it again, but leaves it; one made for the run (above) goes."""
    (tmp_path / "mine").mkdir()
    done = open_sesemi("-cn", "digits", "hydra.run.dir=mine", f"run.data_root={tmp_path / 'none'}", cwd=tmp_path)
    assert_user_error(done, "does not exist")
    assert (tmp_path / "mine").is_dir() and not list((tmp_path / "mine").iterdir())


def test_a_run_refused_a_folder_writes_nothing_into_it(fitted, tmp_path):
    """Another run pointed at a finished run's folder is refused, and the folder's files (Hydra's
    record of its own run, its log) stay as they were; so does a `.hydra/` of the user's own."""
    before = {path: path.read_bytes() for path in fitted.rglob("*") if path.is_file()}
    done = open_sesemi("-cn", "digits", f"hydra.run.dir={fitted}", "method=fixmatch", cwd=tmp_path)
    assert_user_error(done, "already holds a run (finished)")
    assert {path: path.read_bytes() for path in fitted.rglob("*") if path.is_file()} == before
    (tmp_path / "mine" / ".hydra").mkdir(parents=True)
    (tmp_path / "mine" / ".hydra" / "notes.txt").write_text("mine")
    done = open_sesemi("-cn", "digits", "hydra.run.dir=mine", f"run.data_root={tmp_path / 'none'}", cwd=tmp_path)
    assert_user_error(done, "mine is not empty (it holds .hydra)")
    assert sorted(path.name for path in (tmp_path / "mine").rglob("*")) == [".hydra", "notes.txt"]


def test_a_run_folder_of_someone_else_is_refused(tmp_path):
    """`hydra.run.dir` naming a folder that holds files: refused, the folder left unmarked (so
    `sesemi rm-failed` can never delete it)."""
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("mine")
    done = open_sesemi("-cn", "digits", "hydra.run.dir=mine", cwd=tmp_path)
    assert_user_error(done, "mine is not empty (it holds notes.txt)")
    assert (tmp_path / "mine" / "notes.txt").read_text() == "mine"
    assert not (tmp_path / "mine" / ".sesemi").exists()


@pytest.mark.slow
def test_validate_with_a_checkpoint_of_another_model(digits_root, tmp_path, make_hparams):
    """VALIDATE with a checkpoint of other backbone widths: `error: ... does not fit ...`."""
    from sesemi.learners.classifier import Classifier

    other = tmp_path / "other.ckpt"
    torch.save({"state_dict": Classifier(make_hparams(num_classes=10, widths=(4, 16))).state_dict()}, other)
    done = open_sesemi(
        "-cn", "digits", f"run.data_root={digits_root}", "run.mode=VALIDATE",
        f"run.pretrained_checkpoint_path={other}", *TINY, cwd=tmp_path,
    )
    assert_user_error(done, "does not fit")


@pytest.mark.slow
def test_validate_with_a_truncated_checkpoint(fitted, digits_root, tmp_path):
    """VALIDATE with a damaged file (half of a real checkpoint, e.g. an interrupted copy):
    `error: cannot load .../damaged.ckpt ...`, not a traceback."""
    damaged = tmp_path / "damaged.ckpt"
    data = (fitted / "checkpoints" / "best.ckpt").read_bytes()
    damaged.write_bytes(data[: len(data) // 2])
    done = open_sesemi(
        "-cn", "digits", f"run.data_root={digits_root}", "run.mode=VALIDATE",
        f"run.pretrained_checkpoint_path={damaged}", *TINY, cwd=tmp_path,
    )
    assert_user_error(done, "damaged.ckpt")
    assert not list(tmp_path.glob("runs/**/.sesemi")), "a run that never started left its folder"


# --- user_error(): which exceptions become one line ------------------------------------------


def test_user_error_finds_a_wrapped_sesemi_error():
    """A SesemiError raised inside instantiation is reported with its own message."""
    try:
        try:
            raise SesemiError("the real problem")
        except SesemiError as inner:
            raise InstantiationException("Error in call to target 'x'") from inner
    except InstantiationException as outer:
        assert user_error(outer) == "the real problem"


def test_user_error_leaves_bugs_alone():
    """An ordinary exception (a bug) is not turned into a user error."""
    assert user_error(ValueError("bug")) is None


def test_user_error_from_a_dataloader_worker():
    """A worker's re-raised SesemiError (with its 'Original Traceback') becomes its last line."""
    message = "Caught SesemiError in DataLoader worker.\nOriginal Traceback:\n  ...\nsesemi.errors.SesemiError: cannot read image x.png"
    assert user_error(SesemiError(message)) == "cannot read image x.png"

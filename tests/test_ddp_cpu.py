"""Multi-process training goes through Lightning's DDP; two CPU processes stand in for two GPUs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

CLASS_BALANCED = (
    "data.train.supervised.batch_sampler="
    "{_target_:sesemi.samplers.ClassBalancedBatchSampler,classes_per_batch:5,samples_per_class:4}"
)


@pytest.mark.slow
@pytest.mark.parametrize(
    "labeled",
    [
        ["data.train.supervised.batch_size=40"],  # 50 labels / 2 processes < 40: needs repeats
        ["data.train.supervised.batch_size=20", CLASS_BALANCED],  # each process draws from its share
        # a worker-backed labeled loader batches pass after pass over each process's share
        ["data.train.supervised.batch_size=20", "data.train.supervised.num_workers=1"],
    ],
    ids=["repeating", "class_balanced", "pass_by_pass"],
)
def test_ddp_with_two_cpu_processes_trains_and_writes_one_result(tmp_path, labeled):
    """A tiny labeled set still yields full batches on each of the two processes."""
    command = [
        str(Path(sys.executable).parent / "open_sesemi"),
        "-cn", "digits",
        f"run.data_root={tmp_path / 'digits'}",
        "run.accelerator=ddp",
        "run.gpus=0",
        "+trainer.devices=2",
        "run.num_iterations=6",
        "trainer.val_check_interval=3",
        *labeled,
        "+trainer.enable_progress_bar=false",
        "+trainer.enable_model_summary=false",
    ]
    done = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    (results_file,) = (tmp_path / "runs" / "digits").glob("*/*/results.json")
    results = json.loads(results_file.read_text())
    assert results["global_step"] == 6
    assert 0.0 <= results["metrics"]["val/top1"] <= 1.0


@pytest.mark.slow
def test_sesemi_train_on_two_processes_reports_the_run_once(tmp_path):
    """Each process of the run returns its result to `sesemi train`; one line reports it,
    sesemi's progress lines come from the first process only, and Lightning's advice about
    validating on several devices is not printed for the validation that ends the fit."""
    command = [
        str(Path(sys.executable).parent / "sesemi"), "train", "digits",
        f"run.data_root={tmp_path / 'digits'}",
        "+trainer.devices=2", "+trainer.strategy=ddp", "+trainer.accelerator=cpu",
        "run.num_iterations=2", "+trainer.enable_progress_bar=false", "+trainer.enable_model_summary=false",
    ]
    done = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.count("val/top1=") == 1, done.stdout
    assert done.stderr.count("decoding 50 images into memory") == 1, done.stderr  # not once per process
    # The validation that ends the run is the fit's own: no advice to validate on one device.
    assert "During `trainer.validate()`" not in done.stderr, done.stderr


@pytest.mark.slow
@pytest.mark.parametrize(
    "method, overrides",
    [
        ("iomatch", []),
        ("simmatch", ["run.accelerator=ddp"]),
        ("simclr_freematch", ["run.pretrain=0.5"]),
        (
            "flexmatch",
            [
                "++learner.hparams.model.regularization_loss_heads.fixmatch.head.outlier_filter=true",
                "learner.hparams.model.head={_target_:sesemi.models.heads.OneVsAllHead}",
            ],
        ),
    ],
    ids=["iomatch", "simmatch", "simclr_freematch", "outlier_filter"],
)
def test_a_method_that_skips_a_term_at_some_steps_trains_on_two_processes(tmp_path, method, overrides):
    """A term weighted 0 at a step is not computed: IOMatch's detectors, SimMatch's projection
    and the outlier filter's detectors at step 0 (their ramp-up), the classification head while
    SimCLR pre-trains and the projection after. DDP needs a gradient for every parameter at every step; the skipped
    terms' parameters get one of 0, so Lightning's plain DDP trains them all."""
    command = [
        str(Path(sys.executable).parent / "open_sesemi"),
        "-cn", "digits",
        f"method={method}",
        f"run.data_root={tmp_path / 'digits'}",
        "+trainer.devices=2",
        "run.num_iterations=4",
        *overrides,
        "+trainer.limit_val_batches=1",
        "+trainer.enable_progress_bar=false",
        "+trainer.enable_model_summary=false",
    ]
    done = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    (results_file,) = (tmp_path / "runs" / "digits").glob("*/*/results.json")
    assert json.loads(results_file.read_text())["global_step"] == 4


@pytest.mark.slow
def test_sesemi_resume_of_a_two_process_run_finishes_it(tmp_path):
    """`sesemi resume` starts the run's other process as `sesemi resume` too; that process
    takes the folder the first one marked running as its own run's, not as another's."""
    from sesemi.ownership import mark

    sesemi = str(Path(sys.executable).parent / "sesemi")
    common = ["+trainer.enable_progress_bar=false", "+trainer.enable_model_summary=false"]
    command = [sesemi, "train", "digits", f"run.data_root={tmp_path / 'digits'}", "+trainer.devices=2",
               "run.num_iterations=4", "trainer.val_check_interval=2", "+trainer.limit_val_batches=1", *common]
    done = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    (results_file,) = (tmp_path / "runs" / "digits").glob("*/*/results.json")
    run_dir = results_file.parent
    results_file.unlink()
    mark(run_dir, "run", "interrupted")  # as a stop after the last checkpoint leaves it
    done = subprocess.run([sesemi, "resume", str(run_dir)], cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(results_file.read_text())["global_step"] == 4

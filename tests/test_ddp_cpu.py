"""Multi-process training goes through Lightning's DDP; two CPU processes stand in for two GPUs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

OPEN_SESEMI, SESEMI = (str(Path(sys.executable).parent / name) for name in ("open_sesemi", "sesemi"))
CLASS_BALANCED = (
    "data.train.supervised.batch_sampler="
    "{_target_:sesemi.samplers.ClassBalancedBatchSampler,classes_per_batch:5,samples_per_class:4}"
)


def _on_two_processes(
    tmp_path: Path, program: list[str], *overrides: str
) -> tuple[subprocess.CompletedProcess, Path]:
    """Runs `program` (`open_sesemi -cn digits`, `sesemi train digits`, ...) on the built-in
    digits, built in `tmp_path`, on two CPU processes without progress output; checks that it
    succeeds and returns it and its results.json."""
    command = [
        *program,
        f"run.data_root={tmp_path / 'digits'}",
        "+trainer.devices=2",
        *overrides,
        "+trainer.enable_progress_bar=false",
        "+trainer.enable_model_summary=false",
    ]
    done = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    (results_file,) = (tmp_path / "runs" / "digits").glob("*/*/results.json")
    return done, results_file


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
    overrides = ["run.accelerator=ddp", "run.gpus=0", "run.num_iterations=6", "trainer.val_check_interval=3"]
    overrides += labeled
    _, results_file = _on_two_processes(tmp_path, [OPEN_SESEMI, "-cn", "digits"], *overrides)
    results = json.loads(results_file.read_text())
    assert results["global_step"] == 6
    assert 0.0 <= results["metrics"]["val/top1"] <= 1.0


@pytest.mark.slow
def test_sesemi_train_on_two_processes_reports_the_run_once(tmp_path):
    """Each process of the run returns its result to `sesemi train`; one line reports it,
    sesemi's progress lines come from the first process only, and Lightning's advice about
    validating on several devices is not printed for the validation that ends the fit."""
    overrides = ["+trainer.strategy=ddp", "+trainer.accelerator=cpu", "run.num_iterations=2"]
    done, _ = _on_two_processes(tmp_path, [SESEMI, "train", "digits"], *overrides)
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
    and the outlier filter's detectors at step 0 (their ramp-up), SimCLR's projection after its
    phase. DDP needs a gradient for every parameter at every step; the skipped terms' parameters
    get one of 0, so Lightning's plain DDP trains them all."""
    program = [OPEN_SESEMI, "-cn", "digits", f"method={method}"]
    overrides = ["run.num_iterations=4", *overrides, "+trainer.limit_val_batches=1"]
    _, results_file = _on_two_processes(tmp_path, program, *overrides)
    assert json.loads(results_file.read_text())["global_step"] == 4


@pytest.mark.slow
def test_sesemi_resume_of_a_two_process_run_finishes_it(tmp_path):
    """`sesemi resume` starts the run's other process as `sesemi resume` too; that process
    takes the folder the first one marked running as its own run's, not as another's."""
    from sesemi.ownership import mark

    overrides = ["run.num_iterations=4", "trainer.val_check_interval=2", "+trainer.limit_val_batches=1"]
    _, results_file = _on_two_processes(tmp_path, [SESEMI, "train", "digits"], *overrides)
    run_dir = results_file.parent
    results_file.unlink()
    mark(run_dir, "run", "interrupted")  # as a stop after the last checkpoint leaves it
    resume = [SESEMI, "resume", str(run_dir)]
    done = subprocess.run(resume, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(results_file.read_text())["global_step"] == 4


@pytest.mark.slow
def test_the_pool_statistics_of_a_two_process_run_count_both_processes_images(tmp_path):
    """What results.json reports of the unlabeled pool (and the thresholds it comes from) is
    updated from both processes' unlabeled batches, as one process with the whole batch would."""
    overrides = ["run.num_iterations=3", "run.batch_size_per_gpu=8", "run.mu=1", "+trainer.limit_val_batches=1"]
    _, results_file = _on_two_processes(tmp_path, [SESEMI, "train", "digits", "method=flexmatch"], *overrides)
    # FlexMatch runs at steps 1 and 2 (its ramp-up weighs step 0 with 0): 8 images a step on each process
    assert json.loads(results_file.read_text())["unlabeled"]["seen"] == 2 * 2 * 8


RECORDER = '''
import hashlib, json, os
import pytorch_lightning as pl


class Recorder(pl.Callback):
    """Writes, per process, the labeled images of every step (as hashes) to labeled_<rank>.json."""

    def __init__(self):
        self.steps = []

    def on_train_batch_start(self, trainer, module, batch, batch_idx):
        images = batch["supervised"][0].detach().cpu().contiguous()
        self.steps.append([hashlib.sha1(image.numpy().tobytes()).hexdigest() for image in images])

    def on_train_end(self, trainer, module):
        with open(f"labeled_{trainer.global_rank}.json", "w") as file:
            json.dump(self.steps, file)
'''


@pytest.mark.slow
@pytest.mark.parametrize(("length", "seed"), [("run.num_iterations=4", "42"), ("run.num_epochs=4", "null")])
def test_two_processes_split_shuffled_and_repeated_labels_between_them(tmp_path, length, seed):
    """With 50 labels in batches of 40 (drop_last) on two processes, each process fills its
    batch at every step from the same shuffle, split between them: the two batches of a step
    hold every label (and 30 of the next shuffle), and the order changes from step to step.
    Lightning's own splitting read the whole data set in order instead, so each process had 25
    labels, no full batch, and the run ended after 0 steps. Without a seed each process would
    shuffle with its own generator: the first process's seed is shared. An epoch is one pass
    over each process's share (one batch here), as the learning-rate schedule is sized: epochs
    were as long as on one process, so the schedule ended half way."""
    (tmp_path / "recorder.py").write_text(RECORDER)
    overrides = [
        "run.accelerator=ddp",
        "run.gpus=0",
        length,
        f"run.seed={seed}",
        "method=supervised",
        "data.train.supervised.batch_size=40",
        "data.train.supervised.drop_last=true",
        "data.train.supervised.dataset.image_transform=${data.views.eval}",  # the same image every time
        "trainer.callbacks=[{_target_:recorder.Recorder}]",
        "+trainer.limit_val_batches=1",
    ]
    _, results_file = _on_two_processes(tmp_path, [OPEN_SESEMI, "-cn", "digits"], *overrides)
    assert json.loads(results_file.read_text())["global_step"] == 4
    assert "max_iters: 4\n" in (results_file.parent / "config.yaml").read_text()
    first, second = (json.loads((tmp_path / f"labeled_{rank}.json").read_text()) for rank in (0, 1))
    assert [len(batch) for batch in first + second] == [40] * 8
    for step in range(4):
        assert len(set(first[step] + second[step])) == 50  # every label, each process a share
    assert first[0] != first[1] and second[0] != second[1]  # shuffled anew

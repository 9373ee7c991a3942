"""Progress for logs (sesemi/callbacks/progress.py): plain lines where no bar can be drawn."""

from __future__ import annotations

import re

from pytorch_lightning import Callback

from sesemi import compose, run
from sesemi.callbacks.progress import StepProgressBar


def test_a_piped_run_prints_plain_progress_lines(image_tree, tmp_path, capsys):
    """With stderr not a terminal (as under pytest), a run prints about twenty lines of step,
    speed, ETA and loss, and a line of metrics after each validation; no control characters.
    An evaluation prints no such line: its result says the metrics."""
    overrides = [
        "method=supervised",
        f"run.data_root={image_tree.root}",
        "run.num_iterations=40",
        "trainer.val_check_interval=20",
        "run.batch_size_per_gpu=4",
        "data.views.weak.crop_dim=16",
        "learner.hparams.model.backbone.widths=[4,8]",
    ]
    best = run(compose("digits", overrides), tmp_path / "run").best_checkpoint
    lines = capsys.readouterr().err.splitlines()
    steps = [line for line in lines if line.startswith("step ")]
    assert len(steps) == 20 and steps[0].startswith("step 2/40 (5%) | ")
    assert all(re.search(r"\d+\.\d it/s \| ETA \d+(s|m \d\ds) \| loss \d", line) for line in steps)
    assert "val/top1" in steps[-1]
    assert sum(line.startswith("validated at step ") for line in lines) == 2
    assert not any("\x1b" in line or "━" in line for line in lines)

    evaluation = compose("digits", [*overrides, "run.mode=VALIDATE", f"run.pretrained_checkpoint_path={best}"])
    run(evaluation, tmp_path / "evaluation")
    assert "validated at step" not in capsys.readouterr().err  # the result line says it once


class BarAtTheEnd(Callback):
    """Records what the train bar of `StepProgressBar` says when training ends."""

    seen: dict = {}

    def on_train_end(self, trainer, pl_module):
        (bar,) = [c for c in trainer.callbacks if isinstance(c, StepProgressBar)]
        task = bar.progress.tasks[bar.train_progress_bar_id]
        BarAtTheEnd.seen = {"total": task.total, "completed": task.completed, "description": task.description.strip()}
        BarAtTheEnd.advances = {sample.completed for sample in task._progress}  # what its speed is made of


def test_a_terminal_bar_counts_the_runs_steps(image_tree, tmp_path, monkeypatch):
    """In a terminal the bar spans the run's steps, not each epoch's batches (a bar of epochs
    said `Epoch 5/-2 0/1` for a labeled set of one batch an epoch), and advances a step at a
    time, so that its speed and time left are the run's."""
    monkeypatch.setattr("sys.stderr.isatty", lambda: True)
    overrides = [
        "method=supervised", f"run.data_root={image_tree.root}", "run.num_iterations=6",
        "run.batch_size_per_gpu=2", "data.views.weak.crop_dim=16", "learner.hparams.model.backbone.widths=[4,8]",
        "+trainer.callbacks=[{_target_: test_progress.BarAtTheEnd}]",
    ]
    run(compose("digits", overrides), tmp_path / "run")
    assert BarAtTheEnd.seen == {"total": 6, "completed": 6, "description": "train"}
    assert BarAtTheEnd.advances == {1}  # a step at a time: no leap of an epoch's batches in its speed

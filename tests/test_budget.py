"""Runs sized to the machine (sesemi/budget.py): durations, the iterations a budget allows, and
a run that sets its own length from its measured speed."""

from __future__ import annotations

import time
from types import SimpleNamespace

import pytest
import torch
from omegaconf import OmegaConf

from sesemi import compose, run
from sesemi.budget import (
    Speed,
    format_duration,
    iterations_within,
    parse_duration,
    validation_interval,
)
from sesemi.errors import SesemiError


@pytest.mark.parametrize(("text", "seconds"), [("20m", 1200), ("1h30m", 5400), ("90s", 90), ("1.5h", 5400), (45, 45)])
def test_durations(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["20 minutes", "", "0s", "-5"])
def test_bad_durations_are_one_line_errors(text):
    with pytest.raises(SesemiError, match="run.time_budget must be"):
        parse_duration(text)


def test_the_iterations_pay_for_their_validations():
    """0.5 s a step, a 10 s validation every 100 steps and one at the end, 95% of 10 minutes."""
    assert iterations_within(600, Speed(step=0.5, validation=10.0), 100) == int((570 - 10) / 0.6)
    assert iterations_within(600, Speed(step=0.5, validation=10.0), None) == int((570 - 10) / 0.5)
    with pytest.raises(SesemiError, match=r"give more time \(100 steps take about 1m 56s after the start\)"):
        iterations_within(5, Speed(step=1.0, validation=10.0), None)  # (10 + 100 * 1) / 0.95 s


@pytest.mark.parametrize(
    ("val_check_interval", "every_n_epochs", "accumulate", "interval"),
    [
        (50, None, 1, 50),  # every 50 steps, across epochs
        (50, None, 2, 25),  # every 50 batches: 25 optimizer steps of two
        (1.0, 1, 1, 250),  # once an epoch of 250 batches (base, imagewoof)
        (0.5, 2, 1, 250),  # twice every other epoch
        (100, 1, 1, 125),  # at batches 100 and 200 of each epoch
        (1.0, 1, 2, 125),  # once an epoch of 125 optimizer steps
    ],
)
def test_the_validation_interval_counts_validations_per_epoch_too(val_check_interval, every_n_epochs, accumulate, interval):
    """A budget pays for every validation: those every N steps, and those in every epoch (it
    counted the latter as one validation, at the end, and overran: 148 validations in 20 s)."""
    trainer = SimpleNamespace(
        val_check_interval=val_check_interval, check_val_every_n_epoch=every_n_epochs, accumulate_grad_batches=accumulate
    )
    assert validation_interval(trainer, iterations_per_epoch=250) == interval


def test_format_duration():
    assert (format_duration(42), format_duration(252), format_duration(11100)) == ("42s", "4m 12s", "3h 05m")


def test_a_budgeted_run_sets_its_length_before_training(image_tree, tmp_path, monkeypatch):
    """The length the measured speed allows is the one the run trains, records and schedules
    with (the speed is fixed here, so the test does not depend on the machine's load)."""
    monkeypatch.setattr("sesemi.budget.measure_speed", lambda *args: Speed(step=0.5, validation=1.0))
    config = compose(
        "digits",
        [
            f"run.data_root={image_tree.root}",
            "method=supervised",
            "run.time_budget=12s",
            "data.views.weak.crop_dim=16",
            "learner.hparams.model.backbone.widths=[4,8]",
            "+trainer.enable_progress_bar=false",
            "+trainer.enable_model_summary=false",
            "+trainer.limit_train_batches=1.0",
            "trainer.val_check_interval=50",
            "run.batch_size_per_gpu=4",
        ],
    )
    assert config.run.num_iterations is None  # digits sets 400; the budget on the command line replaces it
    result = run(config, tmp_path / "run")
    recorded = OmegaConf.load(tmp_path / "run" / "config.yaml")
    assert recorded.run.num_iterations == result.global_step != 400
    assert recorded.learner.hparams.lr_scheduler.scheduler.max_iters == result.global_step
    composed = OmegaConf.load(tmp_path / "run" / "composed.yaml")  # as asked: summaries compare seeds by it
    assert composed.run.num_iterations is None and composed.run.time_budget == "12s"


def test_a_budgeted_run_trains_as_the_same_run_given_its_length(image_tree, tmp_path, monkeypatch):
    """Measuring the speed trains a throwaway model, which draws random numbers; the run then
    starts as one given the same number of steps would (its weights came from later draws)."""
    monkeypatch.setattr("sesemi.budget.iterations_within", lambda *args: 6)  # the measuring is real
    common = [
        f"run.data_root={image_tree.root}",
        "method=supervised",
        "learner.hparams.model.backbone.widths=[4,8]",
        "run.batch_size_per_gpu=4",
        "+trainer.enable_progress_bar=false",
        "+trainer.enable_model_summary=false",
    ]
    budgeted = run(compose("digits", [*common, "run.time_budget=1h"]), tmp_path / "budgeted")
    given = run(compose("digits", [*common, "run.num_iterations=6"]), tmp_path / "given")
    assert budgeted.global_step == given.global_step == 6
    assert budgeted.metrics == given.metrics


def test_the_step_time_leaves_out_the_validation_after_the_steps():
    """The probe's validation, timed apart, is not also spread over its steps."""
    from sesemi.budget import WARMUP_STEPS, _StepTimer

    timer, trainer = _StepTimer(), SimpleNamespace(global_step=WARMUP_STEPS)
    timer.on_train_batch_start(trainer)
    timer.on_train_batch_end(trainer)
    measured = timer.seconds_per_step
    time.sleep(0.3)  # a validation
    assert timer.seconds_per_step == measured < 0.3


def test_a_budgeted_run_that_fails_leaves_its_length_to_no_later_run(image_tree, tmp_path, monkeypatch):
    """The measured length is handed to launched processes in the environment; a run that fails
    after measuring (here: weights to start from that do not fit) must not hand it to the next
    run of this process, which would train that many steps without measuring its own."""
    import os

    from sesemi.runner import BUDGET_VARIABLE

    monkeypatch.setattr("sesemi.budget.measure_speed", lambda *args: Speed(step=0.5, validation=1.0))
    foreign = tmp_path / "foreign.ckpt"
    torch.save({"state_dict": {"nothing": torch.zeros(1)}}, foreign)
    config = compose(
        "digits",
        [f"run.data_root={image_tree.root}", "method=supervised", "run.time_budget=12s", f"run.resume_from_checkpoint={foreign}"],
    )
    with pytest.raises(SesemiError):
        run(config, tmp_path / "run")
    assert BUDGET_VARIABLE not in os.environ


def test_ctrl_c_while_the_budget_is_measured_stops_the_run_as_ctrl_c_does(image_tree, tmp_path, monkeypatch):
    """The measuring trainer is Lightning's too, and exits with 1 after Ctrl-C: the run exits
    with 130, as a run stopped while training does, and leaves no folder (it had not started)."""
    from sesemi.budget import _StepTimer

    def ctrl_c(self, trainer, *args):
        raise KeyboardInterrupt

    monkeypatch.setattr(_StepTimer, "on_train_batch_start", ctrl_c)
    config = compose("digits", [f"run.data_root={image_tree.root}", "method=supervised", "run.time_budget=12s"])
    with pytest.raises(SystemExit) as stopped:
        run(config, tmp_path / "run")
    assert stopped.value.code == 130
    assert not (tmp_path / "run").exists()

"""The method group (configs/method/): every method, on image and on audio data, composes with
its data config and trains; its config stays data- and modality-agnostic."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import pytest
from audio_samples import TINY_AUDIO_TRAINING, audio_tree
from conftest import TWO_TINY_STEPS
from omegaconf import OmegaConf

from sesemi.config.catalog import data_configs, methods
from sesemi.datamodule import loader_batch_size
from sesemi.results import RunResult
from sesemi.runner import run

# The pre-training recipes: one step of their pretext task, one of the rest.
PRETRAIN = "run.pretrain=0.5"
# TWO_TINY_STEPS for recordings: 2 steps on the CPU, validating at the end.
AUDIO_STEPS = [
    "run.num_iterations=2",
    "run.gpus=0",
    "trainer.val_check_interval=2",
    "+trainer.log_every_n_steps=1",
]


def test_methods_and_data_configs_are_the_packaged_files():
    """The catalog lists configs/method/*.yaml and the top-level configs, nothing hard-coded."""
    assert {"supervised", "fixmatch", "flexmatch", "mean_teacher", "rotation"} <= set(methods())
    assert {"image", "audio", "base", "imagewoof", "digits", "spoken_digits"} <= set(data_configs())
    assert not set(methods()) & set(data_configs())


@pytest.mark.parametrize("method", methods())
def test_a_method_config_names_itself_and_only_adds_loaders_and_heads(compose_config, method):
    """`digits method=X`: the digits data config as it is, plus X's loaders (reading the
    unlabeled pool at mu per labeled item) and loss heads, whatever else the method is."""
    supervised, config = compose_config("digits", "method=supervised"), compose_config("digits", f"method={method}")
    assert config.run.method == method and supervised.run.method == "supervised"
    added = set(config.data.train) - {"supervised"}
    assert config.data.train.supervised == supervised.data.train.supervised
    for name in added:
        loader = config.data.train[name]
        assert OmegaConf.to_container(loader)["dataset"] == "${data.unlabeled}"
        assert loader.mu is not None and loader.batch_size is None and set(loader.views) <= set(config.data.views)
    heads = config.learner.hparams.model.regularization_loss_heads or {}
    assert {head.head.input_data for head in heads.values()} == added
    for section in ("views", "val", "unlabeled"):
        assert config.data[section] == supervised.data[section]
    assert config.learner.hparams.optimizer == supervised.learner.hparams.optimizer


def _train(compose_config, name: str, overrides: list[str], run_dir: Path) -> RunResult:
    return run(compose_config(name, PRETRAIN, *overrides), run_dir)


def _logged(result: RunResult) -> set[str]:
    with open(result.run_dir / "metrics.csv") as file:
        return set(next(csv.reader(file)))


def _check_trained(result: RunResult, config_heads: list[str], classes: list[str], supervised: bool = True) -> None:
    assert result.global_step == 2 and result.classes == classes
    assert math.isfinite(result.metrics["val/loss"])
    terms = {*(["train/supervised_loss"] if supervised else []), *(f"train/{head}_loss" for head in config_heads)}
    assert terms <= _logged(result)


@pytest.mark.slow
@pytest.mark.parametrize("method", methods())
def test_every_method_trains_on_images(compose_config, image_tree, tmp_path, method):
    """`digits method=X` on a folder of images: two real steps of every loader and loss head."""
    overrides = [f"method={method}", f"run.data_root={image_tree.root}", *TWO_TINY_STEPS]
    model = compose_config("digits", *overrides).learner.hparams.model
    result = _train(compose_config, "digits", overrides, tmp_path / "run")
    _check_trained(result, list(model.regularization_loss_heads or {}), image_tree.classes, bool(model.supervised_loss))


def test_the_mean_teacher_trains_with_a_data_config_that_has_no_ema(compose_config, image_tree, tmp_path):
    """Its teacher is the weights' average: a data config without the EMA callback (`base`, or
    here `digits` with its callbacks cleared) gets one, rather than failing at the first step."""
    overrides = ["method=mean_teacher", f"run.data_root={image_tree.root}", *TWO_TINY_STEPS, "trainer.callbacks=[]"]
    result = _train(compose_config, "digits", overrides, tmp_path / "run")
    _check_trained(result, ["consistency"], image_tree.classes)


def test_simclr_freematch_trains_the_labels_beside_simclr_then_freematch(compose_config, image_tree, tmp_path):
    """Its two phases: the labels from the first step (SimCLR alone first lost to the labels
    alone on letters), SimCLR for `run.pretrain` of the budget (here 2 of 4 steps), then
    FreeMatch. Each step's loss is the sum of the terms it trained; metrics.csv may repeat a
    skipped term's last value once, so the sum tells which terms there were."""
    overrides = ["method=simclr_freematch", f"run.data_root={image_tree.root}", *TWO_TINY_STEPS, "run.num_iterations=4"]
    result = _train(compose_config, "digits", overrides, tmp_path / "run")
    with open(result.run_dir / "metrics.csv") as file:
        steps = [{k: float(v) for k, v in row.items() if v} for row in csv.DictReader(file) if row["train/loss"]]
    assert [row["step"] for row in steps] == [0, 1, 2, 3]
    for row in steps:
        other = row["train/simclr_loss"] if row["step"] < 2 else row.get("train/fixmatch_loss", 0.0)
        assert row["train/loss"] == pytest.approx(row["train/supervised_loss"] + other)


@pytest.mark.slow
@pytest.mark.parametrize("method", methods())
def test_every_method_trains_on_audio(compose_config, tmp_path, method):
    """`spoken_digits method=X` on generated recordings: the same method configs read the audio
    views (rotation and jigsaw turn and shuffle waveforms in time)."""
    tree = audio_tree(tmp_path / "sounds", train=2, val=1, unlabeled=2)
    overrides = [f"method={method}", f"run.data_root={tree.root}", *TINY_AUDIO_TRAINING]
    model = compose_config("spoken_digits", *overrides).learner.hparams.model
    result = _train(compose_config, "spoken_digits", [*overrides, *AUDIO_STEPS], tmp_path / "run")
    _check_trained(result, list(model.regularization_loss_heads or {}), tree.classes, bool(model.supervised_loss))


@pytest.mark.parametrize(("method", "unlabeled"), [("fixmatch", 30), ("pi_model", 30), ("entropy_minimization", 40), ("rotation", 10)])
def test_unlabeled_batches_follow_the_labeled_batch(compose_config, method, unlabeled):
    """10 labeled images per step: the FixMatch family and the consistency methods read run.mu
    (here 3) unlabeled images per labeled one; the others keep a ratio of their own."""
    config = compose_config("digits", f"method={method}", "run.batch_size_per_gpu=10", "run.mu=3")
    (name,) = set(config.data.train) - {"supervised"}
    assert loader_batch_size(name, config.data.train[name], config.run.batch_size_per_gpu) == unlabeled
    assert compose_config("image", f"method={method}").run.mu == 7  # FixMatch's


@pytest.mark.parametrize("data", data_configs())
def test_every_data_config_composes_with_every_method(compose_config, data):
    """A data config names no method's nodes, so `-cn DATA method=X` gives X's loaders and heads
    for every X, and each loss head reads a loader that exists."""
    for method in methods():
        config = compose_config(data, f"method={method}")
        heads = config.learner.hparams.model.regularization_loss_heads or {}
        assert config.run.method == method
        assert {head.head.input_data for head in heads.values()} == set(config.data.train) - {"supervised"}


def test_simclr_freematch_gives_a_tenth_of_the_budget_to_simclr(compose_config):
    """Within a fixed budget each SimCLR step is a FreeMatch step not taken: on letters a quarter
    left the recipe level with the labels alone, a tenth gained on every seed."""
    from sesemi.config.resolvers import SESEMIConfigAttributes, set_attributes

    heads = compose_config("digits", "method=simclr_freematch").learner.hparams.model.regularization_loss_heads
    set_attributes(SESEMIConfigAttributes(max_iterations=1000))  # the budget, as a run fills it in
    assert heads.simclr.scheduler.stop == 100 and heads.fixmatch.scheduler.delay == 100

"""Each built-in image method config trains on any folder in the standard layout, with no edit
but `run.data_root`, and its `digits_<method>` twin is sized for a CPU."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import pytest

from sesemi.runner import execute

# config: (its unlabeled loader, its loss head); None for the labels alone
METHODS = {
    "supervised": None,
    "rotation": ("rotation_prediction", "rotation_prediction"),
    "jigsaw": ("jigsaw_prediction", "jigsaw_prediction"),
    "entropy_minimization": ("entropy_minimization", "entropy_minimization"),
    "pi_model": ("consistency", "consistency"),
    "mean_teacher": ("consistency", "consistency"),
    "fixmatch": ("fixmatch", "fixmatch"),
    "flexmatch": ("fixmatch", "fixmatch"),
    "freematch": ("fixmatch", "fixmatch"),
}



@pytest.mark.slow
@pytest.mark.parametrize("name", list(METHODS))
def test_method_trains_a_few_steps_on_a_folder(compose_config, image_tree, tmp_path, name):
    """6 steps over two epochs of 3 (9 labeled and 4 unlabeled images, batches of 4), with a
    loader process per loader as the configs have them, validating at the end."""
    overrides = [
        f"run.data_root={image_tree.root}",
        "run.num_iterations=6",
        "run.gpus=0",
        "run.batch_size_per_gpu=4",
        "data.train.supervised.num_workers=1",
        "learner.hparams.model.backbone.widths=[4,8]",
        "trainer.val_check_interval=6",
        "+trainer.log_every_n_steps=1",
        "+trainer.enable_progress_bar=false",
        "+trainer.enable_model_summary=false",
    ]
    if METHODS[name]:
        overrides.append(f"data.train.{METHODS[name][0]}.batch_size=4")
    config = compose_config(name, *overrides)
    results = execute(config, tmp_path / "run")
    assert results["global_step"] == 6 and results["epoch"] == 2
    assert math.isfinite(results["metrics"]["val/loss"]) and results["classes"] == image_tree.classes
    with open(Path(results["run_dir"]) / "metrics.csv") as file:
        columns = set(next(csv.reader(file)))
    assert "train/supervised_loss" in columns
    if METHODS[name]:
        assert f"train/{METHODS[name][1]}_loss" in columns


@pytest.mark.parametrize("name", list(METHODS))
def test_digits_twin_is_the_method_on_the_digits_data(compose_config, name):
    """`digits_<method>`: the same loaders and heads on ./data/digits, with a CPU-sized budget."""
    method, twin = compose_config(name), compose_config(f"digits_{name}")
    assert twin.run.id == f"digits_{name}" and twin.run.data_root == "./data/digits"
    assert twin.run.num_iterations <= 1000 and twin.run.seed == 42
    assert set(twin.data.train) == set(method.data.train)
    heads = twin.learner.hparams.model.regularization_loss_heads or {}
    assert set(heads) == set(method.learner.hparams.model.regularization_loss_heads or {})
    assert twin.learner.hparams.model.backbone._target_ == "sesemi.ConvNet"
    assert twin.data.train.supervised.dataset.image_transform.p_hflip == 0.0  # flipped digits are other symbols


@pytest.mark.parametrize("name", ["rotation", "entmin", "fixmatch"])
def test_imagewoof_variants_are_the_methods_at_224_px_on_a_resnet(compose_config, name):
    """The original library's imagewoof_<method> configs on ./data/imagewoof2."""
    config = compose_config(f"imagewoof_{name}")
    assert config.run.id == f"imagewoof_{name}" and config.run.data_root == "./data/imagewoof2"
    assert config.learner.hparams.model.backbone.name == "resnet50d"
    transform = config.data.train.supervised.dataset.image_transform
    assert transform._target_ == "sesemi.transforms.train_transforms" and transform.crop_dim == 224
    assert config.learner.hparams.model.regularization_loss_heads

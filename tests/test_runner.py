"""Running a composed config (sesemi/runner.py): early checks and the `${sesemi:...}` values."""

from __future__ import annotations

import pytest
from omegaconf import OmegaConf

from sesemi.config.structs import RunMode
from sesemi.datamodule import SESEMIDataModule
from sesemi.errors import SesemiError
from sesemi.runner import attributes_for, check_config, run_mode

TO_TENSOR = {"_target_": "sesemi.transforms.to_normalized_tensor", "mean": [0.5] * 3, "std": [0.5] * 3}


def _config(loaders=("supervised", "rotation_prediction"), mode="FIT", **run):
    train = {
        "supervised": {
            "dataset": {"name": "image_folder", "subset": "train", "image_transform": TO_TENSOR},
            "batch_size": 3,
            "drop_last": True,
        },
        "rotation_prediction": {
            "dataset": {"name": "image_file", "subset": ["train", "unlabeled"], "image_transform": TO_TENSOR},
            "batch_size": 2,
            "collate_fn": {"_target_": "sesemi.collation.RotationTransformer"},
        },
    }
    return OmegaConf.create(
        {
            "run": {"gpus": 0, "num_nodes": 1, "num_epochs": None, "num_iterations": None, "mode": mode, **run},
            "data": {"train": {name: train[name] for name in loaders}},
            "learner": {
                "hparams": {
                    "model": {
                        "supervised_loss": {"callable": {"_target_": "torch.nn.CrossEntropyLoss"}},
                        "regularization_loss_heads": {
                            "rotation_prediction": {"head": {"input_data": "rotation_prediction"}}
                        },
                    }
                }
            },
        }
    )


def test_run_mode_accepts_names_in_any_case():
    """"validate", "VALIDATE" and the enum itself are all VALIDATE; others are refused."""
    assert run_mode("validate") is RunMode.VALIDATE
    assert run_mode("FIT") is RunMode.FIT
    assert run_mode(RunMode.TEST) is RunMode.TEST
    with pytest.raises(SesemiError, match="FIT, VALIDATE, TEST"):
        run_mode("train")


def test_check_config_accepts_a_complete_config():
    """Every loss term has its loader: no error."""
    check_config(_config())


def test_supervised_loss_without_supervised_loader_is_refused():
    """A supervised loss needs data.train.supervised when fitting."""
    with pytest.raises(SesemiError, match="data.train.supervised"):
        check_config(_config(loaders=("rotation_prediction",)))


def test_evaluation_does_not_need_training_loaders():
    """VALIDATE reads no training data, so a missing supervised loader is fine there."""
    config = _config(loaders=(), mode="VALIDATE")
    config.learner.hparams.model.regularization_loss_heads = None
    check_config(config)


def test_loss_head_reading_an_undefined_loader_is_refused():
    """A head's input_data must name a training loader; the error lists the loaders."""
    with pytest.raises(SesemiError) as error:
        check_config(_config(loaders=("supervised",)))
    assert "rotation_prediction" in str(error.value) and "supervised" in str(error.value)


def test_attributes_come_from_the_data(image_tree):
    """num_classes, iterations_per_epoch and max_iterations are read off the built loaders."""
    config = _config(num_epochs=3)
    module = SESEMIDataModule(config.data, str(image_tree.root), None)
    module.setup()
    attributes = attributes_for(config, module)
    assert attributes.num_classes == 3
    assert attributes.iterations_per_epoch == 7  # ceil(13 rotation images / 2)
    assert attributes.max_iterations == 21
    assert attributes.num_gpus == 0 and attributes.num_nodes == 1


def test_iteration_budget_is_max_iterations(image_tree):
    """With run.num_iterations, max_iterations is exactly that."""
    config = _config(num_iterations=11)
    module = SESEMIDataModule(config.data, str(image_tree.root), None)
    module.setup()
    assert attributes_for(config, module).max_iterations == 11

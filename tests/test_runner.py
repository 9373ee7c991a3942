"""Running a composed config (sesemi/runner.py): early checks and the `${sesemi:...}` values."""

from __future__ import annotations

import pytest
import torch
from omegaconf import OmegaConf

from sesemi.config.structs import RunMode
from sesemi.datamodule import SESEMIDataModule
from sesemi.errors import SesemiError
from sesemi.learners.classifier import Classifier
from sesemi.runner import attributes_for, check_config, load_initial_weights, run_mode

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


def _flexmatch_classifier(make_hparams, num_classes: int) -> Classifier:
    hparams = make_hparams(num_classes=num_classes, rotation=False)
    hparams["model"]["regularization_loss_heads"] = {
        "fixmatch": {
            "head": {
                "_target_": "sesemi.models.heads.loss.FixMatchLossHead",
                "input_data": "fixmatch",
                "thresholding": "flexmatch",
                "distribution_alignment": True,
            }
        }
    }
    return Classifier(hparams)


@pytest.mark.parametrize("num_classes", [3, 5])
def test_fine_tuning_gathers_the_loss_head_statistics_afresh(make_hparams, tmp_path, num_classes):
    """The backbone comes from the checkpoint; FlexMatch's recent pseudo-labels and the tracked
    class distribution describe the run that wrote it, so they start over (same classes or not)."""
    trained = _flexmatch_classifier(make_hparams, 3)
    head = trained.loss_heads["fixmatch"]
    head.thresholds.recent.fill_(1)
    head.alignment.model_probs.copy_(torch.tensor([0.8, 0.1, 0.1]))
    path = tmp_path / "trained.ckpt"
    torch.save({"state_dict": trained.state_dict()}, path)

    model = _flexmatch_classifier(make_hparams, num_classes)
    fresh = {k: v.clone() for k, v in model.loss_heads.state_dict().items()}
    run = OmegaConf.create({"pretrained_checkpoint_path": str(path), "resume_from_checkpoint": None})
    load_initial_weights(model, run, RunMode.FIT)
    for key, value in trained.backbone.state_dict().items():
        torch.testing.assert_close(model.backbone.state_dict()[key], value)
    for key, value in model.loss_heads.state_dict().items():
        torch.testing.assert_close(value, fresh[key])
    assert (model.loss_heads["fixmatch"].thresholds.recent == -1).all()

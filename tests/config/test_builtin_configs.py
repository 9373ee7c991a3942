"""The built-in configs (configs/*.yaml, installed as sesemi.configs) compose and instantiate."""

from __future__ import annotations

import pytest
from hydra.utils import instantiate
from omegaconf import OmegaConf

from sesemi.config import (
    SESEMIConfigAttributes,
    set_attributes,
)
from sesemi.learners.classifier import Classifier
from sesemi.models.backbones.convnet import ConvNet
from sesemi.models.backbones.timm import PyTorchImageModels


def test_digits_is_flexmatch_on_the_digits_data(compose_config):
    """digits, the demo: digits_flexmatch (a ConvNet, an iteration budget) under its own run id."""
    config = compose_config("digits")
    assert config.run.id == "digits"
    assert config.run.seed == 42
    assert config.run.data_root == "./data/digits"
    assert config.run.num_iterations == 800 and config.run.num_epochs is None
    assert config.learner.hparams.model.backbone._target_ == "sesemi.ConvNet"
    assert set(config.data.train) == {"supervised", "fixmatch"}
    assert config.data.train.fixmatch.dataset.subset == ["train", "unlabeled"]
    head = config.learner.hparams.model.regularization_loss_heads.fixmatch.head
    assert head.thresholding == "flexmatch"
    flexmatch = compose_config("digits_flexmatch")
    assert OmegaConf.masked_copy(config, ["data", "learner"]) == OmegaConf.masked_copy(flexmatch, ["data", "learner"])
    assert config.data.val.dataset.subset == "val"
    assert config.data.train.supervised.dataset.image_transform.p_hflip == 0.0


def test_base_composes_with_resnet50d(compose_config):
    """base: the default timm backbone and an epoch budget."""
    config = compose_config("base")
    assert config.learner.hparams.model.backbone.name == "resnet50d"
    assert config.run.num_epochs == 50 and config.run.num_iterations is None
    head = config.learner.hparams.model.regularization_loss_heads.rotation_prediction.head
    assert head._target_ == "sesemi.models.heads.loss.RotationPredictionLossHead"


def test_imagewoof_composes(compose_config):
    """imagewoof: base on ./data/imagewoof2 with its own id and budget."""
    config = compose_config("imagewoof")
    assert config.run.data_root == "./data/imagewoof2"
    assert config.run.id == "imagewoof"
    assert config.run.num_epochs == 80
    assert config.learner.hparams.model.backbone.name == "resnet50d"


def test_backbone_group_swaps_the_backbone(compose_config):
    """`backbone=resnet18` replaces the whole backbone node."""
    config = compose_config("base", "backbone=resnet18")
    backbone = config.learner.hparams.model.backbone
    assert backbone._target_ == "sesemi.PyTorchImageModels"
    assert backbone.name == "resnet18"
    assert isinstance(instantiate(backbone), PyTorchImageModels)


def test_digits_with_resnet18_backbone_instantiates(compose_config):
    """`open_sesemi -cn digits backbone=resnet18` (documented in cli/open_sesemi.py) must build.

    digits.yaml sets ConvNet `widths` under learner.hparams.model.backbone, so they leak into any
    other backbone chosen with `backbone=...`.
    """
    config = compose_config("digits", "backbone=resnet18")
    backbone = instantiate(config.learner.hparams.model.backbone)  # fails: unexpected 'widths'
    assert isinstance(backbone, PyTorchImageModels)


def test_digits_learner_instantiates_after_attributes_are_set(compose_config, restore_attributes):
    """With the data-derived attributes set, the digits learner (and its optimizer and
    PolynomialLR schedule) instantiate from the composed config."""
    config = compose_config("digits", "learner.hparams.model.backbone.widths=[4,8]")
    set_attributes(SESEMIConfigAttributes(iterations_per_epoch=5, max_iterations=20, num_classes=10))
    OmegaConf.resolve(config)
    assert config.learner.hparams.num_classes == 10
    learner = instantiate(config.learner, _recursive_=False)
    assert isinstance(learner, Classifier) and isinstance(learner.backbone, ConvNet)
    assert learner.head.fc.out_features == 10
    optimizers = learner.configure_optimizers()
    scheduler = optimizers["lr_scheduler"]["scheduler"]
    assert scheduler.max_iters == 20 and scheduler.warmup_iters == 0  # linear decay from the start
    assert optimizers["lr_scheduler"]["interval"] == "step"


@pytest.mark.parametrize("name", ["base", "supervised", "fixmatch", "mean_teacher", "audio_fixmatch"])
def test_loaders_load_in_worker_processes_that_outlive_an_iteration(compose_config, name):
    """The method configs load in workers (sized for a GPU), kept between validations."""
    config = compose_config(name)
    loaders = [*config.data.train.values(), config.data.val]
    assert all(loader.num_workers > 0 and loader.persistent_workers for loader in loaders)

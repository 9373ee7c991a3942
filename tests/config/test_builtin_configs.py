"""The built-in configs (configs/*.yaml, installed as sesemi.configs) compose and instantiate."""

from __future__ import annotations

import pytest
from hydra.utils import instantiate
from omegaconf import OmegaConf

from sesemi.config import (
    SESEMIConfigAttributes,
    set_attributes,
)
from sesemi.config.catalog import data_configs, methods
from sesemi.datamodule import loader_batch_size
from sesemi.learners.classifier import Classifier
from sesemi.models.backbones.convnet import ConvNet
from sesemi.models.backbones.timm import PyTorchImageModels


def test_digits_is_flexmatch_on_the_digits_data(compose_config):
    """digits, the demo: image data with FlexMatch, a small ConvNet and a CPU-sized budget."""
    config = compose_config("digits")
    assert config.run.id == "digits" and config.run.method == "flexmatch"
    assert config.run.seed == 42
    assert config.run.data_root == "./data/digits"
    assert config.run.num_iterations == 400 and config.run.num_epochs is None
    assert (config.run.mu, config.run.rampup) == (1, 0.25)  # 32 unlabeled images per step, a quarter's ramp-up
    assert config.learner.hparams.model.backbone._target_ == "sesemi.ConvNet"
    assert list(config.data.train) == ["supervised", "fixmatch"]
    assert config.data.train.fixmatch.dataset.subset == ["train", "unlabeled"]
    head = config.learner.hparams.model.regularization_loss_heads.fixmatch
    assert head.head.thresholding == "flexmatch"
    set_attributes(SESEMIConfigAttributes(max_iterations=400))
    assert head.scheduler.stop == 100  # full weight after the first quarter
    assert config.data.val.dataset.subset == "val"
    assert config.data.views.weak.p_hflip == 0.0  # flipped digits are other symbols
    assert config.data.train.supervised.dataset.image_transform == config.data.views.weak


def test_base_composes_with_resnet50d(compose_config):
    """base: the default timm backbone, an epoch budget, rotation prediction by default."""
    config = compose_config("base")
    assert config.learner.hparams.model.backbone.name == "resnet50d"
    assert config.run.num_epochs == 50 and config.run.num_iterations is None
    assert config.run.method == "rotation"
    head = config.learner.hparams.model.regularization_loss_heads.rotation_prediction.head
    assert head._target_ == "sesemi.models.heads.loss.RotationPredictionLossHead"
    rotation = config.data.train.rotation_prediction
    assert rotation.views == ["weak"] and config.data.views.weak._target_ == "sesemi.transforms.train_transforms"
    assert loader_batch_size("rotation_prediction", rotation, config.run.batch_size_per_gpu) == 16  # x4 rotations


def test_imagewoof_composes(compose_config):
    """imagewoof: base on ./data/imagewoof2 with its own id and budget."""
    config = compose_config("imagewoof")
    assert config.run.data_root == "./data/imagewoof2"
    assert config.run.id == "imagewoof"
    assert config.run.num_epochs == 80
    assert config.learner.hparams.model.backbone.name == "resnet50d"
    assert config.run.method == "rotation"


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


@pytest.mark.parametrize("data", ["base", "image", "audio"])
def test_loaders_load_in_worker_processes_that_outlive_an_iteration(compose_config, data):
    """The data configs load in workers (`auto`: sized from the machine's cores), kept between
    validations, and so do the loaders every method adds."""
    for method in methods():
        config = compose_config(data, f"method={method}")
        loaders = [*config.data.train.values(), config.data.val]
        assert all(loader.num_workers == "auto" and loader.persistent_workers for loader in loaders)


def test_no_config_writes_checkpoints_itself(compose_config):
    """The runner writes best.ckpt and last.ckpt; a configured ModelCheckpoint would write twice."""
    for data in data_configs():
        callbacks = compose_config(data).trainer.callbacks or []
        assert not [c for c in callbacks if c._target_.endswith("ModelCheckpoint")]

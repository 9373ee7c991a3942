"""The built-in audio configs (configs/audio_*.yaml, spoken_digits*.yaml) compose and instantiate."""

from __future__ import annotations

import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

from sesemi.config import (
    SESEMIConfigAttributes,
    set_attributes,
)
from sesemi.models.backbones import AudioBackbone, PyTorchImageModels
from sesemi.transforms import MultiView

METHODS = {
    "audio_supervised": None,
    "audio_fixmatch": "fixmatch",
    "audio_mean_teacher": "consistency",
    "audio_entropy_minimization": "entropy_minimization",
}



@pytest.mark.parametrize("name", list(METHODS))
def test_audio_methods_share_the_standard_layout_and_build(compose_config, name):
    """Every method reads train/, val/ (and train/ + unlabeled/) at 16 kHz, and its learner builds."""
    config = compose_config(name, "learner.hparams.model.backbone.encoder.widths=[4,8]")
    supervised = config.data.train.supervised.dataset
    assert (supervised.name, supervised.subset, supervised.sample_rate) == ("audio_folder", "train", 16000)
    assert config.data.val.dataset.name == "audio_folder" and config.data.val.dataset.subset == "val"
    loader = METHODS[name]
    assert set(config.data.train) == {"supervised"} | ({loader} if loader else set())
    if loader:
        assert config.data.train[loader].dataset.name == "audio_file"
        assert list(config.data.train[loader].dataset.subset) == ["train", "unlabeled"]
    set_attributes(SESEMIConfigAttributes(iterations_per_epoch=5, max_iterations=20, num_classes=4))
    OmegaConf.resolve(config)
    learner = instantiate(config.learner, _recursive_=False)
    assert isinstance(learner.backbone, AudioBackbone) and learner.backbone.sample_rate == 16000
    assert learner(torch.randn(2, 16000)).shape == (2, 4)


def test_fixmatch_views_are_weak_and_strong(compose_config):
    config = compose_config("audio_fixmatch")
    view = instantiate(config.data.train.fixmatch.dataset.image_transform)
    assert isinstance(view, MultiView)
    weak, strong = view(torch.randn(24000))
    assert weak.shape == strong.shape == (16000,)


def test_audio_encoder_group_swaps_the_encoder(compose_config):
    config = compose_config("audio_supervised", "audio_encoder=resnet18")
    backbone = instantiate(config.learner.hparams.model.backbone)
    assert isinstance(backbone.encoder, PyTorchImageModels) and backbone.out_features == 512


@pytest.mark.parametrize("name", ["spoken_digits", "spoken_digits_fixmatch"])
def test_spoken_digits_configs_are_cpu_sized(compose_config, name):
    config = compose_config(name)
    assert config.run.data_root == "./data/spoken_digits" and config.run.id == name
    assert config.run.num_iterations <= 2400  # minutes on a CPU
    assert config.learner.hparams.model.backbone.n_mels == 40
    assert list(config.learner.hparams.model.backbone.encoder.widths) == [16, 32, 64]
    assert config.data.train.supervised.num_workers == 0


def test_audio_methods_keep_the_safeguards_of_the_image_methods(compose_config):
    """An unsure audio model must not be taught by its own guesses: FixMatch's adaptive
    thresholds have a floor, and mean teacher counts only targets the teacher is sure of."""
    heads = lambda name: compose_config(name).learner.hparams.model.regularization_loss_heads  # noqa: E731
    fixmatch = heads("audio_fixmatch").fixmatch.head
    assert fixmatch.thresholding == "flexmatch" and fixmatch.min_threshold == 0.8
    assert fixmatch.distribution_alignment
    assert heads("audio_mean_teacher").consistency.head.threshold == 0.8

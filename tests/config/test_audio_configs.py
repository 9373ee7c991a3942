"""The built-in audio data configs (configs/audio.yaml, spoken_digits.yaml) compose and
instantiate with the method configs that work on audio."""

from __future__ import annotations

import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

from sesemi.config import (
    SESEMIConfigAttributes,
    set_attributes,
)
from sesemi.config.catalog import methods
from sesemi.models.backbones import AudioBackbone, PyTorchImageModels
from sesemi.transforms import MultiView
from sesemi.transforms.audio import SpeedChange


@pytest.mark.parametrize("method", methods())
def test_audio_methods_share_the_standard_layout_and_build(compose_config, method):
    """Every method reads train/, val/ (and train/ + unlabeled/) at 16 kHz, and its learner builds."""
    config = compose_config("audio", f"method={method}", "learner.hparams.model.backbone.encoder.widths=[4,8]")
    supervised = config.data.train.supervised.dataset
    assert (supervised.name, supervised.subset, supervised.sample_rate) == ("audio_folder", "train", 16000)
    assert config.data.val.dataset.name == "audio_folder" and config.data.val.dataset.subset == "val"
    for name in set(config.data.train) - {"supervised"}:
        unlabeled = config.data.train[name].dataset
        assert (unlabeled.name, list(unlabeled.subset), unlabeled.sample_rate) == ("audio_file", ["train", "unlabeled"], 16000)
    set_attributes(SESEMIConfigAttributes(iterations_per_epoch=5, max_iterations=20, num_classes=4))
    OmegaConf.resolve(config)
    learner = instantiate(config.learner, _recursive_=False)
    assert isinstance(learner.backbone, AudioBackbone) and learner.backbone.sample_rate == 16000
    assert learner(torch.randn(2, 16000)).shape == (2, 4)


def test_fixmatch_views_are_the_audio_weak_and_strong_ones(compose_config):
    """The same fixmatch method config as on images reads the audio data config's views."""
    config = compose_config("audio", "method=fixmatch")
    assert list(config.data.train.fixmatch.views) == ["weak", "strong"]
    view = MultiView([instantiate(config.data.views[name]) for name in config.data.train.fixmatch.views])
    weak, strong = view(torch.randn(24000))
    assert weak.shape == strong.shape == (16000,)
    assert config.data.views.strong._target_ == "sesemi.transforms.strong_audio_transforms"


@pytest.mark.parametrize("data", ["audio", "spoken_digits"])
def test_the_strong_view_changes_speed_by_default_and_can_be_turned_off(compose_config, data):
    """Speed perturbation is in the audio strong view unless `speed` is [1, 1]; the weak view has
    none unless given a range, and the strong view, built on it, then has it too."""

    def has_speed_change(view) -> bool:  # in the view, or in the weak view a strong one is built on
        return any(isinstance(step, SpeedChange) or has_speed_change(step) for step in getattr(view, "transforms", ()))

    config = compose_config(data, "method=fixmatch")
    assert has_speed_change(instantiate(config.data.views.strong))
    assert not has_speed_change(instantiate(config.data.views.weak))
    config = compose_config(data, "method=fixmatch", "data.views.strong.speed=[1.0,1.0]")
    assert not has_speed_change(instantiate(config.data.views.strong))
    config = compose_config(data, "method=fixmatch", "data.views.weak.speed=[0.9,1.1]", "data.views.strong.speed=[1.0,1.0]")
    assert has_speed_change(instantiate(config.data.views.weak)) and has_speed_change(instantiate(config.data.views.strong))


def test_audio_encoder_group_swaps_the_encoder(compose_config):
    config = compose_config("audio", "method=supervised", "audio_encoder=resnet18")
    backbone = instantiate(config.learner.hparams.model.backbone)
    assert isinstance(backbone.encoder, PyTorchImageModels) and backbone.out_features == 512


@pytest.mark.parametrize("method", ["supervised", "flexmatch"])
def test_spoken_digits_is_cpu_sized_whatever_the_method(compose_config, method):
    config = compose_config("spoken_digits", f"method={method}")
    assert config.run.data_root == "./data/spoken_digits" and config.run.id == "spoken_digits"
    assert config.run.num_iterations <= 2400 and config.run.mu == 1  # minutes on a CPU
    assert config.learner.hparams.model.backbone.n_mels == 40
    assert list(config.learner.hparams.model.backbone.encoder.widths) == [16, 32, 64]
    assert config.data.train.supervised.num_workers == 0
    assert config.data.views.eval.clip_seconds == config.data.views.weak.clip_seconds == 1.2


def test_audio_methods_keep_the_safeguards_of_the_image_methods(compose_config):
    """An unsure audio model must not be taught by its own guesses: FlexMatch (the audio
    default) has a floor under its adaptive thresholds, and mean teacher counts only targets
    the teacher is sure of."""
    default = compose_config("audio")
    assert default.run.method == compose_config("spoken_digits").run.method == "flexmatch"
    fixmatch = default.learner.hparams.model.regularization_loss_heads.fixmatch.head
    assert fixmatch.thresholding == "flexmatch" and fixmatch.min_threshold == 0.8
    assert fixmatch.distribution_alignment
    heads = compose_config("audio", "method=mean_teacher").learner.hparams.model.regularization_loss_heads
    assert heads.consistency.head.threshold == 0.8

"""The audio windows of the predictor (`Predictor.windowing`), on an untrained model: lengths
and spacings are checked before any recording is read."""

from __future__ import annotations

import pytest
from omegaconf import OmegaConf
from torch import nn

import sesemi
from sesemi.errors import SesemiError
from sesemi.learners.trained import TrainedModel
from sesemi.models.backbones import AudioBackbone
from sesemi.predictor import Predictor


@pytest.fixture(scope="module")
def predictor(tmp_path_factory) -> Predictor:
    """A model of 0.5 s clips at 16 kHz whose encoder pools twice (it needs 4 frames of 10 ms)."""
    backbone = AudioBackbone(sesemi.ConvNet((4, 8, 8), in_chans=1), n_mels=16)
    config = OmegaConf.create({"data": {"val": {"dataset": {"image_transform": {"clip_seconds": 0.5}}}}})
    model = TrainedModel(backbone, nn.Linear(8, 2), config, ["a", "b"], tmp_path_factory.mktemp("run"))
    return Predictor(model, device="cpu")


def test_windows_default_to_the_clip_and_half_of_it(predictor):
    assert predictor.windowing() == (0.5, 0.25)
    assert predictor.windowing(2, 1) == (2.0, 1.0)


@pytest.mark.parametrize(("window", "hop"), [(0, None), (None, 0), (-1, None), (1, -0.5)])
def test_windows_and_hops_must_be_positive(predictor, window, hop):
    """0 is refused like a negative value, not taken for "the default"."""
    with pytest.raises(SesemiError, match="^window_seconds and hop_seconds must be positive"):
        predictor.windowing(window, hop)


def test_a_window_shorter_than_the_model_takes_is_refused(predictor):
    assert predictor.model.backbone.min_samples == 480  # 4 frames 160 samples apart: 3 hops
    assert predictor.windowing(0.03) == (0.03, 0.015)
    with pytest.raises(SesemiError, match=r"^window_seconds must be at least 0\.03: .* 480 samples"):
        predictor.windowing(0.02)

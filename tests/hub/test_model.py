"""A loaded model (sesemi/hub/model.py): built from its folder without running code from it."""

from __future__ import annotations

import shutil

import pytest
import torch
from hub_fixtures import cache, trained, write_images  # noqa: F401 (fixtures)
from omegaconf import OmegaConf

from sesemi.errors import SesemiError
from sesemi.hub import load, publish
from sesemi.hub.model import Model
from sesemi.ops.inference import Predictor


@pytest.fixture
def folder(trained, tmp_path, cache):  # noqa: F811
    """A copy of the published tiny model's folder in the cache, to tamper with."""
    uid = publish(trained, "tiny", "1.0.0", tmp_path / "repo")
    return shutil.copytree(load(uid, repository=tmp_path / "repo", device="cpu").path, tmp_path / "copy")


def test_a_config_that_builds_other_classes_is_refused(folder):
    config = OmegaConf.load(folder / "config.yaml")
    config.learner.hparams.model.backbone._target_ = "os.system"
    OmegaConf.save(config, folder / "config.yaml")
    with pytest.raises(SesemiError, match="builds os.system, which is not a sesemi"):
        Model(folder, device="cpu")


def test_allow_admits_a_users_own_backbone(folder, tmp_path, monkeypatch):
    (tmp_path / "my_backbones.py").write_text("from sesemi.models.backbones.convnet import ConvNet as Net\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    config = OmegaConf.load(folder / "config.yaml")
    config.learner.hparams.model.backbone._target_ = "my_backbones.Net"
    OmegaConf.save(config, folder / "config.yaml")
    with pytest.raises(SesemiError, match=r"allow=\['my_backbones.'\]"):
        Model(folder, device="cpu")
    assert Model(folder, device="cpu", allow=["my_backbones."]).module.backbone.__class__.__name__ == "ConvNet"


def test_weights_that_are_not_safetensors_are_one_error_line(folder):
    (folder / "weights.safetensors").write_bytes(b"\x80\x04pickled")
    with pytest.raises(SesemiError, match=r"^cannot read the weights of .* \(.*\)$"):
        Model(folder, device="cpu")


def test_weights_that_do_not_fit_the_config_are_one_error_line(folder):
    config = OmegaConf.load(folder / "config.yaml")
    config.learner.hparams.model.backbone.widths = [4, 16]
    OmegaConf.save(config, folder / "config.yaml")
    with pytest.raises(SesemiError, match="the weights do not fit the model of the config .*size mismatch"):
        Model(folder, device="cpu")


def test_predict_takes_tta_as_the_run_s_predictor_does(folder, trained, tmp_path):  # noqa: F811
    images = write_images(tmp_path / "images", 1, "new")
    model = Model(folder, device="cpu")
    expected = Predictor.from_run(trained, device="cpu").predict(images, tta=True)
    torch.testing.assert_close(model.predict(images, tta=True), expected)
    assert not torch.allclose(model.predict(images), expected)

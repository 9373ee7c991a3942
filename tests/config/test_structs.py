"""The config schema (sesemi/config/structs.py): composition validates keys and types."""

from __future__ import annotations

import pytest
from omegaconf import OmegaConf
from omegaconf.errors import ConfigAttributeError

from sesemi.config import (
    ClassifierConfig,
    LossCallableConfig,
    RunConfig,
    RunMode,
    SESEMIConfig,
)
from sesemi.errors import SesemiError


def test_schema_defaults_match_the_documented_ones():
    """The dataclasses are the source of truth for defaults (DESIGN.md); check the key ones."""
    config = OmegaConf.structured(SESEMIConfig)
    assert config.run.gpus == -1
    assert config.run.mode is RunMode.FIT
    assert config.run.data_root == "./data"
    assert config.run.num_epochs is None and config.run.num_iterations is None
    assert config.run.mu == 7  # FixMatch's unlabeled images per labeled one
    assert config.data.views == {} and config.data.unlabeled is None
    assert LossCallableConfig().reduction == "mean"
    assert ClassifierConfig()._target_ == "sesemi.Classifier"


def test_sesemi_config_uses_the_classifier_learner(compose_config):
    """The root schema composes with `learner: classifier` by default."""
    config = compose_config("sesemi_config")
    assert config.learner._target_ == "sesemi.Classifier"
    assert OmegaConf.get_type(config.learner) is ClassifierConfig
    assert OmegaConf.get_type(config.run) is RunConfig


def test_composed_values_are_typed_by_the_schema(compose_config):
    """`run.mode=validate` becomes the enum and `run.num_nodes=2` an int."""
    config = compose_config("digits", "run.mode=VALIDATE", "run.num_nodes=2")
    assert config.run.mode is RunMode.VALIDATE
    assert config.run.num_nodes == 2 and isinstance(config.run.num_nodes, int)


@pytest.mark.parametrize(
    "override",
    ["run.foo=1", "+run.foo=1", "run.num_iteration=5", "learner.hparams.model.supervised_los=null"],
)
def test_unknown_key_fails_at_compose(compose_config, override):
    """A mistyped key is rejected when the config is composed (with `+` too), not ignored."""
    with pytest.raises(SesemiError) as error:
        compose_config("digits", override)
    assert override.split("=")[0].rsplit(".", 1)[-1] in str(error.value)


@pytest.mark.parametrize("override", ["run.num_nodes=abc", "run.mode=TRAIN", "run.num_iterations=1.5x"])
def test_wrong_type_fails_at_compose(compose_config, override):
    """A value of the wrong type is rejected when the config is composed."""
    with pytest.raises(SesemiError):
        compose_config("digits", override)


def test_config_is_struct_after_compose(compose_config):
    """Code cannot add keys to a composed config by accident either."""
    config = compose_config("digits")
    with pytest.raises(ConfigAttributeError):
        config.run.not_a_field = 1

"""The `${sesemi:<attribute>}` resolver (sesemi/config/resolvers.py)."""

from __future__ import annotations

import pytest
from omegaconf import OmegaConf

from sesemi.config import SESEMIConfigAttributes, register_resolvers, set_attributes
from sesemi.errors import SesemiError


def _sesemi_error(error: BaseException) -> SesemiError | None:
    """The SesemiError in an exception's cause/context chain (OmegaConf wraps resolver errors)."""
    while error is not None:
        if isinstance(error, SesemiError):
            return error
        error = error.__cause__ or error.__context__
    return None


@pytest.fixture(autouse=True)
def _restore(restore_attributes):
    """Every test here changes the global attributes; put them back afterwards."""


def test_attributes_resolve_after_set_attributes():
    """Each attribute resolves to the value set for the run."""
    set_attributes(
        SESEMIConfigAttributes(iterations_per_epoch=7, max_iterations=70, num_gpus=2, num_nodes=3, num_classes=10)
    )
    config = OmegaConf.create(
        {
            "classes": "${sesemi:num_classes}",
            "per_epoch": "${sesemi:iterations_per_epoch}",
            "total": "${sesemi:max_iterations}",
            "gpus": "${sesemi:num_gpus}",
            "nodes": "${sesemi:num_nodes}",
        }
    )
    assert OmegaConf.to_container(config, resolve=True) == {
        "classes": 10,
        "per_epoch": 7,
        "total": 70,
        "gpus": 2,
        "nodes": 3,
    }


def test_values_are_read_when_resolved_not_when_registered():
    """A second set_attributes changes what the same config resolves to (no stale cache)."""
    config = OmegaConf.create({"n": "${sesemi:num_classes}"})
    set_attributes(SESEMIConfigAttributes(num_classes=3))
    assert config.n == 3
    set_attributes(SESEMIConfigAttributes(num_classes=5))
    assert config.n == 5


def test_register_resolvers_is_idempotent():
    """Registering twice (CLI + runner) must not raise."""
    register_resolvers()
    register_resolvers()
    assert OmegaConf.has_resolver("sesemi")


def test_unknown_attribute_is_a_sesemi_error_listing_choices():
    """A mistyped attribute names the valid ones."""
    config = OmegaConf.create({"n": "${sesemi:num_clases}"})
    with pytest.raises(Exception) as info:
        _ = config.n
    error = _sesemi_error(info.value)
    assert error is not None, f"not a SesemiError: {info.value!r}"
    assert "num_clases" in str(error) and "num_classes" in str(error)


def test_unknown_value_is_a_sesemi_error():
    """An attribute not known for this run (e.g. no supervised loader) says so."""
    set_attributes(SESEMIConfigAttributes())
    config = OmegaConf.create({"n": "${sesemi:num_classes}"})
    with pytest.raises(Exception) as info:
        _ = config.n
    error = _sesemi_error(info.value)
    assert error is not None, f"not a SesemiError: {info.value!r}"
    assert "num_classes" in str(error) and "not known" in str(error)

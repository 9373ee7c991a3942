"""The generic name -> object Registry (sesemi/registry.py)."""

from __future__ import annotations

import pytest

from sesemi.registry import Registry


@pytest.fixture
def things() -> Registry:
    registry: Registry = Registry("thing")

    @registry.register()
    def alpha():
        return "a"

    @registry.register("beta")
    def not_beta():
        return "b"

    registry.register("gamma_two")(len)
    return registry


def test_register_uses_the_given_name_or___name__(things):
    """`register()` uses the object's __name__; `register("x")` the given name."""
    assert things.get("alpha")() == "a"
    assert things.get("beta")() == "b"
    assert "not_beta" not in things


def test_list_iter_len_are_sorted_and_filtered(things):
    """`list` is sorted and takes a shell pattern; iteration and len agree with it."""
    assert things.list() == ["alpha", "beta", "gamma_two"]
    assert things.list("*a") == ["alpha", "beta"]
    assert things.list("g*") == ["gamma_two"]
    assert list(things) == things.list() and len(things) == 3


def test_duplicate_name_is_rejected(things):
    """A second registration under a taken name raises and keeps the first object."""
    with pytest.raises(ValueError, match="thing named 'alpha' is already registered"):
        things.register("alpha")(print)
    assert things.get("alpha")() == "a"


def test_unknown_name_keyerror_lists_choices(things):
    """The KeyError names the kind and lists every valid name."""
    with pytest.raises(KeyError) as error:
        things.get("alpah")
    message = error.value.args[0]
    assert "thing" in message and "'alpah'" in message
    assert "alpha, beta, gamma_two" in message


def test_empty_registry_says_none():
    """An empty registry's error says there is nothing to choose from."""
    with pytest.raises(KeyError, match="none"):
        Registry("widget").get("x")

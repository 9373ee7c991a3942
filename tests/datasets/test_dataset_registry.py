"""The dataset registry and `dataset(...)` factory (sesemi/datasets/registry.py).

(Named test_dataset_registry.py, not test_registry.py, to keep test module basenames unique.)
"""

from __future__ import annotations

import pytest

from sesemi.datasets import registry
from sesemi.datasets.registry import DATASETS, dataset, register_dataset
from sesemi.errors import SesemiError


@pytest.fixture
def scratch_registry(monkeypatch):
    """Lets a test register datasets without leaking them into other tests."""
    monkeypatch.setattr(DATASETS, "_entries", dict(DATASETS._entries))


def test_builtin_builders_are_registered():
    """Importing sesemi.datasets registers image_folder and image_file."""
    assert {"image_folder", "image_file"} <= set(DATASETS.list())


def test_unknown_name_lists_the_choices(tmp_path):
    """An unknown dataset name is a SesemiError that lists the registered names."""
    with pytest.raises(SesemiError) as error:
        dataset("image_foldr", str(tmp_path))
    assert "image_foldr" in str(error.value)
    assert "image_file" in str(error.value) and "image_folder" in str(error.value)


def test_unknown_keyword_is_one_line_listing_options(image_tree):
    """A keyword the builder does not take is a one-line error with the valid options."""
    with pytest.raises(SesemiError) as error:
        dataset("image_folder", str(image_tree.root), subset="train", colour="red")
    message = str(error.value)
    assert "\n" not in message
    assert "colour" in message and "on_error" in message


def test_known_keywords_are_passed_to_the_builder(image_tree):
    """Builder options such as on_error reach the builder."""
    data = dataset("image_folder", str(image_tree.root), subset="train", on_error="raise")
    assert data.on_error == "raise" and len(data) == 9


def test_registered_builder_gets_root_subset_transform_and_options(scratch_registry, tmp_path):
    """A user builder registered by name is called with the standard arguments and its options."""
    calls = []

    @register_dataset("toy_for_test")
    def toy(root, subset=None, image_transform=None, size=2):
        calls.append((root, subset, image_transform, size))
        return list(range(size))

    transform = object()
    assert dataset("toy_for_test", str(tmp_path), subset="s", image_transform=transform, size=5) == [0, 1, 2, 3, 4]
    assert calls == [(str(tmp_path), "s", transform, 5)]


def test_builder_with_var_keywords_accepts_any_option(scratch_registry, tmp_path):
    """A builder taking **kwargs receives options the factory cannot check."""

    @register_dataset("toy_kwargs_for_test")
    def toy(root, subset=None, image_transform=None, **kwargs):
        return kwargs

    assert dataset("toy_kwargs_for_test", str(tmp_path), anything=1) == {"anything": 1}


def test_duplicate_dataset_name_is_rejected(scratch_registry):
    """Registering a second builder under an existing name fails instead of replacing it."""
    original = DATASETS.get("image_folder")
    with pytest.raises(ValueError, match="image_folder"):
        register_dataset("image_folder")(lambda root, subset=None, image_transform=None: [])
    assert registry.DATASETS.get("image_folder") is original


def test_bare_decorator_registers_under_the_function_name_as_in_0_3(scratch_registry, tmp_path):
    """sesemi 0.3's `@register_dataset` without a name registers the builder and keeps it."""

    @register_dataset
    def toy_bare_for_test(root, subset=None, image_transform=None):
        return [root]

    assert dataset("toy_bare_for_test", str(tmp_path)) == [str(tmp_path)]
    assert toy_bare_for_test(str(tmp_path)) == [str(tmp_path)]

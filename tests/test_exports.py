"""The public API re-exported lazily from `sesemi` (sesemi/__init__.py)."""

from __future__ import annotations

import subprocess
import sys

import pytest

import sesemi


@pytest.mark.parametrize(
    "name",
    ["AudioBackbone", "Classifier", "ConvNet", "PolynomialLR", "RotationTransformer", "SesemiError", "dataset"],
)
def test_public_names_are_the_real_objects(name):
    """`sesemi.X` is the object from its home module (the path configs use as _target_)."""
    import importlib

    value = getattr(sesemi, name)
    home = importlib.import_module(value.__module__)
    assert getattr(home, name) is value
    assert name in sesemi.__all__


def test_unknown_name_is_an_attribute_error():
    """A typo is an AttributeError naming it (so hasattr works)."""
    with pytest.raises(AttributeError, match="NoSuchThing"):
        sesemi.NoSuchThing  # noqa: B018
    assert not hasattr(sesemi, "NoSuchThing")


def test_import_sesemi_is_light():
    """`import sesemi` does not import torch (the CLI's --help stays fast)."""
    code = "import sys, sesemi; print('torch' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"


def test_a_convnet_run_does_not_import_timm():
    """The ConvNet (`_target_: sesemi.ConvNet`) loads without timm, about a second of start-up."""
    code = "import sys, sesemi; sesemi.ConvNet; print('timm' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"

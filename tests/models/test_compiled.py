"""Compiling a module, or running it uncompiled where that fails (sesemi/models/compiled.py)."""

from __future__ import annotations

import functools
import logging

import pytest
import torch

from sesemi.models.backbones.convnet import ConvNet
from sesemi.models.compiled import compile_in_place


def _net() -> ConvNet:
    torch.manual_seed(0)
    return ConvNet(widths=[4, 8])


def test_a_compiled_module_computes_the_same_and_keeps_its_keys(monkeypatch):
    """Dynamo traces the module (the eager backend skips code generation, to stay quick)."""
    monkeypatch.setattr(torch, "compile", functools.partial(torch.compile, backend="eager"))
    net, reference = _net(), _net()
    assert compile_in_place(net)
    images = torch.rand(2, 3, 16, 16)
    net.eval(), reference.eval()
    torch.testing.assert_close(net(images), reference(images))
    assert net.state_dict().keys() == reference.state_dict().keys()


def test_a_compiler_failure_runs_uncompiled_with_one_warning(monkeypatch, caplog):
    """The first line of the compiler's error, once; the outputs are the uncompiled module's."""

    def failing(function, **options):
        def call(*args, **kwargs):
            raise RuntimeError("no C++ compiler found\nlong traceback")

        return call

    monkeypatch.setattr(torch, "compile", failing)
    net, reference = _net().eval(), _net().eval()
    compile_in_place(net)
    images = torch.rand(2, 3, 16, 16)
    with caplog.at_level(logging.WARNING, logger="sesemi.models.compiled"):
        torch.testing.assert_close(net(images), reference(images))
        net(images)
    assert [r.getMessage() for r in caplog.records] == [
        "torch.compile failed (no C++ compiler found); ConvNet runs uncompiled"
    ]


def test_a_mistake_of_the_caller_raises_its_usual_error(monkeypatch):
    """Not the compiler's error, nor one chained to it."""
    monkeypatch.setattr(torch, "compile", functools.partial(torch.compile, backend="eager"))
    net = _net()
    compile_in_place(net)
    with pytest.raises(RuntimeError, match="expected input") as raised:
        net(torch.rand(2, 5, 16, 16))  # 5 channels for a network of 3
    assert raised.value.__context__ is None

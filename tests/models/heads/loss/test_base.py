"""The loss-head contract (sesemi/models/heads/loss/base.py)."""

from __future__ import annotations

import dataclasses
import inspect
import math
import textwrap

import pytest
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, TensorDataset

from sesemi.learners.classifier import Classifier
from sesemi.models.heads.loss import (
    FeatureRequest,
    LossHead,
    LossOutputs,
    StepContext,
    base,
    feature_key,
)


def _documented_head() -> type[LossHead]:
    """The example head of the contract's docstring, run as written."""
    example = inspect.getdoc(base).split("A minimal head", 1)[1].split("::\n\n", 1)[1]
    code = textwrap.dedent(example.split("\n\nTrain with it", 1)[0])
    namespace = {cls.__name__: cls for cls in (LossHead, FeatureRequest, LossOutputs)}
    exec(code, {**namespace, "feature_key": feature_key}, namespace)
    return namespace["EntropyLossHead"]


class RecordingHead(LossHead):
    """Remembers the context of every step it is called in, and returns a zero loss."""

    def __init__(self, input_data: str, input_backbone: str = "backbone"):
        super().__init__(input_data, input_backbone)
        self.contexts: list[StepContext] = []

    def build(self, backbones, heads):
        self.scale = torch.nn.Parameter(torch.zeros(()))

    def feature_requests(self, batch):
        return [FeatureRequest(feature_key(self.input_data, self.input_backbone), batch[self.input_data][0])]

    def forward(self, context: StepContext) -> LossOutputs:
        self.contexts.append(context)
        features = context.features[feature_key(self.input_data, self.input_backbone)]
        return LossOutputs(self.scale * features.sum(dim=1))


def test_step_context_is_frozen():
    """A head cannot change what the next head sees."""
    context = StepContext({}, {}, {}, {}, step=3)
    with pytest.raises(dataclasses.FrozenInstanceError):
        context.step = 4


def test_the_documented_minimal_head_computes_the_entropy():
    """The docstring's example is a working head: with a zeroed classifier, H = log C."""
    head_class = _documented_head()
    loss_head = head_class("unlabeled")
    backbones = {"backbone": torch.nn.Flatten()}
    classifier = torch.nn.Linear(12, 3)
    with torch.no_grad():
        classifier.weight.zero_()
        classifier.bias.zero_()
    batch = {"unlabeled": (torch.rand(5, 3, 2, 2), torch.full((5,), -1))}
    (request,) = loss_head.feature_requests(batch)
    features = {request.key: backbones["backbone"](request.inputs)}
    outputs = loss_head(StepContext(batch, features, backbones, {"head": classifier}, step=0))
    torch.testing.assert_close(outputs.losses, torch.full((5,), math.log(3)))
    assert outputs.weights is None


def test_the_classifier_hands_each_step_one_context(make_hparams, tmp_path):
    """In a real Trainer: the head sees the whole batch, the features it requested, the model's
    backbone and head, and the number of optimizer steps so far."""
    hparams = make_hparams(rotation=False)
    hparams["model"]["regularization_loss_heads"] = {
        "recording": {"head": {"_target_": f"{__name__}.RecordingHead", "input_data": "unlabeled"}}
    }
    torch.manual_seed(0)
    data = TensorDataset(torch.rand(8, 3, 8, 8), torch.arange(8) % 3)
    loaders = {"supervised": DataLoader(data, batch_size=4), "unlabeled": DataLoader(data, batch_size=2)}
    model = Classifier(hparams)
    trainer = pl.Trainer(
        max_steps=3,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
    )
    trainer.fit(model, train_dataloaders=loaders)
    contexts = model.loss_heads["recording"].contexts
    assert [context.step for context in contexts] == [0, 1, 2]
    context = contexts[-1]
    assert set(context.batch) == {"supervised", "unlabeled"}
    assert context.features["unlabeled@backbone"].shape == (2, 8)
    assert context.backbones["backbone"] is model.backbone and context.heads["head"] is model.head
    assert "train/recording_loss" in trainer.callback_metrics

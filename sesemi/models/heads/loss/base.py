"""The loss-head contract: how a new training method adds its loss term.

A loss head is an `nn.Module` that adds one regularization term to training. Its life:

1. `__init__(input_data, input_backbone="backbone", ...options)`: built from its config entry
   (`learner.hparams.model.regularization_loss_heads.<name>.head`). `input_data` names the
   training loader it reads, `input_backbone` the backbone that encodes it. Check options here
   and raise `sesemi.errors.SesemiError` (one line: what is wrong and what to change).
2. `build(backbones, heads)`: called once the model exists, to create the head's own layers
   (`backbones[name].out_features` is a backbone's feature size) or state that depends on the
   classification head (e.g. its number of classes). Buffers and parameters made here are saved
   in checkpoints; parameters are trained with the model.
3. `feature_requests(batch) -> list[FeatureRequest]`, every training step: the inputs the head
   wants encoded. The Classifier encodes the requests of all heads (and the labeled batch) with
   as few backbone passes as possible; by convention a request's key is
   `feature_key(input_data, backbone[, view])`. A head that requests nothing may run
   `context.backbones[...]` itself in `forward`.
4. `forward(context: StepContext) -> LossOutputs`, every training step: per-sample losses `[N]`
   and optional per-sample weights `[N]` (e.g. a confidence mask), **not** reduced. The
   Classifier multiplies losses by weights, reduces them (`reduction`: mean or sum), scales
   them by `scale_factor` and the term's `scheduler(step)`, adds them to the total loss and logs
   `train/<name>_loss` (and `train/<name>_weight`, the mean weight). A term that is not one
   loss per sample (e.g. a loss on the labeled batch, `context.features[LABELED]` and
   `context.batch[LABELED]`) goes in `LossOutputs.extra`, already reduced.
5. `statistics()`, once at the end of training (optional): what the head did with its
   unlabeled pool, e.g. `PoolStatistics.summary()` of `pseudo_labels.py`, which the run writes to
   results.json (`unlabeled`). Heads that have nothing to say return None.

A minimal head, the entropy of the predictions on the images of its loader::

    class EntropyLossHead(LossHead):
        def _key(self):
            return feature_key(self.input_data, self.input_backbone)

        def feature_requests(self, batch):
            images = batch[self.input_data][0]  # the loader yields (images, labels)
            return [FeatureRequest(self._key(), images, self.input_backbone)]

        def forward(self, context):
            logits = context.heads["head"](context.features[self._key()])  # [N, C]
            log_probs = logits.log_softmax(dim=1)
            return LossOutputs(-(log_probs.exp() * log_probs).sum(dim=1))  # [N]

Train with it by naming it in the config, with a loader `unlabeled` in `data.train`::

    regularization_loss_heads:
      entropy:
        head: {_target_: my_project.heads.EntropyLossHead, input_data: unlabeled}

Targets (a teacher's predictions, pseudo-labels) must carry no gradient: compute them under
`torch.no_grad()`, and request the features that only make targets with `target=True`: the
Classifier then encodes them forward-only (`model.forward_only_targets`), which saves about
half the work of a FixMatch step. A teacher that averages the
student names `backbone_ema` and `head_ema`, which exist with the `sesemi.callbacks.EMA` callback.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from torch import Tensor, nn

Batch = Mapping[str, Any]
# The labeled loader's name, and the key of its features in `StepContext.features`.
LABELED = "supervised"


@dataclass
class LossOutputs:
    """Per-sample losses `[N]`, optional per-sample weights `[N]` (e.g. a confidence mask), and an
    optional term `extra` already reduced to one number, added to the reduced losses (before the
    term's scale factor and schedule)."""

    losses: Tensor
    weights: Tensor | None = None
    extra: Tensor | None = None


@dataclass
class FeatureRequest:
    """An input a head wants encoded by a backbone.

    Attributes:
        key: The name under which the features are returned; equal keys are encoded once.
        inputs: The batch of inputs `[N, ...]`.
        backbone: The name of the backbone that encodes them.
        target: Whether the features only make targets (a weak view's pseudo-labels, a
            teacher's predictions): no gradient flows through them, so the Classifier may
            encode them without autograd.
        group: Requests are fused into one forward pass only within a group (batch norm then
            normalizes them together).
    """

    key: str
    inputs: Tensor
    backbone: str = "backbone"
    target: bool = False
    group: str = ""


@dataclass(frozen=True)
class StepContext:
    """What a loss head sees of one training step.

    Attributes:
        batch: The whole training batch, by loader name; `batch[head.input_data]` is what the
            head's loader yields (e.g. `(images, labels)`).
        features: The encoded feature requests of every head, by request key (`[N, D]` each).
        backbones: The backbones by name: `backbone`, and `backbone_ema` while fitting with the
            `sesemi.callbacks.EMA` callback.
        heads: The classification heads (features -> logits) by name: `head`, and `head_ema`
            with the EMA callback.
        step: The number of optimizer steps so far (the step weight schedules see).
    """

    batch: Batch
    features: Mapping[str, Tensor]
    backbones: Mapping[str, nn.Module]
    heads: Mapping[str, nn.Module]
    step: int


def projection_mlp(width: int, out_features: int, hidden: int | None = None) -> nn.Sequential:
    """The two-layer projection of the backbone's features `[N, width]` that contrastive and
    open-set terms compare (SimCLR, SimMatch, IOMatch): Linear, ReLU, Linear; `hidden` defaults
    to `width`."""
    hidden = hidden or width
    return nn.Sequential(nn.Linear(width, hidden), nn.ReLU(), nn.Linear(hidden, out_features))


def feature_key(input_data: str, backbone: str, view: str = "") -> str:
    """The conventional key of a loader's (view's) features under a backbone."""
    return f"{input_data}{'/' + view if view else ''}@{backbone}"


class LossHead(nn.Module):
    """Base class of regularization loss heads (see the module docstring for the contract).

    Args:
        input_data: The training loader this head reads.
        input_backbone: The backbone that encodes it.
    """

    def __init__(self, input_data: str, input_backbone: str = "backbone"):
        super().__init__()
        self.input_data = input_data
        self.input_backbone = input_backbone

    def build(self, backbones: Mapping[str, nn.Module], heads: Mapping[str, nn.Module]) -> None:
        """Creates the head's own layers once the backbones and heads exist."""

    def feature_requests(self, batch: Batch) -> list[FeatureRequest]:
        """The inputs to encode for this head in the shared forward pass."""
        return []

    def forward(self, context: StepContext) -> LossOutputs:
        """The head's unreduced per-sample losses (and weights) for one training step."""
        raise NotImplementedError

    def statistics(self) -> dict[str, Any] | None:
        """What the head did with its unlabeled pool, for results.json (None: nothing to report).

        A pseudo-labeling head returns `seen`, `pseudo_labeled_per_class` (by class index) and
        `out_of_class`, as `PoolStatistics.summary()` does.
        """
        return None

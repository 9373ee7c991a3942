"""The Classifier: a backbone, a classification head, a supervised loss and loss heads."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from torch import Tensor, nn
from torchmetrics.classification import MulticlassAccuracy

from sesemi.callbacks.ema import EMA
from sesemi.checkpoints import RNG_STATES, random_states, set_random_states
from sesemi.config.structs import ClassifierHParams
from sesemi.errors import SesemiError, first_line, one_of
from sesemi.learners.encoding import encode
from sesemi.models.compiled import compile_in_place
from sesemi.models.heads.linear import LinearHead
from sesemi.models.heads.loss.base import LABELED as SUPERVISED
from sesemi.models.heads.loss.base import FeatureRequest, LossHead, StepContext


class Reduction(str, Enum):
    """How a term's per-sample losses become one number (`reduction: mean` in a config)."""

    MEAN = "mean"
    SUM = "sum"


@dataclass
class LossWeighting:
    """How a term's per-sample losses become its share of the total loss."""

    reduction: Reduction = Reduction.MEAN
    scale_factor: float = 1.0
    scheduler: Callable[[int], float] | None = None

    def factor(self, step: int) -> float:
        """The term's weight at `step`: `scale_factor` times the schedule."""
        return self.scale_factor * (self.scheduler(step) if self.scheduler else 1.0)

    def __call__(
        self, losses: Tensor, weights: Tensor | None, step: int, extra: Tensor | None = None
    ) -> Tensor:
        if weights is not None:
            losses = losses * weights
        loss = losses.mean() if self.reduction == Reduction.MEAN else losses.sum()
        if extra is not None:
            loss = loss + extra
        return self.factor(step) * loss


def _weighting(config: DictConfig, what: str) -> LossWeighting:
    reduction = one_of(Reduction, config.reduction, f"{what}.reduction")
    scheduler = instantiate(config.scheduler) if config.get("scheduler") else None
    return LossWeighting(reduction, config.scale_factor, scheduler)


def _loss_head(config: DictConfig, what: str) -> LossHead:
    """Instantiates a loss head; a mistake in its options is a SesemiError naming the entry."""
    try:
        head = instantiate(config)
    except InstantiationException as error:
        if isinstance(error.__cause__, SesemiError):
            raise SesemiError(f"{what}: {error.__cause__}") from None
        raise
    if not isinstance(head, LossHead):
        raise SesemiError(f"{what} is not a LossHead")
    return head


def _zero_use(modules: Sequence[nn.Module]) -> Tensor | int:
    """0 x the sum of every trainable parameter of `modules`: in a multi-process run the terms
    skipped at a step (weighted 0) still hand each of their parameters a gradient (of 0), which
    DDP needs from every parameter at every step. Near free, unlike computing those terms."""
    return sum(parameter.sum() * 0 for module in modules for parameter in module.parameters() if parameter.requires_grad)


class Classifier(pl.LightningModule):
    """Trains a classifier on a dict of training loaders (see `ClassifierHParams`).

    The `supervised` loader's `(images, labels)` feed the supervised loss; every regularization
    loss head reads its own loader. The inputs of the loss heads for the same backbone are
    encoded in one forward pass, which the labeled batch joins when `model.fuse_labeled`.
    Validation and test report top-1 (and top-5 with more than 5 classes) accuracy and
    the cross-entropy loss.

    Args:
        hparams: The `learner.hparams` config (a mapping or DictConfig).

    Attributes:
        fuse_labeled: `model.fuse_labeled`, read when the Classifier is made.
        forward_only_targets: `model.forward_only_targets`, read when the Classifier is made.
    """

    def __init__(self, hparams: Mapping[str, Any]):
        super().__init__()
        # Fill what the mapping leaves out from the schema's defaults.
        config = OmegaConf.merge(OmegaConf.structured(ClassifierHParams), hparams)
        self.save_hyperparameters({"hparams": OmegaConf.to_container(config, resolve=True)})
        self.config = config
        self.num_classes = int(config.num_classes)
        model = config.model

        # read once: attribute access on a DictConfig costs tens of microseconds at every step
        self.fuse_labeled = bool(model.fuse_labeled)
        self.forward_only_targets = bool(model.forward_only_targets)

        self.backbone = instantiate(model.backbone)
        if model.compile:
            compile_in_place(self.backbone)
        head_kwargs = {"in_features": self.backbone.out_features, "out_features": self.num_classes}
        self.head = instantiate(model.head, **head_kwargs) if model.get("head") else LinearHead(**head_kwargs)

        self.supervised_loss: nn.Module | None = None
        if model.get("supervised_loss"):
            self.supervised_loss = instantiate(model.supervised_loss.callable, reduction="none")
            self.supervised_weighting = _weighting(model.supervised_loss, "supervised_loss")

        loss_head_configs = model.get("regularization_loss_heads") or {}
        self.loss_heads = nn.ModuleDict()
        self.loss_weightings: dict[str, LossWeighting] = {}
        for name, head_config in loss_head_configs.items():
            head = _loss_head(head_config.head, f"regularization_loss_heads.{name}.head")
            head.build(self.backbones, self.heads)
            self.loss_heads[name] = head
            self.loss_weightings[name] = _weighting(head_config, f"regularization_loss_heads.{name}")
        if self.supervised_loss is None and not self.loss_heads:
            raise SesemiError("nothing to train: set model.supervised_loss or add regularization_loss_heads")

        self.metrics = nn.ModuleDict({stage: self._make_metrics() for stage in ("val", "test")})

    def _make_metrics(self) -> nn.ModuleDict:
        metrics = {
            "top1": MulticlassAccuracy(self.num_classes, top_k=1, average="micro"),
            "per_class": MulticlassAccuracy(self.num_classes, top_k=1, average="none"),
        }
        if self.num_classes > 5:
            metrics["top5"] = MulticlassAccuracy(self.num_classes, top_k=5, average="micro")
        return nn.ModuleDict(metrics)

    def _average_model(self) -> pl.LightningModule | None:
        """The EMA copy of this module, when an EMA callback is training one."""
        trainer = self._trainer
        for callback in trainer.callbacks if trainer is not None else []:
            if isinstance(callback, EMA) and callback.average_model is not None:
                return callback.average_model
        return None

    @property
    def backbones(self) -> dict[str, nn.Module]:
        """The backbones loss heads can name: `backbone`, and `backbone_ema` with an EMA callback."""
        found = {"backbone": self.backbone}
        average = self._average_model()
        if average is not None:
            found["backbone_ema"] = average.backbone
        return found

    @property
    def heads(self) -> dict[str, nn.Module]:
        """The classification heads loss heads can use: `head`, and `head_ema` with an EMA callback."""
        found = {"head": self.head}
        average = self._average_model()
        if average is not None:
            found["head_ema"] = average.head
        return found

    def check_features(self, example: Tensor | None) -> None:
        """Refuses, before training starts, a backbone whose features of `example` (a batch of
        one input) are not `[1, out_features]`: the head would fail on them with a page of
        traceback about matrix shapes. A compiled backbone is not run here (it would compile
        for this one shape)."""
        if example is None or self.config.model.compile:
            return
        name, size, mode = type(self.backbone).__name__, self.backbone.out_features, self.backbone.training
        try:
            with torch.no_grad():
                features = self.backbone.eval()(example)
        except Exception as error:
            raise SesemiError(f"the backbone {name} fails on an input of shape {list(example.shape)}: {first_line(error)}") from error
        finally:
            self.backbone.train(mode)
        if not isinstance(features, Tensor) or tuple(features.shape) != (len(example), size):
            shape = list(features.shape) if isinstance(features, Tensor) else type(features).__name__
            raise SesemiError(
                f"the backbone {name} returns {shape} for an input of shape {list(example.shape)}, where the head "
                f"takes [{len(example)}, {size}] (its out_features); flatten its output, or set out_features to its size"
            )

    def forward(self, x: Tensor) -> Tensor:
        """Images `[B, C, H, W]` -> logits `[B, num_classes]`."""
        return self.head(self.backbone(x))

    def _active_terms(self, step: int) -> tuple[bool, dict[str, LossHead]]:
        """Whether the supervised loss, and which loss heads, have a weight at `step`.

        A term weighted 0 by its schedule (a ramp-up's first step, a pretext task after its
        phase, a loss that starts later) is neither encoded nor computed, unless every term is.
        """
        supervised = self.supervised_loss is not None and self.supervised_weighting.factor(step) != 0
        heads = {name: head for name, head in self.loss_heads.items() if self.loss_weightings[name].factor(step) != 0}
        if not supervised and not heads:
            return self.supervised_loss is not None, dict(self.loss_heads)
        return supervised, heads

    def training_step(self, batch: Mapping[str, Any], batch_idx: int) -> Tensor:
        step = self.global_step
        supervised, loss_heads = self._active_terms(step)
        requests: list[FeatureRequest] = []
        if supervised:
            group = "" if self.fuse_labeled else SUPERVISED
            requests.append(FeatureRequest(SUPERVISED, batch[SUPERVISED][0], group=group))
        for head in loss_heads.values():
            requests += head.feature_requests(batch)
        backbones = self.backbones
        features = encode(requests, backbones, stats_group=SUPERVISED, forward_only_targets=self.forward_only_targets)

        logs: dict[str, Tensor] = {}
        total = torch.zeros((), device=self.device)
        if supervised:
            logits = self.head(features[SUPERVISED])
            losses = self.supervised_loss(logits, batch[SUPERVISED][1])
            logs["train/supervised_loss"] = self.supervised_weighting(losses, None, step)
            total = total + logs["train/supervised_loss"]
        context = StepContext(batch, features, backbones, self.heads, step)
        for name, head in loss_heads.items():
            outputs = head(context)
            logs[f"train/{name}_loss"] = self.loss_weightings[name](outputs.losses, outputs.weights, step, outputs.extra)
            total = total + logs[f"train/{name}_loss"]
            if outputs.weights is not None:
                logs[f"train/{name}_weight"] = outputs.weights.float().mean()
        if self._trainer is not None and self.trainer.world_size > 1:
            skipped = [head for name, head in self.loss_heads.items() if name not in loss_heads]
            total = total + _zero_use([*skipped, self.head])  # the head's detectors may serve a skipped term
        logs["train/loss"] = total
        self.log_dict(logs, prog_bar=False)
        self.log("loss", total, prog_bar=True, logger=False)
        return total

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint[RNG_STATES] = random_states()  # so that a resumed run draws what this one would

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        if self._trainer is not None and RNG_STATES in checkpoint:  # resuming a fit (not evaluating)
            set_random_states(checkpoint[RNG_STATES])

    def on_train_epoch_end(self) -> None:
        """Collects what the loss heads did with their unlabeled pools (`unlabeled_statistics`:
        the first head's report, by class index; None when no head reports). At each epoch's
        end, the last one's included: at the end of training an EMA callback has already put
        its averages in place of the live statistics."""
        reports = (head.statistics() for head in self.loss_heads.values())
        self.unlabeled_statistics = next((report for report in reports if report is not None), None)

    def _evaluation_step(self, batch: Any, stage: str) -> None:
        if batch is None:  # none of its files could be read (each named in a warning)
            return
        images, labels = batch[0], batch[1]
        logits = self(images)
        self.log(f"{stage}/loss", F.cross_entropy(logits, labels), sync_dist=True)
        for name, metric in self.metrics[stage].items():
            metric.update(logits, labels)
            if name != "per_class":
                self.log(f"{stage}/{name}", metric, prog_bar=name == "top1")

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        self._evaluation_step(batch, "val")

    def test_step(self, batch: Any, batch_idx: int) -> None:
        self._evaluation_step(batch, "test")

    def _per_class_accuracy(self, stage: str) -> None:
        """Each class's accuracy, None for a class with no examples (not measured, not 0)."""
        metric = self.metrics[stage]["per_class"]
        accuracy = metric.compute().tolist()
        with metric.sync_context():  # the examples of every process
            examples = (metric.tp + metric.fn).tolist()
        self.per_class_accuracy = [value if count else None for value, count in zip(accuracy, examples, strict=True)]
        metric.reset()

    def on_validation_epoch_end(self) -> None:
        self._per_class_accuracy("val")
        if not self.trainer.sanity_checking:
            self.validated_at_step = self.global_step

    def on_test_epoch_end(self) -> None:
        self._per_class_accuracy("test")

    def configure_callbacks(self) -> list[pl.Callback]:
        """An EMA callback when a loss head's teacher is the average (the mean teacher) and the
        trainer has none, so that the method trains with any data config (`base` has none)."""
        wanted = any(str(getattr(head, "teacher_backbone", "")).endswith("_ema") for head in self.loss_heads.values())
        present = any(isinstance(callback, EMA) for callback in self.trainer.callbacks)
        return [EMA()] if wanted and not present else []

    def configure_optimizers(self) -> Any:
        parameters = [p for p in self.parameters() if p.requires_grad]
        optimizer = instantiate(self.config.optimizer, params=parameters)
        lr_config = self.config.get("lr_scheduler")
        if not lr_config:
            return optimizer
        scheduler = instantiate(lr_config.scheduler, optimizer=optimizer)
        settings = {k: lr_config[k] for k in ("interval", "frequency", "monitor", "strict", "name") if k in lr_config}
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, **settings}}

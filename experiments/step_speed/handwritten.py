"""Every method's training step written out in plain PyTorch, as the reference sesemi's step is
measured against.

Each step computes what the method's config computes (the same passes, losses, thresholds,
distribution alignment and ramp-ups), on a copy of the same network with the same weights: the
labeled batch in a pass of its own, which alone moves batch norm's running statistics (the other
passes keep them, as USB's `bn_controller` does, here at the cost of a flag per layer), the inputs that only make targets under
`torch.no_grad()`, SGD with the config's settings and a linear learning-rate decay, and an EMA of
the weights with foreach kernels.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Iterator
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import Tensor, nn

# What each method's config sets (configs/method/*.yaml); the step index is that of the run.
THRESHOLD, FLOOR = 0.95, 0.8  # the FixMatch family's threshold and its adaptive thresholds' floor
SIMCLR_TEMPERATURE = 0.5  # method=simclr's
CONFIDENT = 0.8  # entropy minimization's and the consistency heads' confidence threshold
ENTROPY_WEIGHT, CONSISTENCY_WEIGHT = 0.3, 3.0


@contextmanager
def running_stats_kept(module: nn.Module) -> Iterator[None]:
    """Batch norm normalizes with batch statistics but leaves its running statistics as they
    were: in training mode, a layer that does not track them neither reads nor updates them."""
    layers = [m for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    for layer in layers:
        layer.track_running_stats = False
    yield
    for layer in layers:
        layer.track_running_stats = True


def sigmoid_rampup(step: int, pivot: int) -> float:
    """exp(-5 (1 - t)^2), t = step / pivot clipped to 1 (Laine & Aila)."""
    t = min(step / pivot, 1.0) if pivot > 0 else 1.0
    return math.exp(-5.0 * (1.0 - t) ** 2)


def linear_rampup(step: int, stop: int) -> float:
    return min(step / stop, 1.0) if stop > 0 else 1.0


class HandwrittenStep:
    """One method's step: supervised cross-entropy on the labeled pass plus the method's term.

    Args:
        method: A built-in method's name.
        backbone: A copy of the network's backbone (the weights sesemi's learner starts from).
        head: The classification head (a linear layer).
        extra: The loss heads' own layers: `pretext` (rotation's or jigsaw's linear layer),
            `projection` (SimCLR's projection head).
        optimizer: The config's SGD settings.
        decay: The EMA's decay.
        max_iterations: The run's budget (learning-rate decay and ramp-ups).
        rampup: The share of the budget the unlabeled losses ramp up over.
    """

    def __init__(
        self,
        method: str,
        backbone: nn.Module,
        head: nn.Linear,
        extra: dict[str, nn.Module],
        optimizer: dict,
        decay: float,
        max_iterations: int,
        rampup: float,
        num_classes: int,
    ):
        self.method = method
        self.model = nn.ModuleDict({"backbone": backbone, "head": head, **extra}).train()
        self.average = copy.deepcopy(self.model)
        self.optimizer = torch.optim.SGD(self.model.parameters(), **optimizer)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lambda step: max(0.0, 1 - step / max_iterations)
        )
        self.decay = decay
        self.rampup = round(rampup * max_iterations)
        self.updates = 0
        # distribution alignment's running mean of the predictions, FlexMatch's window of recent
        # confident pseudo-labels, FreeMatch's global threshold and class-wise mean predictions
        self.model_probs = torch.full((num_classes,), 1.0 / num_classes)
        self.recent = torch.full((4096,), -1, dtype=torch.long)
        self.position = 0
        self.global_threshold = torch.tensor(1.0 / num_classes)
        self.class_probs = torch.full((num_classes,), 1.0 / num_classes)
        self.num_classes = num_classes
        float_pairs, integer_pairs = [], []
        for average, current in zip(
            self._tensors(self.average), self._tensors(self.model), strict=True
        ):
            (float_pairs if average.is_floating_point() else integer_pairs).append(
                (average, current)
            )
        self.ema_floats = [list(t) for t in zip(*float_pairs, strict=True)]
        self.ema_integers = [list(t) for t in zip(*integer_pairs, strict=True)]

    @staticmethod
    def _tensors(model: nn.Module) -> list[Tensor]:
        return [*model.parameters(), *model.buffers()]

    def __call__(self, batch: dict, step: int) -> Tensor:
        backbone, head = self.model["backbone"], self.model["head"]
        loss = torch.zeros(())
        if self.method != "simclr":  # SimCLR pre-trains without the labels
            images, labels = batch["supervised"][0], batch["supervised"][1]
            loss = F.cross_entropy(head(backbone(images)), labels)
        if self.method != "supervised":
            loss = loss + getattr(self, self.method)(batch, step)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        self.scheduler.step()
        with torch.no_grad():
            decay = (
                min(self.decay, (1 + self.updates) / (10 + self.updates)) if self.updates else 0.0
            )
            torch._foreach_lerp_(self.ema_floats[0], self.ema_floats[1], 1.0 - decay)
            torch._foreach_copy_(self.ema_integers[0], self.ema_integers[1])
        self.updates += 1
        return loss.detach()

    def _pretext(self, images: Tensor, labels: Tensor) -> Tensor:
        with running_stats_kept(self.model["backbone"]):
            features = self.model["backbone"](images)
        return F.cross_entropy(self.model["pretext"](features), labels)

    def rotation(self, batch: dict, step: int) -> Tensor:
        return self._pretext(*batch["rotation_prediction"][:2])

    def jigsaw(self, batch: dict, step: int) -> Tensor:
        return self._pretext(*batch["jigsaw_prediction"][:2])

    def entropy_minimization(self, batch: dict, step: int) -> Tensor:
        backbone, head = self.model["backbone"], self.model["head"]
        with running_stats_kept(backbone):
            log_probs = head(backbone(batch["entropy_minimization"][0])).log_softmax(dim=1)
        probs = log_probs.exp()
        mask = (probs.detach().max(dim=1).values >= CONFIDENT).float()
        entropy = -(probs * log_probs).sum(dim=1)
        return ENTROPY_WEIGHT * sigmoid_rampup(step, self.rampup) * (entropy * mask).mean()

    def simclr(self, batch: dict, step: int) -> Tensor:
        """NT-Xent: each view's positive is the other view of its item, the rest are negatives."""
        backbone, projection = self.model["backbone"], self.model["projection"]
        with running_stats_kept(backbone):
            z = projection(backbone(torch.cat(batch["simclr"][0])))  # both views in one pass
        z = F.normalize(z, dim=1)
        n = len(z) // 2
        similarity = (z @ z.T / SIMCLR_TEMPERATURE).fill_diagonal_(float("-inf"))
        positives = torch.arange(2 * n).roll(n)
        return F.cross_entropy(similarity, positives)

    def _consistency(self, batch: dict, step: int, teacher: nn.ModuleDict) -> Tensor:
        backbone, head = self.model["backbone"], self.model["head"]
        student_view, teacher_view = batch["consistency"][0]
        with running_stats_kept(backbone):
            student = head(backbone(student_view)).softmax(dim=1)
        with torch.no_grad(), running_stats_kept(teacher["backbone"]):
            targets = teacher["head"](teacher["backbone"](teacher_view)).softmax(dim=1)
        mask = (targets.max(dim=1).values >= CONFIDENT).float()
        distance = (student - targets).pow(2).sum(dim=1)
        return CONSISTENCY_WEIGHT * sigmoid_rampup(step, self.rampup) * (distance * mask).mean()

    def pi_model(self, batch: dict, step: int) -> Tensor:
        return self._consistency(batch, step, self.model)

    def mean_teacher(self, batch: dict, step: int) -> Tensor:
        return self._consistency(batch, step, self.average)

    def _pseudo_labeling(self, batch: dict, step: int, thresholds) -> Tensor:
        backbone, head = self.model["backbone"], self.model["head"]
        weak, strong = batch["fixmatch"][0]
        with torch.no_grad(), running_stats_kept(backbone):
            probs = head(backbone(weak)).softmax(dim=1)
        with running_stats_kept(backbone):
            logits_strong = head(backbone(strong))
        with torch.no_grad():
            self.model_probs.lerp_(probs.mean(dim=0), 0.01)  # distribution alignment
            probs = probs / self.model_probs
            probs = probs / probs.sum(dim=1, keepdim=True)
            confidence, pseudo_labels = probs.max(dim=1)
            mask = (confidence >= thresholds(probs, confidence, pseudo_labels)).float()
        losses = F.cross_entropy(logits_strong, pseudo_labels, reduction="none")
        return linear_rampup(step, self.rampup) * (losses * mask).mean()

    def fixmatch(self, batch: dict, step: int) -> Tensor:
        return self._pseudo_labeling(batch, step, lambda probs, confidence, labels: THRESHOLD)

    def flexmatch(self, batch: dict, step: int) -> Tensor:
        def thresholds(probs: Tensor, confidence: Tensor, labels: Tensor) -> Tensor:
            used = (self.recent >= 0).float()
            sigma = torch.bincount(
                self.recent.clamp(min=0), weights=used, minlength=self.num_classes
            )
            beta = sigma / torch.maximum(sigma.max(), len(self.recent) - used.sum()).clamp(min=1.0)
            per_class = (THRESHOLD * beta / (2.0 - beta)).clamp(min=FLOOR)
            confident = labels[confidence >= THRESHOLD]
            self.recent[(self.position + torch.arange(len(confident))) % len(self.recent)] = (
                confident
            )
            self.position = (self.position + len(confident)) % len(self.recent)
            return per_class[labels]

        return self._pseudo_labeling(batch, step, thresholds)

    def freematch(self, batch: dict, step: int) -> Tensor:
        def thresholds(probs: Tensor, confidence: Tensor, labels: Tensor) -> Tensor:
            self.global_threshold.lerp_(confidence.mean(), 0.001)
            self.class_probs.lerp_(probs.mean(dim=0), 0.001)
            per_class = (
                self.global_threshold.clamp(max=THRESHOLD)
                * self.class_probs
                / self.class_probs.max()
            )
            return per_class.clamp(min=FLOOR)[labels]

        return self._pseudo_labeling(batch, step, thresholds)

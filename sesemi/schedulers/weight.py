"""Loss-weight schedules `step -> weight`, e.g. to ramp an unlabeled loss up from zero.

Sigmoid ramp-up: Laine & Aila, "Temporal Ensembling for Semi-Supervised Learning", ICLR 2017,
https://arxiv.org/abs/1610.02242 (weight = exp(-5 (1 - t)^2)).
"""

from __future__ import annotations

import math

from sesemi.errors import SesemiError


class WeightScheduler:
    """A loss-weight schedule; call it with the global step."""

    def __call__(self, step: int) -> float:
        raise NotImplementedError


class SigmoidRampupScheduler(WeightScheduler):
    """exp(-5 (1 - t)^2) with t = step / pivot, then `weight` from `pivot` on.

    Keywords are today's names, `pivot` only by keyword: `SigmoidRampupScheduler(pivot=100,
    weight=2.0)`. Positional arguments are sesemi 0.3's, in its order:
    `SigmoidRampupScheduler(2.0, 100)` is weight 2 reached at step 100, as in 0.3, and
    `stop_rampup` is 0.3's name for `pivot`. A 0.3 call means what it meant, and a call by
    today's names never depends on the order.

    Args:
        weight: The final weight.
        stop_rampup: sesemi 0.3's name for `pivot`.
        pivot: The step at which the full weight is reached.

    Raises:
        SesemiError: Neither or both of `pivot` and `stop_rampup` are given.
    """

    def __init__(self, weight: float = 1.0, stop_rampup: int | None = None, *, pivot: int | None = None):
        if pivot is not None and stop_rampup is not None:
            raise SesemiError(
                f"SigmoidRampupScheduler takes pivot ({pivot}) or stop_rampup ({stop_rampup}, its sesemi 0.3 name), not both"
            )
        if pivot is None and stop_rampup is None:
            raise SesemiError(
                "SigmoidRampupScheduler needs pivot=, the step at which the full weight is reached "
                f"(a single positional argument is the weight, {weight}, as in sesemi 0.3)"
            )
        self.pivot = pivot if pivot is not None else stop_rampup
        self.weight = weight

    def __call__(self, step: int) -> float:
        if self.pivot <= 0 or step >= self.pivot:
            return self.weight
        t = max(step, 0) / self.pivot
        return self.weight * math.exp(-5.0 * (1.0 - t) ** 2)


class LinearRampupScheduler(WeightScheduler):
    """A straight line from 0 at `start` to `weight` at `stop`.

    Args:
        stop: The step at which the full weight is reached.
        start: The step before which the weight is 0.
        weight: The final weight.
    """

    def __init__(self, stop: int, start: int = 0, weight: float = 1.0):
        self.start = start
        self.stop = stop
        self.weight = weight

    def __call__(self, step: int) -> float:
        if step >= self.stop:
            return self.weight
        if step <= self.start:
            return 0.0
        return self.weight * (step - self.start) / (self.stop - self.start)

"""Learning-rate and loss-weight schedules."""

from sesemi.schedulers.lr import PolynomialLR
from sesemi.schedulers.weight import (
    LinearRampupScheduler,
    SigmoidRampupScheduler,
    UntilScheduler,
    WeightScheduler,
)

__all__ = [
    "LinearRampupScheduler",
    "PolynomialLR",
    "SigmoidRampupScheduler",
    "UntilScheduler",
    "WeightScheduler",
]

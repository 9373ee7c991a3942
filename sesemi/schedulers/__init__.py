"""Learning-rate and loss-weight schedules."""

from sesemi.schedulers.lr import PolynomialLR
from sesemi.schedulers.weight import LinearRampupScheduler, SigmoidRampupScheduler, WeightScheduler

__all__ = ["LinearRampupScheduler", "PolynomialLR", "SigmoidRampupScheduler", "WeightScheduler"]

"""Loss heads, one file per method (see `base.py` for the contract)."""

from sesemi.models.heads.loss.base import FeatureRequest, LossHead, LossOutputs, feature_key
from sesemi.models.heads.loss.rotation import RotationPredictionLossHead

__all__ = [
    "FeatureRequest",
    "LossHead",
    "LossOutputs",
    "RotationPredictionLossHead",
    "feature_key",
]

"""Loss heads, one file per method (see `base.py` for the contract)."""

from sesemi.models.heads.loss.base import (
    FeatureRequest,
    LossHead,
    LossOutputs,
    StepContext,
    feature_key,
)
from sesemi.models.heads.loss.consistency import (
    ConsistencyLossHead,
    MeanTeacherLossHead,
    PiModelLossHead,
)
from sesemi.models.heads.loss.entropy import EntropyMinimizationLossHead
from sesemi.models.heads.loss.fixmatch import FixMatchLossHead
from sesemi.models.heads.loss.iomatch import IOMatchLossHead
from sesemi.models.heads.loss.jigsaw import JigsawPredictionLossHead
from sesemi.models.heads.loss.rotation import RotationPredictionLossHead
from sesemi.models.heads.loss.simclr import SimCLRLossHead
from sesemi.models.heads.loss.simmatch import SimMatchLossHead

__all__ = [
    "ConsistencyLossHead",
    "EntropyMinimizationLossHead",
    "FeatureRequest",
    "FixMatchLossHead",
    "IOMatchLossHead",
    "JigsawPredictionLossHead",
    "LossHead",
    "LossOutputs",
    "MeanTeacherLossHead",
    "PiModelLossHead",
    "RotationPredictionLossHead",
    "SimCLRLossHead",
    "SimMatchLossHead",
    "StepContext",
    "feature_key",
]

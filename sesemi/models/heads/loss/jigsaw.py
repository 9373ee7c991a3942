"""Jigsaw puzzles: classify which fixed tile order shuffled each unlabeled image.

Noroozi & Favaro, "Unsupervised Learning of Visual Representations by Solving Jigsaw Puzzles",
ECCV 2016, https://arxiv.org/abs/1603.09246. Pair it with `sesemi.collation.JigsawCollator`.
"""

from __future__ import annotations

from collections.abc import Mapping

from torch import nn

from sesemi.collation import JIGSAW_PERMUTATIONS
from sesemi.models.heads.loss.rotation import RotationPredictionLossHead


class JigsawPredictionLossHead(RotationPredictionLossHead):
    """Cross-entropy of a linear tile-order classifier on the backbone's features.

    The pretext task has the same shape as rotation prediction (classify a transform of the
    image), so this head reuses it with `num_permutations` classes. `batch[input_data]` is
    `(puzzles, permutation_labels)` as JigsawCollator makes it.

    Args:
        input_data: The training loader of puzzles.
        input_backbone: The backbone that encodes them.
        num_permutations: The collator's number of tile orders.
    """

    def __init__(
        self,
        input_data: str,
        input_backbone: str = "backbone",
        num_permutations: int = JIGSAW_PERMUTATIONS,
    ):
        super().__init__(input_data, input_backbone)
        self.num_permutations = num_permutations

    def build(self, backbones: Mapping[str, nn.Module], heads: Mapping[str, nn.Module]) -> None:
        self.fc = nn.Linear(backbones[self.input_backbone].out_features, self.num_permutations)

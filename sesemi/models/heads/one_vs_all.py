"""A classification head with one-vs-all outlier detectors, for unlabeled pools with other classes.

OpenMatch (Saito, Kim and Saenko, "OpenMatch: Open-set Consistency Regularization for
Semi-supervised Learning with Outliers", NeurIPS 2021, https://arxiv.org/abs/2105.14148): beside
the C-way classifier, C binary classifiers each tell whether an input belongs to their class
(inlier) or not. An input whose predicted class's detector says "not mine" looks out of class:
FixMatch's head keeps it out of the pseudo-label loss (`outlier_filter`), and the predictor
flags it (`Prediction.out_of_class`). The detectors are trained by the FixMatch head
(`sesemi.models.heads.loss.pseudo_labels.one_vs_all_loss` on the labeled batch); the head is
saved with the model, so a trained model can flag inputs without any training-only class.
"""

from __future__ import annotations

from torch import Tensor, nn

from sesemi.models.heads.linear import LinearHead

# The inlier probability under which an input counts as out of class (OpenMatch's 0.5).
OUT_OF_CLASS_THRESHOLD = 0.5


class OneVsAllHead(LinearHead):
    """A linear classifier (its `forward` gives the class logits) plus one-vs-all detectors.

    Args:
        in_features: The backbone's feature size.
        out_features: The number of classes C.
        drop_rate: Dropout before the classifier (not the detectors).
    """

    def __init__(self, in_features: int, out_features: int, drop_rate: float = 0.0):
        super().__init__(in_features, out_features, drop_rate)
        self.out_features = out_features
        self.one_vs_all = nn.Linear(in_features, 2 * out_features)

    def one_vs_all_logits(self, features: Tensor) -> Tensor:
        """The detectors' logits `[N, 2, C]`: `[:, 1]` says "of class c", `[:, 0]` "not of class c"."""
        return self.one_vs_all(features).view(len(features), 2, -1)

    def inlier_probabilities(self, features: Tensor) -> Tensor:
        """The probability `[N, C]` that each input belongs to each class, by its class's detector."""
        return self.one_vs_all_logits(features).softmax(dim=1)[:, 1]

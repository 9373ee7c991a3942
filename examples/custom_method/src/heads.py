"""A method of this project's own: entropy minimization on the unlabeled images the model is
already confident about (docs/concepts.md, "Adding a method")."""

import torch.nn.functional as F

from sesemi.models.heads.loss import FeatureRequest, LossHead, LossOutputs, feature_key


class ConfidentEntropyLossHead(LossHead):
    """The entropy of each unlabeled image's prediction, counted where the top probability
    reaches `threshold`."""

    def __init__(self, input_data, input_backbone="backbone", threshold=0.5):
        super().__init__(input_data, input_backbone)
        self.threshold = threshold

    def feature_requests(self, batch):
        # Ask for this loader's images to be encoded in the shared forward pass.
        images = batch[self.input_data][0]
        return [
            FeatureRequest(
                feature_key(self.input_data, self.input_backbone), images, self.input_backbone
            )
        ]

    def forward(self, context):
        features = context.features[feature_key(self.input_data, self.input_backbone)]
        log_probs = F.log_softmax(context.heads["head"](features), dim=1)
        probs = log_probs.exp()
        entropy = -(probs * log_probs).sum(dim=1)  # [N], one loss per image
        mask = (probs.max(dim=1).values >= self.threshold).float()  # [N], 0 or 1
        return LossOutputs(losses=entropy, weights=mask.detach())

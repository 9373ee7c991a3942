"""A compact CNN for small images (32-96 px) that trains quickly on a CPU.

The shape follows the "conv-large" networks of the Pi-model and mean-teacher papers (stacks of
3x3 convolutions with batch norm and leaky ReLU, max-pooling between stages), only narrower.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

from sesemi.models.backbones.base import Backbone


def _conv_block(in_chans: int, out_chans: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_chans, out_chans, 3, padding=1, bias=False),
        nn.BatchNorm2d(out_chans),
        nn.LeakyReLU(0.1, inplace=True),
    )


class ConvNet(Backbone):
    """Stages of two 3x3 conv blocks, each stage but the last followed by 2x2 max-pooling.

    Images `(B, in_chans, H, W)` -> features `(B, widths[-1])` after global average pooling.

    Args:
        widths: The channels of each stage.
        in_chans: The number of input channels.
        drop_rate: Dropout after each pooled stage and on the features.
        freeze: Whether to freeze the weights.
    """

    def __init__(
        self,
        widths: Sequence[int] = (32, 64, 128),
        in_chans: int = 3,
        drop_rate: float = 0.0,
        freeze: bool = False,
    ):
        super().__init__()
        layers: list[nn.Module] = []
        for i, width in enumerate(widths):
            layers += [_conv_block(in_chans, width), _conv_block(width, width)]
            if i < len(widths) - 1:
                layers += [nn.MaxPool2d(2), nn.Dropout(drop_rate)]
            in_chans = width
        layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(drop_rate)]
        self.encoder = nn.Sequential(*layers)
        self.out_features: int = widths[-1]
        if freeze:
            self.freeze()

    def forward(self, x: Tensor) -> Tensor:
        return self.encoder(x)

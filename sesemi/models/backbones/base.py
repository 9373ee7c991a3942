"""The backbone contract and shared helpers."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from torch import nn

from sesemi.errors import SesemiError

T = TypeVar("T")


class Backbone(nn.Module):
    """An nn.Module mapping inputs to features `[B, out_features]`."""

    out_features: int

    def freeze(self) -> None:
        """Stops gradients to every parameter and keeps normalization layers in eval mode."""
        for parameter in self.parameters():
            parameter.requires_grad_(False)
        self._frozen = True
        self.eval()

    def train(self, mode: bool = True) -> Backbone:
        return super().train(mode and not getattr(self, "_frozen", False))


def fetch_pretrained(name: str, create: Callable[[], T]) -> T:
    """Runs `create`, turning a failed weight download into one actionable line."""
    try:
        return create()
    except (OSError, RuntimeError, ValueError) as error:
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise SesemiError(
            f"cannot get pretrained weights for {name!r} ({reason[:160]}); this needs network access "
            "or weights already in the local cache (HF_HOME / TORCH_HOME), or set pretrained=false"
        ) from None

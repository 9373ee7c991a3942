"""Heads: classification heads, and loss heads under `loss/`."""

from sesemi.models.heads.linear import LinearHead

__all__ = ["LinearHead"]

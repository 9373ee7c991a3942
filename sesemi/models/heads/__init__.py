"""Heads: classification heads, and loss heads under `loss/`."""

from sesemi.models.heads.linear import LinearHead
from sesemi.models.heads.one_vs_all import OneVsAllHead

__all__ = ["LinearHead", "OneVsAllHead"]

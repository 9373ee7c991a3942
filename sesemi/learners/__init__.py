"""Learners: LightningModules that train models from a config."""

from sesemi.learners.classifier import Classifier

__all__ = ["Classifier"]

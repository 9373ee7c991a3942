"""The config schema, the `${sesemi:...}` resolver and the ConfigStore registration."""

from sesemi.config.resolvers import SESEMIConfigAttributes, register_resolvers, set_attributes
from sesemi.config.store import register_configs
from sesemi.config.structs import (
    ClassifierConfig,
    ClassifierHParams,
    ClassifierModelConfig,
    DataConfig,
    DataLoaderConfig,
    DatasetConfig,
    LossCallableConfig,
    LossHeadConfig,
    LRSchedulerConfig,
    RunConfig,
    RunMode,
    SESEMIConfig,
)

__all__ = [
    "ClassifierConfig",
    "ClassifierHParams",
    "ClassifierModelConfig",
    "DataConfig",
    "DataLoaderConfig",
    "DatasetConfig",
    "LRSchedulerConfig",
    "LossCallableConfig",
    "LossHeadConfig",
    "RunConfig",
    "RunMode",
    "SESEMIConfig",
    "SESEMIConfigAttributes",
    "register_configs",
    "register_resolvers",
    "set_attributes",
]

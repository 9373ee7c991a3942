"""Registers the schema with Hydra's ConfigStore: `sesemi_config` and the `learner` group."""

from hydra.core.config_store import ConfigStore

from sesemi.config.structs import ClassifierConfig, SESEMIConfig


def register_configs() -> None:
    """Stores `sesemi_config` (the root schema) and `learner/classifier`."""
    store = ConfigStore.instance()
    store.store(name="sesemi_config", node=SESEMIConfig)
    store.store(group="learner", name="classifier", node=ClassifierConfig)

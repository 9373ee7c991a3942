"""Registers the schema with Hydra's ConfigStore: `sesemi_config`, the `learner` and `ops` groups."""

from hydra.core.config_store import ConfigStore

from sesemi.config.structs import (
    ClassifierConfig,
    PreprocessConfig,
    PseudoDatasetConfig,
    SESEMIConfig,
)


def register_configs() -> None:
    """Stores `sesemi_config` (the root schema), `learner/classifier` and the ops schemas."""
    store = ConfigStore.instance()
    store.store(name="sesemi_config", node=SESEMIConfig)
    store.store(group="learner", name="classifier", node=ClassifierConfig)
    # The schema of configs/ops/pseudo_dataset.yaml (`defaults: [/pseudo_dataset_schema, _self_]`).
    store.store(name="pseudo_dataset_schema", node=PseudoDatasetConfig)
    store.store(name="preprocess_schema", node=PreprocessConfig)

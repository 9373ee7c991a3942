"""Registers the schema with Hydra's ConfigStore: `sesemi_config` and the `learner` group."""

from hydra.core.config_store import ConfigStore

from sesemi.config.structs import ClassifierConfig, SESEMIConfig

# Config groups whose options are schemas, not files (`open_sesemi --help` lists them too).
GROUPS = {"learner": {"classifier": ClassifierConfig}}


def register_configs() -> None:
    """Stores `sesemi_config` (the root schema) and the options of `GROUPS`."""
    store = ConfigStore.instance()
    store.store(name="sesemi_config", node=SESEMIConfig)
    for group, options in GROUPS.items():
        for name, node in options.items():
            store.store(group=group, name=name, node=node)

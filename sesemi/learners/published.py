"""The files of a published model's folder: what `sesemi.hub.publish` writes into its archive,
the cache checks after a download, and `TrainedModel.from_published` reads.

Plain names without imports, so that the hub lists and downloads models without torch.
"""

WEIGHTS = "weights.safetensors"  # the network's state dict (backbone and head), no pickle
CONFIG = "config.yaml"  # the resolved config of the run the model comes from
META = "meta.json"  # what the model is: `sesemi.hub.ModelInfo` (labels, metrics, ...)
CARD = "README.md"  # the model card

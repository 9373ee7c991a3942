"""A published model, built from its folder in the cache without executing code from its files.

The weights are read from safetensors (no pickle), the config with a safe YAML loader, and the
classes the config names are checked before anything is built (sesemi/trust.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf
from safetensors import SafetensorError
from safetensors.torch import load_file
from torch import Tensor, nn

from sesemi.errors import SesemiError
from sesemi.hub.cache import CONFIG, WEIGHTS, read_info
from sesemi.hub.lookup import ModelInfo
from sesemi.ops.inference import Predictor
from sesemi.trust import check_targets


class Model:
    """A loaded model: `predict(paths)` gives class probabilities, as the run it came from did.

    Attributes:
        info: What the model is (uid, name, version, params, metrics, ...).
        path: Its folder in the cache (weights, config, model card).
        predictor: The `Predictor` behind it (for windows, embeddings, `sesemi inference`).

    Args:
        folder: The model's folder.
        device: auto (a GPU if there is one), cpu, cuda, cuda:1, ...
        allow: Module prefixes, besides sesemi's, torch's and torchvision's, whose classes the
            config may build, e.g. `["my_project.backbones."]`.
    """

    def __init__(self, folder: str | Path, device: str = "auto", allow: Sequence[str] = ()):
        self.path = Path(folder)
        self.info: ModelInfo = read_info(self.path)
        config = OmegaConf.load(self.path / CONFIG)
        check_targets(config, allow)
        try:
            weights = load_file(self.path / WEIGHTS)
        except (SafetensorError, OSError) as error:
            raise SesemiError(f"cannot read the weights of {self.info.uid} in {self.path} ({error})") from None
        self.predictor = Predictor.from_weights(weights, config, self.info.labels, device)

    def __repr__(self) -> str:
        return f"Model({self.info.uid!r}, {self.info.reference!r})"

    @property
    def labels(self) -> list[str]:
        """The class names, in the order of the probabilities' columns."""
        return self.predictor.labels

    @property
    def config(self) -> DictConfig:
        """The resolved config of the run the model comes from."""
        return self.predictor.config

    @property
    def module(self) -> nn.Module:
        """The torch module (a `sesemi.Classifier`, in eval mode): inputs -> logits."""
        return self.predictor.model

    def predict(
        self, paths: Sequence[str | Path], batch_size: int = 64, tta: bool = False, **options: Any
    ) -> Tensor:
        """Class probabilities `[N, C]` of image or audio files; see `Predictor.predict`.

        `tta=True` averages over fixed augmented copies of each input (an image's flip).
        """
        return self.predictor.predict(paths, batch_size, tta=tta, **options)

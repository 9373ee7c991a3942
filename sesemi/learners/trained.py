"""A trained model for inference: a run's network with its config, class names and origin.

Loaded from a run folder (`checkpoints/best.ckpt`, else `last.ckpt`), a checkpoint in one, or a
published model's folder (sesemi/learners/published.py). Nothing is executed from the files:
checkpoints are read with `weights_only=True`, published weights are safetensors, configs with
a safe YAML loader, and every `_target_` that is built passes `sesemi.trust` first (whatever
fails is refused before anything of the model is built or imported). Only the
backbone and the classification head are built (not the loss heads, optimizer or callbacks),
so a model loads without the classes only training needs; backbones are built without
pretrained weights (nothing is downloaded) since the trained ones replace them.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from hydra.errors import InstantiationException
from omegaconf import DictConfig, OmegaConf
from safetensors import SafetensorError
from safetensors.torch import load_file
from torch import Tensor, nn

from sesemi.checkpoints import read_checkpoint
from sesemi.errors import SesemiError, first_line
from sesemi.learners.published import CONFIG, META, WEIGHTS
from sesemi.models.backbones.audio import AudioBackbone
from sesemi.models.heads.linear import LinearHead
from sesemi.ownership import marker
from sesemi.results import RunResult, read_stored_yaml
from sesemi.trust import BUILT, NETWORK, check_resolved, check_targets, instantiate

CHECKPOINTS = ("best", "last")
RESULTS = "results.json"
EVAL_TRANSFORMS = ("data.val.dataset.image_transform", "data.test.dataset.image_transform")


def run_files(path: str | Path, checkpoint: str = "best") -> tuple[Path, Path]:
    """The run folder and checkpoint a path names: a run folder or a `.ckpt` file in one.

    For a folder, `checkpoint` picks `checkpoints/best.ckpt` or `checkpoints/last.ckpt` (the
    other when it is missing).
    """
    path = Path(path)
    if path.is_file():
        return (path.parent.parent if path.parent.name == "checkpoints" else path.parent), path
    if not path.is_dir():
        raise SesemiError(f"{path} is neither a run folder nor a checkpoint")
    if checkpoint not in CHECKPOINTS:
        raise SesemiError(f"checkpoint must be one of {', '.join(CHECKPOINTS)}, not {checkpoint!r}")
    for name in (checkpoint, *(c for c in CHECKPOINTS if c != checkpoint)):
        candidate = path / "checkpoints" / f"{name}.ckpt"
        if candidate.is_file():
            return path, candidate
    result = RunResult.read_if_whole(path)
    if result is not None and result.mode != "FIT":  # an evaluation keeps the checkpoint where it was
        raise SesemiError(
            f"the run {path} evaluated a checkpoint (run.mode={result.mode}) and saved none; name the checkpoint "
            "it evaluated, its config.yaml's run.pretrained_checkpoint_path"
        )
    if (path / RESULTS).is_file():  # a finished run whose checkpoints were deleted
        raise SesemiError(f"the run {path} has no checkpoint left (`sesemi rm-states --all` deletes them); train it again")
    found = marker(path)
    if found is not None and found.kind == "run" and found.state == "running" and found.alive:
        raise SesemiError(f"the run {path} is still running and has saved no checkpoint yet (one comes with each validation)")
    if found is not None and found.kind == "run":
        raise SesemiError(f"the run {path} stopped before it saved a checkpoint; train it again (`sesemi rm-failed` deletes it)")
    within = [*path.glob("*/checkpoints/*.ckpt"), *path.glob("*/*/checkpoints/*.ckpt")]
    if within:  # runs/digits, runs/digits/flexmatch, a TrainingRun's folder
        latest = max(within, key=lambda checkpoint: checkpoint.stat().st_mtime).parent.parent
        raise SesemiError(f"{path} is a folder of runs, not a run; name one, e.g. the latest: {latest}")
    raise SesemiError(f"{path} has no checkpoints/best.ckpt or last.ckpt; is it a training run's folder?")


def _read_config(path: Path) -> DictConfig:
    """A stored (resolved) config, refused when it is not YAML or holds an interpolation."""
    config = read_stored_yaml(path)
    check_resolved(config, str(path))
    return config


def _without_pretrained(node: Any) -> Any:
    """A config (plain containers) with every `pretrained: true` set to false."""
    if isinstance(node, dict):
        return {k: False if k == "pretrained" else _without_pretrained(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_without_pretrained(v) for v in node]
    return node


def _network(hparams: Mapping[str, Any], where: str, allow: Sequence[str]) -> tuple[nn.Module, nn.Module, int]:
    """The backbone and classification head `learner.hparams` describe, and the number of classes."""
    if OmegaConf.is_config(hparams):
        hparams = OmegaConf.to_container(hparams, resolve=False)  # the trust rules refuse interpolations
    model = _without_pretrained(dict(hparams.get("model") or {}))
    if not model.get("backbone") or "num_classes" not in hparams:
        raise SesemiError(f"{where} describes no network (learner.hparams needs num_classes and model.backbone)")
    num_classes = hparams["num_classes"]
    if not isinstance(num_classes, int) or isinstance(num_classes, bool) or num_classes < 1:
        raise SesemiError(f"{where} has num_classes={num_classes!r}; it must be a positive whole number")
    try:
        backbone = instantiate(model["backbone"], allow, where)
        if not isinstance(getattr(backbone, "out_features", None), int):
            raise SesemiError(f"the backbone {where} describes ({type(backbone).__name__}) does not say its out_features")
        sizes = {"in_features": backbone.out_features, "out_features": num_classes}
        head = instantiate(model["head"], allow, where, **sizes) if model.get("head") else LinearHead(**sizes)
    except InstantiationException as error:
        raise SesemiError(f"cannot build the network of {where} ({' '.join(str(error).split())[:200]})") from None
    return backbone, head, num_classes


def _classes(results: Path) -> list[str] | None:
    """The class names a run's `results.json` records, if it has them."""
    if not results.is_file():
        return None
    try:
        classes = json.loads(results.read_text(encoding="utf-8")).get("classes")
    except (ValueError, OSError, AttributeError):
        raise SesemiError(f"{results} is not a run's results.json (a JSON object); delete it or train again") from None
    if classes is not None and not (isinstance(classes, list) and all(isinstance(c, str) for c in classes)):
        raise SesemiError(f"{results} has classes that are not a list of names")
    return classes


class TrainedModel(nn.Module):
    """The network of a training run (backbone and classification head): inputs -> logits.

    Its weights are those validation saw: with an EMA callback Lightning stores the averaged
    weights as a checkpoint's `state_dict`. Build one with `from_run` or `from_published`.

    Attributes:
        backbone: Inputs (images `[N, C, H, W]` or waveforms `[N, T]`) -> features `[N, F]`.
        head: Features -> logits `[N, len(labels)]`.
        config: The run's config (its `config.yaml`); for a checkpoint without one, only
            `learner.hparams` from the checkpoint.
        labels: The class names, in the order of the logits.
        source: Where the model came from: the run folder or the published model's folder.
        checkpoint: The checkpoint the weights came from (None for a published model).
        ema: Whether the weights are the exponential moving average of the trained weights.
        allow: The module prefixes trusted besides sesemi's and the user's when it was loaded
            (for the evaluation transform, built later).
    """

    def __init__(
        self,
        backbone: nn.Module,
        head: nn.Module,
        config: DictConfig,
        labels: Sequence[str],
        source: str | Path,
        checkpoint: Path | None = None,
        ema: bool = False,
        allow: Sequence[str] = (),
    ):
        super().__init__()
        self.backbone = backbone
        self.head = head
        self.config = config
        self.labels = [str(label) for label in labels]
        self.source = Path(source)
        self.checkpoint = checkpoint
        self.ema = ema
        self.allow = tuple(allow)
        self.eval()

    @classmethod
    def from_run(cls, path: str | Path, checkpoint: str = "best", allow: Sequence[str] = ()) -> TrainedModel:
        """Loads a training run: its folder (`config.yaml`, `checkpoints/`) or a checkpoint in it.

        Args:
            path: The run folder, or a `.ckpt` file (usually `<run>/checkpoints/<name>.ckpt`).
            checkpoint: For a folder: "best" or "last" (the other when it is missing).
            allow: Module prefixes trusted besides sesemi's and the user's (`sesemi trust add`),
                whose classes the checkpoint and config may build, e.g. `["my_project"]`.

        Returns:
            The model in eval mode; class names from the run's `results.json`, else the indices.
        """
        run_dir, checkpoint_path = run_files(path, checkpoint)
        stored = read_checkpoint(checkpoint_path)
        stored_hparams = stored.get("hyper_parameters")
        hparams = stored_hparams.get("hparams") if isinstance(stored_hparams, Mapping) else None
        if not isinstance(hparams, Mapping):
            raise SesemiError(f"{checkpoint_path} was not saved by a sesemi Classifier (it has no hparams)")
        where = f"the checkpoint {checkpoint_path}"
        check_targets(hparams, allow, NETWORK, where)
        config_path = run_dir / CONFIG
        if config_path.is_file():
            config = _read_config(config_path)
            check_targets(config, allow, EVAL_TRANSFORMS, str(config_path))
        else:
            config = OmegaConf.create({"learner": {"hparams": dict(hparams)}})
        backbone, head, num_classes = _network(hparams, where, allow)
        labels = _classes(run_dir / RESULTS) or [str(c) for c in range(num_classes)]
        ema = "current_model_state" in stored  # what Lightning's weight averaging adds
        model = cls(backbone, head, config, labels, run_dir, checkpoint_path, ema, allow)
        model._load(stored["state_dict"], str(checkpoint_path), num_classes)
        return model

    @classmethod
    def from_published(cls, folder: str | Path, allow: Sequence[str] = ()) -> TrainedModel:
        """Loads a published model's folder: `weights.safetensors`, `config.yaml`, `meta.json`.

        Args:
            folder: The folder (in the model cache, or an extracted archive).
            allow: Module prefixes trusted besides sesemi's and the user's (`sesemi trust add`),
                whose classes the config may build, e.g. `["my_project"]`.

        Returns:
            The model in eval mode, with the class names of its `meta.json`.
        """
        folder = Path(folder)
        missing = [name for name in (WEIGHTS, CONFIG, META) if not (folder / name).is_file()]
        if missing:
            raise SesemiError(f"{folder} is not a published model's folder (it has no {', '.join(missing)})")
        config = _read_config(folder / CONFIG)
        check_targets(config, allow, BUILT, str(folder / CONFIG))
        try:
            meta = json.loads((folder / META).read_text(encoding="utf-8"))
        except (ValueError, OSError):
            meta = None
        if not isinstance(meta, dict):
            raise SesemiError(f"{folder / META} is not a published model's meta.json (a JSON object)")
        try:
            weights = load_file(folder / WEIGHTS)
        except (SafetensorError, OSError) as error:
            raise SesemiError(
                f"cannot read the weights of {folder} ({first_line(error)}); they are damaged: delete the folder "
                "(a model in the cache is downloaded again when next loaded)"
            ) from None
        hparams = OmegaConf.select(config, "learner.hparams") or {}
        backbone, head, num_classes = _network(hparams, str(folder / CONFIG), allow)
        model = cls(backbone, head, config, meta.get("labels") or [], folder, None, bool(meta.get("ema")), allow)
        model._load(weights, str(folder / WEIGHTS), num_classes)
        return model

    def _load(self, state: Mapping[str, Tensor], where: str, num_classes: int) -> None:
        """Copies the network's weights from a Classifier's state dict (which has more)."""
        if len(self.labels) != num_classes:
            raise SesemiError(f"{len(self.labels)} class names for a model of {num_classes} classes ({where})")
        own = {key: value for key, value in state.items() if key.split(".", 1)[0] in ("backbone", "head")}
        try:
            self.load_state_dict(own, strict=True)
        except RuntimeError as error:
            lines = [line.strip() for line in str(error).splitlines() if line.strip()]
            reason = lines[-1][:160]  # the first line only says which module
            raise SesemiError(f"the weights in {where} do not fit the model of its config ({reason})") from None

    def forward(self, inputs: Tensor) -> Tensor:
        """Images `[N, C, H, W]` or waveforms `[N, T]` -> logits `[N, len(labels)]`."""
        return self.head(self.backbone(inputs))

    @property
    def audio(self) -> bool:
        """Whether the model takes waveforms (an audio backbone) rather than images."""
        return isinstance(self.backbone, AudioBackbone)

    @property
    def eval_transform_config(self) -> DictConfig | None:
        """The config of the run's evaluation transform: the validation (else test) loader's."""
        for key in EVAL_TRANSFORMS:
            node = OmegaConf.select(self.config, key)
            if node is not None:
                return node
        return None

    def eval_transform(self) -> Callable[[Any], Tensor]:
        """The run's evaluation transform, built under the trust rules (as checked at loading)."""
        node = self.eval_transform_config
        if node is None:
            raise SesemiError(f"{self.source} has no config.yaml with a validation transform to prepare inputs with")
        return instantiate(node, self.allow, str(self.source / CONFIG))

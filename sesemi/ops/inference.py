"""Inference with a trained run: class probabilities for image and audio files.

    open_sesemi -cn ops/inference run=runs/spoken_digits/<time> inputs=./recordings

writes `predictions.csv` (path, label, score and one probability column per class) into the
operation's folder. From Python:

    predictor = Predictor.from_run("runs/spoken_digits/<time>")
    probabilities = predictor.predict(["a.wav", "b.mp3"])   # [2, num_classes]

Recordings longer than the training clips are cut into sliding windows (`window_seconds` long,
`hop_seconds` apart; the last one zero-padded) whose probabilities are averaged; shorter ones
are centred and padded, as in validation. Images go through the run's validation transform.
`tta=True` also predicts fixed augmented copies of each input and averages (sesemi/tta.py).
"""

from __future__ import annotations

import csv
import io
import json
import logging
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from torch import Tensor
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from sesemi.datasets.images import is_image_file, read_image
from sesemi.errors import SesemiError
from sesemi.learners.classifier import Classifier
from sesemi.models.backbones.audio import AudioBackbone
from sesemi.ops.pseudo_dataset import load_teacher, resolve_device
from sesemi.transforms.audio import AudioReadError, frames, is_audio_file, load_audio, num_samples
from sesemi.tta import Augmentation

logger = logging.getLogger(__name__)

CHECKPOINTS = ("best", "last")
PREDICTIONS_FILE = "predictions.csv"
TRAINING_TRANSFORM = "data.train.supervised.dataset.image_transform"  # the labeled data's (weak) one


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
    order = [checkpoint] + [c for c in CHECKPOINTS if c != checkpoint]
    for name in order:
        candidate = path / "checkpoints" / f"{name}.ckpt"
        if candidate.is_file():
            return path, candidate
    raise SesemiError(f"{path} has no checkpoints/best.ckpt or last.ckpt; is it a training run's folder?")


def _without_pretrained(node: Any) -> Any:
    """A config (plain containers) with every `pretrained: true` set to false."""
    if isinstance(node, dict):
        return {k: False if k == "pretrained" else _without_pretrained(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_without_pretrained(v) for v in node]
    return node


class _AudioWindows:
    """A recording as sliding windows `[W, window]` at `rate` Hz."""

    def __init__(self, rate: int, window: int, hop: int):
        self.rate, self.window, self.hop = rate, window, hop

    def __call__(self, path: str) -> Tensor:
        return frames(torch.from_numpy(load_audio(path, self.rate)), self.window, self.hop)


class _Image:
    """An image as one transformed input `[1, C, H, W]`."""

    def __init__(self, transform: Callable):
        self.transform = transform

    def __call__(self, path: str) -> Tensor:
        return self.transform(read_image(path))[None]


class _Inputs(Dataset):
    """`(index, windows)` per file: `[W, ...]` model inputs, or None when it cannot be read."""

    def __init__(self, paths: Sequence[str], read: Callable[[str], Tensor]):
        self.paths = list(paths)
        self.read = read

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> tuple[int, Tensor | str]:
        try:
            return index, self.read(self.paths[index])
        except (AudioReadError, OSError, ValueError, SyntaxError) as error:
            return index, str(error)


class Predictor:
    """A trained classifier and the input pipeline of its run, for files of either modality.

    The checkpoint's weights are the ones validation saw: with an EMA callback Lightning stores
    the averaged weights as the checkpoint's `state_dict`.

    Args:
        model: The trained Classifier.
        config: The run's config (its `config.yaml`).
        labels: The class names, in the model's output order.
        device: Where the model runs.
    """

    def __init__(self, model: Classifier, config: DictConfig, labels: Sequence[str], device: str | torch.device = "cpu"):
        if len(labels) != model.num_classes:
            raise SesemiError(f"{len(labels)} class names for a model of {model.num_classes} classes")
        self.device = torch.device(device)
        self.model = model.eval().to(self.device)
        self.config = config
        self.labels = list(labels)
        self.audio = isinstance(model.backbone, AudioBackbone)

    @classmethod
    def from_run(cls, path: str | Path, device: str = "auto", checkpoint: str = "best") -> Predictor:
        """Loads a training run: its folder (`config.yaml`, `checkpoints/`) or a checkpoint in it.

        Class names come from the run's `results.json` (else they are the class indices).
        """
        run_dir, checkpoint_path = run_files(path, checkpoint)
        config_path = run_dir / "config.yaml"
        if not config_path.is_file():
            raise SesemiError(f"{config_path} does not exist: inference needs the run's config beside checkpoints/")
        model = load_teacher(checkpoint_path)
        results = run_dir / "results.json"
        classes = json.loads(results.read_text()).get("classes") if results.is_file() else None
        labels = classes or [str(c) for c in range(model.num_classes)]
        return cls(model, OmegaConf.load(config_path), labels, resolve_device(device))

    @classmethod
    def from_weights(
        cls, weights: Mapping[str, Tensor], config: DictConfig, labels: Sequence[str], device: str = "auto"
    ) -> Predictor:
        """Builds the Classifier of a run's config and loads `weights` (its full state dict) into it.

        For weights that come without a checkpoint, such as a published model's safetensors. The
        backbone is built without pretrained weights (nothing is downloaded): `weights` replace them.
        """
        hparams = OmegaConf.to_container(config.learner.hparams, resolve=True)
        model = Classifier(_without_pretrained(hparams))
        try:
            model.load_state_dict(weights, strict=True)
        except RuntimeError as error:
            lines = [line.strip() for line in str(error).splitlines() if line.strip()]
            reason = lines[-1][:160]  # the first line only says which module
            raise SesemiError(f"the weights do not fit the model of the config ({reason})") from None
        return cls(model.eval(), config, labels, resolve_device(device))

    @property
    def sample_rate(self) -> int:
        """The sample rate audio is resampled to (the training data's)."""
        return int(self.model.backbone.sample_rate)

    def _eval_setting(self, key: str) -> Any:
        for stage in ("val", "test"):
            value = OmegaConf.select(self.config, f"data.{stage}.dataset.image_transform.{key}")
            if value is not None:
                return value
        return None

    @property
    def clip_seconds(self) -> float | None:
        """The length of the clips the model was validated on, the default window."""
        return self._eval_setting("clip_seconds")

    def accepts(self, path: Path) -> bool:
        """Whether `path` is a file of the model's modality (by its extension)."""
        return is_audio_file(path) if self.audio else is_image_file(path)

    def augmentation(self) -> Augmentation:
        """The copies test-time augmentation predicts: an image's flip, or audio shifted by the
        run's training `max_shift` (0.1 when its config has none)."""
        if not self.audio:
            return Augmentation(audio=False)
        max_shift = OmegaConf.select(self.config, f"{TRAINING_TRANSFORM}.max_shift")
        return Augmentation(True) if max_shift is None else Augmentation(True, float(max_shift))

    def windowing(self, window_seconds: float | None = None, hop_seconds: float | None = None) -> tuple[float, float]:
        """The audio window length and spacing in seconds; by default the run's clip length and half of it."""
        window = window_seconds or self.clip_seconds
        if not window:
            raise SesemiError("the run's config has no clip_seconds; set window_seconds")
        hop = hop_seconds or window / 2
        if window <= 0 or hop <= 0:
            raise SesemiError(f"window_seconds and hop_seconds must be positive, not {window}, {hop}")
        return float(window), float(hop)

    def _reader(self, window_seconds: float | None, hop_seconds: float | None) -> _AudioWindows | _Image:
        if self.audio:
            window, hop = self.windowing(window_seconds, hop_seconds)
            rate = self.sample_rate
            return _AudioWindows(rate, num_samples(window, rate), num_samples(hop, rate))
        transform = OmegaConf.select(self.config, "data.val.dataset.image_transform") or OmegaConf.select(
            self.config, "data.test.dataset.image_transform"
        )
        if transform is None:
            raise SesemiError("the run's config has no validation transform to prepare images with")
        return _Image(instantiate(transform))

    @torch.inference_mode()
    def predict_windows(
        self,
        paths: Sequence[str | Path],
        batch_size: int = 64,
        window_seconds: float | None = None,
        hop_seconds: float | None = None,
        num_workers: int = 0,
        on_error: str = "raise",
        progress: bool = False,
        tta: bool = False,
    ) -> list[Tensor | None]:
        """Per-window class probabilities `[W, C]` of each file (an image is one window).

        Args:
            paths: The files.
            batch_size: Windows per forward pass.
            window_seconds: Audio window length (default: the run's clip length).
            hop_seconds: Audio window spacing (default: half a window).
            num_workers: Loader processes that decode files (0: this process).
            on_error: "raise" on an unreadable file, or "skip" it (its entry is None) with a warning.
            progress: Whether to show a progress bar.
            tta: Also predict each window's augmented copies (`augmentation()`) and average.
        """
        if on_error not in ("skip", "raise"):
            raise SesemiError(f"on_error must be 'skip' or 'raise', not {on_error!r}")
        paths = [str(p) for p in paths]
        loader = DataLoader(
            _Inputs(paths, self._reader(window_seconds, hop_seconds)), batch_size=None, num_workers=num_workers
        )
        files: list[list[Tensor]] = [[] for _ in paths]
        read: list[bool] = [False] * len(paths)
        items = tqdm(loader, desc="predicting", unit="file", disable=not progress)
        augment = self.augmentation() if tta else None
        for owners, inputs in _batches(self._readable(items, paths, read, on_error), batch_size):
            probabilities = self._probabilities(inputs.to(self.device), augment).cpu()
            for owner, chunk in zip(owners, probabilities.split([n for _, n in owners]), strict=True):
                files[owner[0]].append(chunk)
        return [torch.cat(chunks) if ok else None for chunks, ok in zip(files, read, strict=True)]

    def _probabilities(self, inputs: Tensor, augment: Augmentation | None) -> Tensor:
        if augment is None:
            return self.model(inputs).float().softmax(dim=1)
        return augment.mean(self.model(augment(inputs)).float().softmax(dim=1))

    def _readable(self, items, paths: list[str], read: list[bool], on_error: str) -> Iterator[tuple[int, Tensor]]:
        for index, windows in items:
            if isinstance(windows, str):
                if on_error == "raise":
                    raise SesemiError(f"cannot read {paths[index]} ({windows}); remove it or set on_error=skip")
                logger.warning("skipping unreadable file %s (%s)", paths[index], windows)
                continue
            read[index] = True
            yield index, windows

    def predict(self, paths: Sequence[str | Path], batch_size: int = 64, **options: Any) -> Tensor:
        """Class probabilities `[N, C]` per file: the mean over its windows.

        Takes the options of `predict_windows`; with `on_error="skip"`, the rows of unreadable
        files are NaN.
        """
        rows = [
            windows.mean(dim=0) if windows is not None else torch.full((len(self.labels),), float("nan"))
            for windows in self.predict_windows(paths, batch_size, **options)
        ]
        return torch.stack(rows) if rows else torch.zeros(0, len(self.labels))


def _batches(items: Iterator[tuple[int, Tensor]], batch_size: int) -> Iterator[tuple[list[tuple[int, int]], Tensor]]:
    """Regroups each file's windows into batches of at most `batch_size`.

    Yields the batch and its owners `[(file index, number of its windows in the batch), ...]`.
    """
    owners: list[tuple[int, int]] = []
    pending: list[Tensor] = []
    size = 0
    for index, windows in items:
        start = 0
        while start < len(windows):
            take = min(batch_size - size, len(windows) - start)
            owners.append((index, take))
            pending.append(windows[start : start + take])
            size, start = size + take, start + take
            if size == batch_size:
                yield owners, torch.cat(pending)
                owners, pending, size = [], [], 0
    if pending:
        yield owners, torch.cat(pending)


def find_inputs(inputs: str | Path, predictor: Predictor) -> list[Path]:
    """A file, or the files of the predictor's modality under a folder (recursively, sorted)."""
    inputs = Path(inputs)
    if inputs.is_file():
        return [inputs]
    if not inputs.is_dir():
        raise SesemiError(f"inputs {inputs} does not exist")
    found = [p for p in sorted(inputs.rglob("*")) if p.is_file() and predictor.accepts(p)]
    if not found:
        kind = "audio" if predictor.audio else "image"
        raise SesemiError(f"no {kind} files under {inputs}")
    return found


def _row(probabilities: Tensor, labels: list[str]) -> list[str]:
    score, index = probabilities.max(dim=0)
    return [labels[int(index)], f"{float(score):.6g}", *(f"{float(p):.6g}" for p in probabilities)]


def inference(
    run: str,
    inputs: str,
    output_dir: str,
    checkpoint: str = "best",
    batch_size: int = 64,
    num_workers: int = 0,
    device: str = "auto",
    window_seconds: float | None = None,
    hop_seconds: float | None = None,
    per_window: bool = False,
    on_error: str = "skip",
    tta: bool = False,
) -> dict[str, Any]:
    """Predicts every input file with a trained run and writes `predictions.csv` to `output_dir`.

    Every argument is documented in `sesemi.config.structs.InferenceConfig`.

    Returns:
        The csv's path and the numbers of files predicted and skipped.
    """
    predictor = Predictor.from_run(run, device, checkpoint)
    paths = find_inputs(inputs, predictor)
    results = predictor.predict_windows(
        paths, batch_size, window_seconds, hop_seconds, num_workers, on_error, progress=True, tta=tta
    )
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    windows = ["start", "end"] if per_window else []
    writer.writerow(["path", *windows, "label", "score", *predictor.labels])
    window, hop = predictor.windowing(window_seconds, hop_seconds) if predictor.audio else (0.0, 0.0)
    for path, probabilities in zip(paths, results, strict=True):
        if probabilities is None:
            continue
        if not per_window:
            writer.writerow([str(path), *_row(probabilities.mean(dim=0), predictor.labels)])
            continue
        for i, row in enumerate(probabilities):
            span = [f"{i * hop:.3f}", f"{i * hop + window:.3f}"] if predictor.audio else ["", ""]
            writer.writerow([str(path), *span, *_row(row, predictor.labels)])
    output = Path(output_dir)
    output.mkdir(parents=True, exist_ok=True)
    target = output / PREDICTIONS_FILE
    target.write_text(text.getvalue())
    predicted = sum(r is not None for r in results)
    logger.info("wrote predictions for %d files (%d unreadable) to %s", predicted, len(paths) - predicted, target)
    return {"predictions": os.fspath(target), "files": predicted, "unreadable": len(paths) - predicted}

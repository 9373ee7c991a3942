"""The predictor: class probabilities of a trained model for files, folders, lists and waveforms.

    # a run, a .ckpt, a uid, name@version:
    predictor = sesemi.predictor.load("runs/digits/flexmatch/<time>")
    predictions = predictor.predict("new_images")             # one Prediction per file, in order
    predictions[0].label, predictions[0].score, predictions[0].probabilities
    write_predictions(predictions, "out", predictor.labels)   # out/predictions.csv
    write_predictions(predictor.predict_each("pool"), "out", predictor.labels)  # streamed, any size

Images go through the run's evaluation transform. Recordings longer than the training clips are
cut into sliding windows (`window_seconds` long, `hop_seconds` apart, the last one zero-padded)
whose probabilities are averaged; shorter ones are centred and padded, as in validation.
`tta=True` also predicts fixed augmented copies of each input and averages (sesemi/tta.py).
"""

from __future__ import annotations

import csv
import logging
import math
import os
import shutil
import tempfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from functools import cached_property, partial
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf
from PIL import Image
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from sesemi.datasets.images import (
    UnreadableLog,
    check_bit_depth,
    is_image_file,
    left_out_note,
    list_files,
    read_image,
    to_rgb,
    upright,
    warn_unread_photos,
)
from sesemi.errors import SesemiError, first_line
from sesemi.hub.cache import read_info
from sesemi.hub.ids import is_reference
from sesemi.hub.lookup import ModelInfo
from sesemi.hub.repository import fetch
from sesemi.learners.published import META, WEIGHTS
from sesemi.learners.trained import TrainedModel
from sesemi.logs import counted
from sesemi.models.heads.one_vs_all import OUT_OF_CLASS_THRESHOLD
from sesemi.ownership import MARKER, claim, open_atomically, owned
from sesemi.transforms.audio import (
    AudioReadError,
    check_samples,
    frames,
    is_audio_file,
    load_audio,
    num_samples,
)
from sesemi.transforms.views import input_side
from sesemi.tta import Augmentation

logger = logging.getLogger(__name__)

PREDICTIONS_FILE = "predictions.csv"
EMBEDDINGS_FILE = "embeddings.npy"
UNREADABLE_FILE = "unreadable.csv"  # path, why: the inputs predictions.csv leaves out
LIST_SUFFIXES = (".txt", ".lst", ".list")
READ_ERRORS = (OSError, ValueError)  # ImageReadError and AudioReadError are ValueErrors
# Where a run's config keeps its training transform (with the time shift TTA copies for audio).
TRAINING_TRANSFORMS = ("data.train.supervised.dataset.image_transform", "data.views.weak")

Inputs = str | os.PathLike | Image.Image | Sequence[str | os.PathLike] | Sequence[Image.Image] | Sequence[Tensor]


@dataclass(frozen=True, eq=False)
class Prediction:
    """The prediction for one input.

    Attributes:
        input: The file, or the position of an input in memory (an image, a waveform) in the
            sequence predicted.
        label: The most probable class; None when the input could not be read.
        score: Its probability.
        probabilities: The class probabilities `[C]`, in the order of the predictor's labels
            (for audio, the mean over the windows).
        windows: Audio: each window's class probabilities `[W, C]`; None for images.
        embedding: The backbone's features `[F]` (for audio, the mean over the windows), when
            asked for.
        window_embeddings: Audio: each window's features `[W, F]`, when asked for.
        error: Why the input could not be read; None when it was.
        out_of_class: 1 minus the probability its label's one-vs-all detector gives it (a
            `OneVsAllHead`, the outlier filter's; None for other models); above 0.5 it looks
            out of class (`looks_out_of_class`).
        seconds: Audio: the recording's length in seconds (its last window is padded past it);
            None for images.
        window_seconds: Audio: the windows' length in seconds, as cut (whole samples); None
            for images.
        hop_seconds: Audio: the spacing of the windows' starts in seconds; None for images.
    """

    input: Path | int
    label: str | None = None
    score: float | None = None
    # The tensors are left out of the repr: a list of predictions printed in a notebook would
    # be a wall of numbers.
    probabilities: Tensor | None = field(default=None, repr=False)
    windows: Tensor | None = field(default=None, repr=False)
    embedding: Tensor | None = field(default=None, repr=False)
    window_embeddings: Tensor | None = field(default=None, repr=False)
    error: str | None = None
    out_of_class: float | None = None
    seconds: float | None = None
    window_seconds: float | None = None
    hop_seconds: float | None = None

    def window_spans(self) -> list[tuple[float, float]]:
        """Audio: each window's start and end in seconds, the last ending with the recording
        (its padding is not the recording's); empty for images."""
        if self.windows is None or self.window_seconds is None or self.hop_seconds is None:
            return []
        starts = [index * self.hop_seconds for index in range(len(self.windows))]
        ends = [start + self.window_seconds for start in starts]
        if self.seconds is not None:
            ends = [min(end, self.seconds) for end in ends]
        return list(zip(starts, ends, strict=True))

    @property
    def looks_out_of_class(self) -> bool | None:
        """Whether `out_of_class` is above `OUT_OF_CLASS_THRESHOLD`; None without detectors."""
        return None if self.out_of_class is None else self.out_of_class > OUT_OF_CLASS_THRESHOLD


@dataclass(frozen=True, eq=False)
class BatchPrediction:
    """The predictions for a batch of prepared model inputs.

    Attributes:
        probabilities: The class probabilities `[N, C]`.
        labels: The most probable class of each input.
        scores: Its probability `[N]`.
        embeddings: The backbone's features `[N, F]`.
        inlier_probabilities: Each class's one-vs-all detector's probability that the input
            belongs to it `[N, C]` (None when the model has no detectors).
    """

    probabilities: Tensor
    labels: list[str]
    scores: Tensor
    embeddings: Tensor
    inlier_probabilities: Tensor | None = None


def resolve_device(name: str) -> torch.device:
    """`auto` (a GPU if there is one), `cpu`, `cuda` or `cuda:<index>` as a torch device."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise SesemiError(f"device must be auto, cpu, cuda or cuda:<index>, not {name!r}") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SesemiError(f"device={name} but there is no GPU; use device=cpu")
    return device


def load(
    source: str | os.PathLike,
    device: str = "auto",
    checkpoint: str = "best",
    allow: Sequence[str] = (),
    repository: str | os.PathLike | None = None,
) -> Predictor:
    """Loads a trained model to predict with.

    Args:
        source: A run folder, a checkpoint in one, a published model's folder, or a published
            model's uid or `[subgroup.]name[@version]` (the latest version without one), from
            the cache or downloaded into it.
        device: auto (a GPU if there is one), cpu, cuda, cuda:1, ...
        checkpoint: For a run folder: "best" or "last" (the other when it is missing).
        allow: Module prefixes, besides the network and training classes of sesemi, torch,
            torchvision and timm (`sesemi.trust.BUILDING_BLOCKS`) and the prefixes added with
            `sesemi trust add`, whose classes the model's files may build, e.g.
            `["my_project."]` for your own backbone.
        repository: Where published models are: a folder or fsspec URL; by default those of
            `$SESEMI_REPOSITORIES`.

    Returns:
        The predictor; for a published model its `info` is the `ModelInfo`.
    """
    path = Path(source)
    if not path.exists() and is_reference(str(source)):
        path = fetch(str(source), repository)
    if path.is_dir() and (path / META).is_file() and (path / WEIGHTS).is_file():
        return Predictor(TrainedModel.from_published(path, allow), device, info=read_info(path))
    return Predictor(TrainedModel.from_run(path, checkpoint, allow), device)


def _read_image(
    transform: Callable, min_side: int | None, bit_depth: int | None, item: Path | Image.Image
) -> tuple[Tensor, None]:
    """An image file, read at `min_side` (`read_image`), or an image in memory (as files are
    read: upright, 8-bit RGB by its pixels' range and `bit_depth`), as one transformed input
    `[1, C, H, W]`."""
    image = to_rgb(upright(item), bit_depth) if isinstance(item, Image.Image) else read_image(item, min_side, bit_depth)
    return transform(image)[None], None


def _samples(waveform: Tensor) -> Tensor:
    """A waveform tensor as float32 samples, read as a file's are: integers scaled as PCM is
    (int16 by 2**15, unsigned ones centred: uint8 128 is 0), and refused as a file's are
    (`check_samples`: `AudioReadError`, a `ValueError`)."""
    if waveform.dtype == torch.bool or waveform.is_complex():
        raise AudioReadError(f"it holds {str(waveform.dtype).removeprefix('torch.')} values, not samples")
    if not waveform.is_floating_point():
        info = torch.iinfo(waveform.dtype)
        half = 2.0 ** (info.bits - 1)
        waveform = (waveform.double() - (0.0 if info.min < 0 else half)) / half
    waveform = waveform.float()
    check_samples(waveform.detach().cpu().numpy())
    return waveform


def _read_windows(rate: int, window: int, hop: int, item: Path | Tensor) -> tuple[Tensor, float]:
    """A recording (a file, or a waveform `[T]` at `rate` Hz) as sliding windows `[W, window]`,
    and its length in seconds."""
    waveform = _samples(item) if isinstance(item, Tensor) else torch.from_numpy(load_audio(item, rate))
    return frames(waveform, window, hop), waveform.shape[-1] / rate


class _Inputs(Dataset):
    """`(index, (windows, seconds))` per input: `[W, ...]` model inputs and a recording's length
    (None for an image), or why it cannot be read."""

    def __init__(self, items: Sequence[Path | Tensor], read: Callable[[Any], tuple[Tensor, float | None]]):
        self.items, self.read = items, read

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> tuple[int, tuple[Tensor, float | None] | str]:
        item = self.items[index]
        if isinstance(item, Path) and item.exists() and not item.is_file():  # a FIFO would block the read
            return index, "not a regular file"
        try:
            return index, self.read(item)
        except READ_ERRORS as error:
            return index, first_line(error)


def _batches(items: Iterator[tuple[int, Tensor]], batch_size: int) -> Iterator[tuple[list[tuple[int, int, bool]], Tensor]]:
    """Regroups each input's windows into batches of at most `batch_size`; yields each batch with
    its owners `[(input index, its windows in the batch, whether they are its last), ...]`."""
    owners: list[tuple[int, int, bool]] = []
    pending: list[Tensor] = []
    size = 0
    for index, windows in items:
        start = 0
        while start < len(windows):
            take = min(batch_size - size, len(windows) - start)
            owners.append((index, take, start + take == len(windows)))
            pending.append(windows[start : start + take])
            size, start = size + take, start + take
            if size == batch_size:
                yield owners, torch.cat(pending)
                owners, pending, size = [], [], 0
    if pending:
        yield owners, torch.cat(pending)


class Predictor:
    """A trained model and the input pipeline of its run, for inputs of either modality.

    Args:
        model: The trained model (`TrainedModel.from_run`, `TrainedModel.from_published`).
        device: auto (a GPU if there is one), cpu, cuda, cuda:1, ...
        transform: Images: what prepares one; None: the run's evaluation transform.
        info: A published model's `ModelInfo`; None for a run.
    """

    def __init__(
        self,
        model: TrainedModel,
        device: str | torch.device = "auto",
        transform: Callable | None = None,
        info: ModelInfo | None = None,
    ):
        self.device = resolve_device(device) if isinstance(device, str) else torch.device(device)
        self.model = model.eval().to(self.device)
        self.info = info
        self.transform = transform if transform is not None or model.audio else model.eval_transform()

    def __repr__(self) -> str:
        return f"Predictor({self.model.source}, labels={self.labels}, device={self.device})"

    @property
    def labels(self) -> list[str]:
        """The class names, in the order of the probabilities."""
        return self.model.labels

    @property
    def config(self) -> DictConfig:
        """The config of the run the model comes from."""
        return self.model.config

    @property
    def audio(self) -> bool:
        """Whether the model predicts recordings rather than images."""
        return self.model.audio

    @property
    def sample_rate(self) -> int:
        """The sample rate audio is resampled to (the training data's)."""
        return int(self.model.backbone.sample_rate)

    @property
    def clip_seconds(self) -> float | None:
        """The length of the clips the model was validated on, the default window."""
        node = self.model.eval_transform_config
        return OmegaConf.select(node, "clip_seconds") if node is not None else None

    @cached_property
    def bit_depth(self) -> int | None:
        """The bits of the data in 16- and 32-bit integer images, as the model was trained on
        them (`data.bit_depth`); None: the file's."""
        return check_bit_depth(OmegaConf.select(self.config, "data.bit_depth"))

    @cached_property
    def channels(self) -> int:
        """The channels of the images the model takes: those the evaluation transform makes of an
        RGB image (3, unless the run's transform changes them)."""
        return int(self.transform(Image.new("RGB", (64, 64))).shape[0])

    def augmentation(self) -> Augmentation:
        """The copies test-time augmentation predicts: an image's flip, or audio shifted by the
        run's training `max_shift` (0.1 when its config has none). A run trained without flips
        (`p_hflip: 0`, as for digits and text) is refused: a flip is not a variant it learned."""
        if not self.audio:
            if self._training_setting("p_hflip") == 0:
                raise SesemiError(
                    "this model was trained without horizontal flips (p_hflip: 0, as for digits or text), so a "
                    "flipped copy is not a variant it learned: predict without test-time augmentation"
                )
            return Augmentation(False)
        max_shift = self._training_setting("max_shift")
        return Augmentation(True) if max_shift is None else Augmentation(True, float(max_shift))

    def _training_setting(self, key: str) -> Any:
        """A setting of the run's training transform (`TRAINING_TRANSFORMS`), or None."""
        found = (OmegaConf.select(self.config, f"{transform}.{key}") for transform in TRAINING_TRANSFORMS)
        return next((value for value in found if value is not None), None)

    def windowing(self, window_seconds: float | None = None, hop_seconds: float | None = None) -> tuple[float, float]:
        """The audio window length and spacing in seconds, as windows are cut: in whole samples
        (0.25 s at 22,050 Hz is 5512 samples, 0.24989 s, which per-window times must count, or
        drift by a third of a second an hour); by default the run's clip length and half of it."""
        window = self.clip_seconds if window_seconds is None else window_seconds
        if window is None:
            raise SesemiError("the run's config has no clip_seconds; set window_seconds")
        hop = window / 2 if hop_seconds is None else hop_seconds
        if not (0 < window < math.inf and 0 < hop < math.inf):  # NaN fails both
            raise SesemiError(f"window_seconds and hop_seconds must be positive numbers, not {window}, {hop}")
        shortest = getattr(self.model.backbone, "min_samples", 0)
        if num_samples(window, self.sample_rate) < shortest:
            seconds = self.model.backbone.min_seconds
            raise SesemiError(
                f"window_seconds must be at least {seconds:g}: the model takes clips of at least {shortest} "
                f"samples ({seconds:g} s at {self.sample_rate} Hz), not {window:g} s"
            )
        rate = self.sample_rate
        return num_samples(window, rate) / rate, num_samples(hop, rate) / rate

    @torch.inference_mode()
    def predict_batch(self, inputs: Tensor, *, tta: bool = False) -> BatchPrediction:
        """Predicts prepared model inputs: images `[N, C, H, W]` (transformed as in validation)
        or waveforms `[N, T]` at `sample_rate`; with `tta`, averaged with their augmented copies."""
        dims, shape = (2, "waveforms [N, T]") if self.audio else (4, "images [N, C, H, W]")
        if not isinstance(inputs, Tensor) or not inputs.is_floating_point():
            given = f"{inputs.dtype} tensor" if isinstance(inputs, Tensor) else type(inputs).__name__
            raise SesemiError(
                f"predict_batch takes float {shape} prepared as in validation, not a {given}; "
                "predict() reads files and scales integer waveforms"
            )
        if inputs.dim() != dims:
            raise SesemiError(f"predict_batch takes {shape}, not a tensor of shape {tuple(inputs.shape)}")
        if not self.audio and inputs.shape[1] != self.channels:
            raise SesemiError(
                f"predict_batch takes images of {self.channels} channels, as the evaluation transform makes "
                f"them, not a tensor of shape {tuple(inputs.shape)}"
            )
        augment = self.augmentation() if tta else None
        inputs = inputs.to(self.device, torch.float32)
        features = self.model.backbone(augment(inputs) if augment else inputs)
        probabilities = self.model.head(features).float().softmax(dim=1)
        detectors = getattr(self.model.head, "inlier_probabilities", None)
        inliers = detectors(features).float() if detectors is not None else None
        features = features.float()
        if augment:
            probabilities, features = augment.mean(probabilities), augment.mean(features)
            inliers = augment.mean(inliers) if inliers is not None else None
        scores, indices = probabilities.max(dim=1)
        labels = [self.labels[i] for i in indices.tolist()]
        inliers = inliers.cpu() if inliers is not None else None
        return BatchPrediction(probabilities.cpu(), labels, scores.cpu(), features.cpu(), inliers)

    def predict(self, inputs: Inputs, **options: Any) -> list[Prediction]:
        """Predicts files or waveforms, one `Prediction` per input, in input order.

        `inputs` and `options` are those of `predict_each`, which makes the predictions one at
        a time, for a table of more files than memory holds (`write_predictions` takes them so).
        """
        return list(self.predict_each(inputs, **options))

    def predict_each(
        self,
        inputs: Inputs,
        *,
        batch_size: int = 64,
        tta: bool = False,
        embeddings: bool = False,
        window_seconds: float | None = None,
        hop_seconds: float | None = None,
        num_workers: int = 0,
        on_error: str = "skip",
        progress: Callable[[int, int], None] | None = None,
    ) -> Iterator[Prediction]:
        """Predicts files or waveforms, yielding one `Prediction` per input in input order as
        soon as it and those before it are made; the arguments are checked (and a missing input
        refused) at the call, before the first is asked for.

        Args:
            inputs: A file, a folder (searched recursively for files of the model's modality),
                a `.txt` file listing one path per line (relative to its folder; `#` comments),
                a sequence of paths, (images) PIL images, or (audio) a sequence of waveforms
                `[T]` at `sample_rate` (floats in [-1, 1]; integers are scaled as PCM files
                are, int16 by 2**15). An input in memory is named by its position.
            batch_size: Inputs (audio windows) per forward pass.
            tta: Also predict each input's augmented copies (`augmentation()`) and average.
            embeddings: Keep the backbone's features (`Prediction.embedding`).
            window_seconds: Audio window length (default: the run's clip length).
            hop_seconds: Audio window spacing (default: half a window).
            num_workers: Loader processes that decode files (0: this process).
            on_error: "skip" an unreadable input (its prediction carries the `error`, with a
                warning) or "raise" a `SesemiError` naming it.
            progress: Called as `progress(done, total)` as inputs are predicted.
        """
        if on_error not in ("skip", "raise"):
            raise SesemiError(f"on_error must be 'skip' or 'raise', not {on_error!r}")
        if batch_size < 1:
            raise SesemiError(f"batch_size must be at least 1, not {batch_size}")
        if num_workers < 0:
            raise SesemiError(f"num_workers must be 0 (this process) or more, not {num_workers}")
        if tta:
            self.augmentation()  # refused now (a model trained without flips), not after the first batch
        items = self.inputs(inputs)
        window = hop = None
        if self.audio:
            window, hop = self.windowing(window_seconds, hop_seconds)
            rate = self.sample_rate
            read = partial(_read_windows, rate, num_samples(window, rate), num_samples(hop, rate))
        else:
            read = partial(_read_image, self.transform, input_side(self.transform), self.bit_depth)
        loader = DataLoader(_Inputs(items, read), batch_size=None, num_workers=num_workers)
        return self._predicted(items, loader, batch_size, tta, embeddings, on_error, progress, window, hop)

    def _predicted(
        self,
        items: list[Path | Image.Image | Tensor],
        loader: DataLoader,
        batch_size: int,
        tta: bool,
        embeddings: bool,
        on_error: str,
        progress: Callable[[int, int], None] | None,
        window: float | None,
        hop: float | None,
    ) -> Iterator[Prediction]:
        """`predict_each`'s predictions, from its loader of `items`."""
        names = [item if isinstance(item, Path) else index for index, item in enumerate(items)]
        following = 0  # the inputs yielded so far: the index of the next to yield
        ready: dict[int, Prediction] = {}  # made, waiting for those before them
        parts: dict[int, list[tuple[Tensor, ...]]] = {}  # each input's window predictions so far
        seconds: dict[int, float | None] = {}  # each recording's length, until it is predicted
        unreadable = UnreadableLog("input")

        def finish(index: int, prediction: Prediction) -> None:
            ready[index] = prediction
            if progress is not None:
                progress(len(ready) + following, len(items))

        def in_order() -> Iterator[Prediction]:
            """The predictions made whose inputs come next, in input order."""
            nonlocal following
            while following in ready:
                yield ready.pop(following)
                following += 1

        def readable() -> Iterator[tuple[int, Tensor]]:
            for index, outcome in loader:  # (windows, seconds), or why the input cannot be read
                if not isinstance(outcome, str):
                    windows, seconds[index] = outcome
                    yield index, windows
                elif on_error == "raise":
                    item = items[index]
                    shown = item if isinstance(item, Path) else f"{'waveform' if isinstance(item, Tensor) else 'image'} {index}"
                    raise SesemiError(f"cannot read {shown} ({outcome}); remove it or set on_error=skip")
                else:
                    unreadable.skip(names[index], outcome)
                    finish(index, Prediction(names[index], error=outcome))

        for owners, batch in _batches(readable(), batch_size):
            output = self.predict_batch(batch, tta=tta)
            sizes = [size for _, size, _ in owners]
            inliers = output.inlier_probabilities
            chunks = zip(
                output.probabilities.split(sizes),
                output.embeddings.split(sizes),
                inliers.split(sizes) if inliers is not None else [None] * len(sizes),
                strict=True,
            )
            for (index, _, last), chunk in zip(owners, chunks, strict=True):
                parts.setdefault(index, []).append(chunk)
                if last:
                    prediction = self._prediction(
                        names[index], parts.pop(index), embeddings, seconds=seconds.pop(index), window=window, hop=hop
                    )
                    finish(index, prediction)
            yield from in_order()
        unreadable.close()
        yield from in_order()  # inputs none of which could be read, after the last batch

    def _prediction(
        self,
        name: Path | int,
        parts: list[tuple[Tensor, ...]],
        embeddings: bool,
        seconds: float | None,
        window: float | None,
        hop: float | None,
    ) -> Prediction:
        """One input's prediction from the predictions of its windows."""
        windows = torch.cat([chunk for chunk, _, _ in parts])
        probabilities = windows.mean(dim=0)
        score, index = probabilities.max(dim=0)
        features = torch.cat([f for _, f, _ in parts]) if embeddings else None
        inliers = torch.cat([q for _, _, q in parts]).mean(dim=0) if parts[0][2] is not None else None
        return Prediction(
            name,
            label=self.labels[int(index)],
            score=float(score),
            probabilities=probabilities,
            windows=windows if self.audio else None,
            embedding=features.mean(dim=0) if features is not None else None,
            window_embeddings=features if self.audio else None,
            out_of_class=round(1.0 - float(inliers[index]), 6) if inliers is not None else None,
            seconds=seconds,
            window_seconds=window,
            hop_seconds=hop,
        )

    def inputs(self, inputs: Inputs) -> list[Path | Image.Image | Tensor]:
        """What `predict` would read of `inputs` (see there), as a list of files, images or
        waveforms, which `predict` takes as it is; a missing input, or a folder with no file of
        the model's modality, is refused here, before anything is read."""
        if isinstance(inputs, (str, os.PathLike)):
            return self._files(Path(inputs))
        if isinstance(inputs, Image.Image):
            inputs = [inputs]
        if isinstance(inputs, Tensor):
            raise SesemiError("predict takes files or a sequence of waveforms; predict_batch takes a tensor")
        items = list(inputs)
        if not any(isinstance(item, Tensor) for item in items):
            kinds = (str, os.PathLike) if self.audio else (str, os.PathLike, Image.Image)
            wrong = [item for item in items if not isinstance(item, kinds)]
            if wrong:
                takes = "paths or waveform tensors" if self.audio else "paths or PIL images (Image.fromarray for an array)"
                raise SesemiError(f"predict takes {takes}, not {type(wrong[0]).__name__}")
            return [item if isinstance(item, Image.Image) else Path(item) for item in items]
        if not self.audio:
            raise SesemiError("waveforms are for audio models; predict image files, or prepared images with predict_batch")
        if not all(isinstance(item, Tensor) and item.dim() == 1 for item in items):
            raise SesemiError(f"waveforms must all be 1-D tensors [T] at the model's {self.sample_rate} Hz")
        return items

    def _files(self, path: Path) -> list[Path]:
        """A file of the model's modality, the files under a folder, or those a text file lists."""
        kind, accepts = ("audio", is_audio_file) if self.audio else ("image", is_image_file)
        if not path.exists():
            raise SesemiError(f"input {path} does not exist")
        if path.is_dir():
            passed: list[str] = []
            found = [Path(file) for file in list_files(path, accepts, passed=passed)]  # as training lists a folder
            if not self.audio:
                warn_unread_photos(passed, [path])
            if not found:
                raise SesemiError(f"no {kind} files under {path}{left_out_note(passed, [path], kind + ' file')}")
            return found
        if not path.is_file():  # a FIFO would block the read
            raise SesemiError(f"input {path} is not a regular file or a folder")
        if accepts(path):
            return [path]
        if path.suffix.lower() not in LIST_SUFFIXES:
            raise SesemiError(f"input {path} is not an {kind} file, a folder, or a .txt file listing paths")
        lines = [line.strip() for line in path.read_text(encoding="utf-8-sig", errors="surrogateescape").splitlines()]
        paths = [path.parent / line for line in lines if line and not line.startswith("#")]
        missing = [p for p in paths if not p.is_file()]
        if missing:
            what = "is a folder" if missing[0].is_dir() else "does not exist"
            verb = "is not a file" if len(missing) == 1 else "are not files"
            raise SesemiError(f"{counted(len(missing), 'path')} listed in {path} {verb}, e.g. {missing[0]} ({what})")
        if not paths:
            raise SesemiError(f"{path} lists no files")
        return paths


def _cells(probabilities: Tensor, labels: Sequence[str]) -> list[str]:
    """`label, score, p_1, ..., p_C` of one row."""
    score, index = probabilities.max(dim=0)
    return [labels[int(index)], f"{float(score):.6g}", *(f"{float(p):.6g}" for p in probabilities)]


def _header(labels: Sequence[str], fixed: Sequence[str], flagged: bool) -> list[str]:
    """The table's columns: `fixed`, one per class (`probability_columns`), and `out_of_class`
    last when `flagged`."""
    extra = ["out_of_class"] if flagged else []
    return [*fixed, *probability_columns(labels, [*fixed, *extra]), *extra]


def _rows(
    prediction: Prediction, labels: Sequence[str], per_window: bool, flagged: bool
) -> tuple[list[list[str]], Tensor | None]:
    """A readable prediction's rows of the table (one, or with `per_window` one per audio
    window; `flagged`: with its `out_of_class`) and its embeddings' rows `[R, F]`, if any."""
    path = str(prediction.input)
    if per_window and prediction.windows is not None:
        rows = [
            [path, f"{start:.3f}", f"{end:.3f}", *_cells(row, labels)]
            for row, (start, end) in zip(prediction.windows, prediction.window_spans(), strict=True)
        ]
        return rows, prediction.window_embeddings
    row = [path, *(["", ""] if per_window else []), *_cells(prediction.probabilities, labels)]
    if flagged:
        row.append(f"{prediction.out_of_class:.6g}" if prediction.out_of_class is not None else "")
    return [row], prediction.embedding[None] if prediction.embedding is not None else None


def check_predictions_folder(folder: str | os.PathLike, overwrite: bool = False) -> None:
    """Refuses, before anything is predicted, a folder that cannot be written, or whose
    `predictions.csv`, `embeddings.npy` or `unreadable.csv` may not be replaced: only with
    `overwrite`, and only in a folder sesemi made (marked `predictions`)."""
    folder = Path(folder)
    if os.path.lexists(folder) and not folder.is_dir():
        raise SesemiError(f"{folder} is a file, not a folder; choose another --save-dir")
    nearest = next(path for path in (folder, *folder.absolute().parents) if path.exists())
    if not nearest.is_dir():  # `out/notes.txt/predictions`
        raise SesemiError(f"{nearest} is a file, not a folder; choose another --save-dir")
    if not os.access(nearest, os.W_OK | os.X_OK):
        raise SesemiError(f"cannot write to {nearest} (it is read-only for this user); choose another --save-dir")
    existing = [folder / name for name in (PREDICTIONS_FILE, EMBEDDINGS_FILE, UNREADABLE_FILE) if os.path.lexists(folder / name)]
    if existing and not owned(folder, "predictions"):
        raise SesemiError(
            f"will not overwrite {existing[0]}: {folder} was not made by sesemi (no {MARKER} marker of its own); "
            "choose another --save-dir"
        )
    if existing and not overwrite:
        raise SesemiError(f"{existing[0]} exists; pass --force (overwrite=True) to overwrite it")


def write_predictions(
    predictions: Iterable[Prediction],
    folder: str | os.PathLike,
    labels: Sequence[str],
    per_window: bool = False,
    overwrite: bool = True,
) -> Written:
    """Writes `predictions.csv`, `embeddings.npy` (the features, row for row) when the
    predictions carry embeddings, and `unreadable.csv` (`path, error`) when some inputs could
    not be read; returns their paths (None for a file not written) and what they hold.

    The table has `path, label, score`, a probability column per class (`labels`; see
    `probability_columns`), and `out_of_class` last for a model with one-vs-all detectors; a
    row per input read, or with `per_window` per audio window, with its `start` and `end` in
    seconds (`Prediction.window_spans`) after `path`. Each prediction is written as it comes and
    not kept: `Predictor.predict_each`'s, of more files than memory holds, stream through. Files
    are renamed into place when complete, and replaced (`overwrite`) only in a folder sesemi
    made (`check_predictions_folder`); an earlier `embeddings.npy` goes when there are none now.
    """
    output = Path(folder)
    check_predictions_folder(output, overwrite)  # before the first prediction is asked for
    claim(output, "predictions")
    table, embeddings, unreadable = (output / name for name in (PREDICTIONS_FILE, EMBEDDINGS_FILE, UNREADABLE_FILE))
    fixed = ["path", *(["start", "end"] if per_window else []), "label", "score"]
    read = failed = 0
    outliers: int | None = None
    try:
        with ExitStack() as files, tempfile.TemporaryFile(dir=output) as vectors:
            # A file name that is not UTF-8 holds surrogates (os.fsdecode); they become its bytes again.
            writer = csv.writer(
                files.enter_context(open_atomically(table, "w", errors="surrogateescape", newline="")), lineterminator="\n"
            )
            errors: Any = None  # unreadable.csv's writer, from the first unreadable input
            flagged = False  # whether the table has an out_of_class column
            shape: tuple[int, int] = (0, 0)  # of the embeddings written to `vectors`
            for prediction in predictions:
                if prediction.error is not None:
                    if errors is None:
                        opened = open_atomically(unreadable, "w", errors="surrogateescape", newline="")
                        errors = csv.writer(files.enter_context(opened), lineterminator="\n")
                        errors.writerow(["path", "error"])
                    errors.writerow([str(prediction.input), prediction.error])
                    failed += 1
                    continue
                if read == 0:  # one model's predictions: the first read says which columns they all have
                    flagged = prediction.out_of_class is not None and not (per_window and prediction.windows is not None)
                    outliers = 0 if prediction.out_of_class is not None else None
                    writer.writerow(_header(labels, fixed, flagged))
                read += 1
                if outliers is not None:
                    outliers += bool(prediction.looks_out_of_class)
                cells, vector = _rows(prediction, labels, per_window, flagged)
                writer.writerows(cells)
                if vector is not None:
                    rows = vector.numpy().astype("<f4", copy=False)
                    vectors.write(rows.tobytes())
                    shape = (shape[0] + len(rows), rows.shape[1])
            if read == 0:  # no input read: the columns of a table without detectors
                writer.writerow(_header(labels, fixed, flagged=False))
            if shape[0]:
                vectors.seek(0)
                with open_atomically(embeddings, "wb") as file:
                    header = {"descr": "<f4", "fortran_order": False, "shape": shape}
                    np.lib.format.write_array_header_1_0(file, header)
                    shutil.copyfileobj(vectors, file)
            else:
                embeddings.unlink(missing_ok=True)  # it belonged to earlier predictions
            if not failed:
                unreadable.unlink(missing_ok=True)
    except OSError as error:
        raise SesemiError(
            f"cannot write predictions to {output} ({error.strerror or error}); choose another --save-dir"
        ) from None
    return Written(table, embeddings if shape[0] else None, unreadable if failed else None, read, failed, outliers)


def probability_columns(labels: Sequence[str], fixed: Sequence[str]) -> list[str]:
    """A column name per class: its own, or `p_<class>` for a class named as one of the `fixed`
    columns (`label`, `path`, ...), so that no two columns share a name."""
    taken, columns = {*fixed, *labels}, []
    for label in labels:
        name = label
        if label in fixed:
            name = f"p_{label}"
            while name in taken:
                name = f"p_{name}"
        taken.add(name)
        columns.append(name)
    return columns


class Written(NamedTuple):
    """The files `write_predictions` wrote, and what they hold."""

    table: Path  # predictions.csv
    embeddings: Path | None  # embeddings.npy
    unreadable: Path | None  # unreadable.csv
    read: int = 0  # inputs predicted
    failed: int = 0  # inputs that could not be read
    out_of_class: int | None = None  # inputs that look out of class; None: a model without detectors

"""Predictions of many files as a table, for `sesemi inference` and `TrainingRun.predict`.

A `Predictor` (sesemi/ops/inference.py) does the reading, windowing and forward passes; this
module finds the inputs (a file, a folder, or a text file that lists paths), reports progress,
keeps the backbone's features when embeddings are asked for, and lays the rows out as
`path, [start, end,] label, score, <one probability column per class>`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from sesemi.errors import SesemiError
from sesemi.ops.inference import Predictor, find_inputs

LIST_SUFFIXES = (".txt", ".lst", ".list")


def read_inputs(inputs: str | Path, predictor: Predictor) -> list[Path]:
    """The files INPUT names: a file of the model's kind, a folder (searched recursively), or a
    text file with one path per line (relative paths are taken from the text file's folder)."""
    inputs = Path(inputs)
    if not inputs.exists():
        raise SesemiError(f"input {inputs} does not exist")
    if inputs.is_dir() or predictor.accepts(inputs):
        return find_inputs(inputs, predictor)
    if inputs.suffix.lower() not in LIST_SUFFIXES:
        kind = "audio" if predictor.audio else "image"
        raise SesemiError(
            f"input {inputs} is not an {kind} file, a folder, or a .txt file listing paths"
        )
    lines = [line.strip() for line in inputs.read_text().splitlines()]
    paths = [inputs.parent / line for line in lines if line and not line.startswith("#")]
    missing = [path for path in paths if not path.is_file()]
    if missing:
        raise SesemiError(
            f"{len(missing)} files listed in {inputs} do not exist, e.g. {missing[0]}"
        )
    if not paths:
        raise SesemiError(f"{inputs} lists no files")
    return paths


@dataclass
class Predictions:
    """Per-file results, in input order; None for files that could not be read.

    Attributes:
        paths: The files.
        windows: Class probabilities `[W, C]` per file (an image is one window).
        features: Backbone features `[W, F]` per file, when asked for.
    """

    paths: list[Path]
    windows: list[Tensor | None]
    features: list[Tensor | None] | None


def predict(
    predictor: Predictor,
    paths: Sequence[Path],
    batch_size: int = 64,
    embeddings: bool = False,
    progress: Callable[[int], None] | None = None,
    tta: bool = False,
    **options,
) -> Predictions:
    """Predicts `paths` in chunks of `batch_size` files, calling `progress(files_done)` after each.

    Takes the options of `Predictor.predict_windows` (windows, workers, on_error). With `tta`,
    the features, like the probabilities, are the mean over each input's augmented copies.
    """
    windows: list[Tensor | None] = []
    features: list[Tensor | None] = []
    captured: list[Tensor] = []
    hook = None
    if embeddings:  # forward() is head(backbone(x)): the backbone's outputs are the features
        average = predictor.augmentation().mean if tta else (lambda out: out)
        hook = predictor.model.backbone.register_forward_hook(
            lambda module, args, out: captured.append(average(out).detach().cpu())
        )
    try:
        for start in range(0, len(paths), batch_size):
            chunk = predictor.predict_windows(
                paths[start : start + batch_size], batch_size, tta=tta, **options
            )
            windows += chunk
            if embeddings:
                counts = [len(w) for w in chunk if w is not None]
                rows = iter(torch.cat(captured).split(counts) if captured else ())
                features += [next(rows) if w is not None else None for w in chunk]
                captured.clear()
            if progress is not None:
                progress(len(windows))
    finally:
        if hook is not None:
            hook.remove()
    return Predictions(list(paths), windows, features if embeddings else None)


def table(
    predictions: Predictions,
    predictor: Predictor,
    per_window: bool = False,
    window: float = 0.0,
    hop: float = 0.0,
) -> tuple[pd.DataFrame, np.ndarray | None]:
    """The rows of `predictions.csv` and the embeddings that go with them, row for row.

    One row per file (probabilities and features averaged over its windows), or with
    `per_window` one per window with its `start` and `end` in seconds (`window`, `hop`).
    """
    rows, vectors = [], []
    features = predictions.features or [None] * len(predictions.paths)
    for path, probabilities, feature in zip(
        predictions.paths, predictions.windows, features, strict=True
    ):
        if probabilities is None:
            continue
        if not per_window:
            probabilities = probabilities.mean(dim=0, keepdim=True)
            feature = feature.mean(dim=0, keepdim=True) if feature is not None else None
        for i, row in enumerate(probabilities):
            span = (
                {"start": round(i * hop, 3), "end": round(i * hop + window, 3)}
                if per_window
                else {}
            )
            score, index = row.max(dim=0)
            rows.append(
                {
                    "path": str(path),
                    **span,
                    "label": predictor.labels[int(index)],
                    "score": float(score),
                    **dict(zip(predictor.labels, row.tolist(), strict=True)),
                }
            )
        if feature is not None:
            vectors.append(feature.numpy())
    embeddings = np.concatenate(vectors) if predictions.features is not None and vectors else None
    return pd.DataFrame(rows), embeddings

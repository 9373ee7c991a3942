"""`pseudo_dataset`: a trained teacher labels unlabeled images or recordings, for noisy-student
training.

    sesemi pseudo-label runs/digits/<time>/checkpoints/best.ckpt data/digits

writes `<data_root>/pseudo/{labels.csv,dataset.json}` (see sesemi/datasets/pseudo.py), which a
student reads with the `pseudo` dataset (see configs/digits_noisy_student.yaml).

Xie et al., "Self-training with Noisy Student improves ImageNet classification", CVPR 2020,
https://arxiv.org/abs/1911.04252
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from omegaconf import OmegaConf
from torch import Tensor

from sesemi.datasets.images import (
    class_samples,
    is_image_file,
    same_name,
    subset_dirs,
    unlabeled_samples,
)
from sesemi.datasets.pseudo import check_output, write_pseudo_dataset
from sesemi.errors import SesemiError, printable, retired
from sesemi.learners.trained import TrainedModel
from sesemi.logs import counted
from sesemi.predictor import Prediction, Predictor
from sesemi.transforms.audio import is_audio_file

logger = logging.getLogger(__name__)


def select(probabilities: Tensor, threshold: float = 0.0, balance: bool = False, per_class: int | None = None) -> Tensor:
    """The rows of `probabilities` `[N, C]` to keep as pseudo-labels, in their original order.

    Rows whose top probability is below `threshold` are dropped. With `balance`, each class keeps
    at most its `per_class` most confident rows (default: the smallest non-empty class count).
    """
    confidence, label = probabilities.max(dim=1)
    kept = torch.nonzero(confidence >= threshold).squeeze(1)
    if not balance or len(kept) == 0:
        return kept
    counts = torch.bincount(label[kept], minlength=probabilities.shape[1])
    cap = per_class if per_class is not None else int(counts[counts > 0].min())
    chosen = []
    for c in range(probabilities.shape[1]):
        members = kept[label[kept] == c]
        chosen.append(members[confidence[members].argsort(descending=True)[:cap]])
    return torch.cat(chosen).sort().values


def _plain(value: Any) -> Any:
    """A config value as plain Python (for dataset.json and the dataset builders)."""
    return OmegaConf.to_container(value, resolve=True) if OmegaConf.is_config(value) else value


TRUSTWORTHY = 0.7  # on spoken digits sure pseudo-labels 82-90% right gained, on instruments 42-45% lost


def check_teacher(
    predictor: Predictor,
    data_root: str | Path,
    val_subset: str | None,
    classes: Sequence[str],
    accept: Callable[[str], bool],
    kind: str,
    threshold: float,
    **predicting: Any,
) -> dict[str, Any] | None:
    """How often the teacher is right about the validation files it is sure of (score at least
    `threshold`, and at least 0.8), a stand-in for its pseudo-labels' precision; a warning when
    a student would learn almost as many errors as labels, or when the teacher is sure of no
    file at all. None without a validation folder.
    `predicting` goes to `Predictor.predict` (batch size, TTA, workers, on_error)."""
    if val_subset is None or not (Path(data_root) / val_subset).is_dir():
        return None
    samples, _ = class_samples(subset_dirs(data_root, val_subset), accept, kind, classes)
    sure = max(threshold, 0.8)
    predictions = predictor.predict([path for path, _ in samples], **predicting)
    right = [
        p.label == classes[label]
        for p, (_, label) in zip(predictions, samples, strict=True)
        if p.error is None and p.score >= sure  # an unreadable file has no score
    ]
    precision = sum(right) / len(right) if right else None
    if samples and not right:
        logger.warning(
            "the teacher is %g sure of none of the %d validation files: its pseudo-labels would be "
            "guesses; train a better teacher first (docs/methods/noisy_student.md)",
            sure, len(samples),
        )
    elif precision is not None and precision < TRUSTWORTHY:
        logger.warning(
            "the teacher is right about only %.0f%% of the %d validation files it is %g sure of: a student "
            "would learn many wrong pseudo-labels and may end below it (docs/methods/noisy_student.md)",
            100 * precision, len(right), sure,
        )
    return {"files": len(samples), "sure": len(right), "threshold": sure, "sure_right": precision}


def _labeled_samples(
    data_root: str | Path, subset: str, classes: Sequence[str], accept: Callable[[str], bool], kind: str
) -> list[tuple[str, int]]:
    """`(path, index in classes)` of the labeled files, refused unless their class folders are
    the teacher's `classes`: the pseudo-labels are written under the teacher's names, and the
    labeled files under their folders' (a teacher of `high, low` would label `treble, bass`
    wrongly, in silence)."""
    samples, found = class_samples(subset_dirs(data_root, subset), accept, kind)
    if sorted(map(same_name, found)) != sorted(map(same_name, classes)):
        raise SesemiError(printable(
            f"the teacher's classes ({', '.join(classes)}) are not the class folders of {Path(data_root) / subset} "
            f"({', '.join(found)}); use the data the teacher was trained on"
        ))
    index = {same_name(name): position for position, name in enumerate(classes)}
    return [(path, index[same_name(found[label])]) for path, label in samples]


def pseudo_dataset(
    checkpoint_path: str | Path,
    data_root: str | Path,
    output_dir: str | Path | None = None,
    unlabeled_subset: str | Sequence[str] | None = "unlabeled",
    labeled_subset: str | None = "train",
    val_subset: str | None = "val",
    include_labeled: bool = True,
    hflip_tta: bool = False,
    threshold: float = 0.0,
    balance: bool = False,
    per_class: int | None = None,
    soft_labels: bool = True,
    batch_size: int = 256,
    num_workers: int = 0,
    device: str = "auto",
    on_error: str = "skip",
    overwrite: bool = False,
    allow: Sequence[str] = (),
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    """Labels the unlabeled images (or recordings, for an audio teacher) with a teacher and
    writes a `pseudo` data set.

    Args:
        checkpoint_path: The teacher: a run folder or a checkpoint in one.
        data_root: The data set's folder (the standard layout: train/<class>/, unlabeled/).
        output_dir: Where `labels.csv` and `dataset.json` go; default `<data_root>/pseudo`.
        unlabeled_subset: The folder(s) under `data_root` with the files to label, searched
            recursively; a name, a list of names, or None for all of `data_root`. Files of the
            labeled and validation folders are never labeled (nor is the output).
        labeled_subset: The labeled folder (`<class>/<file>`) under `data_root`, whose class
            folders must be the teacher's classes: the files `include_labeled` adds; None: none.
        val_subset: A labeled folder (`<class>/<file>`) under `data_root` on which to check the
            teacher first: how often it is right about the files it is sure of (`threshold`, at
            least 0.8); a warning when that is under `TRUSTWORTHY`. None, or no such folder: no check.
        include_labeled: Whether the output also lists the labeled files (one-hot, confidence
            1), so the student's supervised set is labels + pseudo-labels.
        hflip_tta: Average each prediction over test-time copies: an image's horizontal flip
            (refused for a teacher trained without flips, such as digits or text), a recording
            shifted in time.
        threshold: Pseudo-labels less confident (top class probability) than this are dropped.
        balance: Keep at most the `per_class` most confident pseudo-labels of each class.
        per_class: That cap; None: the smallest non-empty class count after thresholding.
        soft_labels: The `pseudo` dataset yields the teacher's probabilities, not the top class.
        batch_size: Files per inference batch.
        num_workers: Data loader worker processes (0 reads in the main process).
        device: "auto" (a GPU if there is one), "cpu", "cuda", "cuda:1", ...
        on_error: "skip" unreadable files (with a warning) or "raise" on the first one.
        overwrite: Replace the files of an earlier `pseudo_dataset` (only in a folder it made).
        allow: Module prefixes whose classes the teacher may build besides the trusted ones
            (`sesemi trust`), e.g. `["my_project"]`.
        progress: Called as `progress(done, total)` as the pool's files are labeled.

    Returns:
        What `dataset.json` holds: classes, soft_labels, modality, counts, the check on
        `val_subset` (`teacher_on_val`) and settings.
    """
    output_dir = Path(data_root) / "pseudo" if output_dir is None else output_dir
    settings = {k: str(v) if isinstance(v, Path) else _plain(v) for k, v in locals().items() if k != "progress"}
    if not 0.0 <= threshold <= 1.0:
        raise SesemiError(f"threshold must be between 0 and 1, not {threshold}")
    if per_class is not None and per_class < 1:
        raise SesemiError(f"per_class must be at least 1 (or null), not {per_class}")
    if per_class is not None and not balance:
        raise SesemiError("per_class caps each class's pseudo-labels with balance=true; set balance=true too")
    if include_labeled and labeled_subset is None:
        raise SesemiError("include_labeled needs labeled_subset: the folder of labeled files")
    if not Path(data_root).is_dir():
        raise SesemiError(f"data_root {data_root} does not exist")
    check_output(output_dir, overwrite)  # after the input, whose error --force would not mend

    teacher = TrainedModel.from_run(checkpoint_path, allow=allow)
    # what messages call the inputs, in class folders and loose; which files are inputs
    kind, loose, accept = ("audio file", "audio", is_audio_file) if teacher.audio else ("image", "image", is_image_file)
    classes = list(teacher.labels)  # the order of its probabilities
    labeled = _labeled_samples(data_root, labeled_subset, classes, accept, kind) if labeled_subset else []
    predictor = Predictor(teacher, device)  # the teacher run's evaluation transform
    settings["image_transform"] = _plain(teacher.eval_transform_config)
    modality = {"modality": "audio", "sample_rate": predictor.sample_rate} if teacher.audio else {"modality": "image"}
    predicting = {"batch_size": batch_size, "tta": hflip_tta, "num_workers": num_workers, "on_error": on_error}
    checked = check_teacher(predictor, data_root, val_subset, classes, accept, kind, threshold, **predicting)

    files = [path for path, _ in unlabeled_samples(subset_dirs(data_root, _plain(unlabeled_subset)), accept, loose)]
    # the labels, the files the teacher is checked on and an earlier output are not the pool
    # (each resolved once: a pool of 50,000 files took 5 s resolving them against each folder)
    apart = [Path(os.path.realpath(Path(data_root) / name)) for name in (labeled_subset, val_subset) if name]
    apart.append(Path(os.path.realpath(output_dir)))
    files = [path for path in files if not any(map(Path(os.path.realpath(path)).is_relative_to, apart))]
    # A row of probabilities a file, filled as the predictions stream in: a pool of a million
    # files takes its paths and this table, not a million predictions.
    probabilities = torch.zeros(len(files), len(classes))
    readable = torch.zeros(len(files), dtype=torch.bool)
    first_error: Prediction | None = None
    for index, prediction in enumerate(predictor.predict_each(files, progress=progress, **predicting)):
        if prediction.error is None:
            probabilities[index], readable[index] = prediction.probabilities, True
        elif first_error is None:
            first_error = prediction
    if first_error is not None and not readable.any():
        raise SesemiError(printable(
            f"none of the {counted(len(files), kind)} to label could be read, e.g. {first_error.input} ({first_error.error})"
        ))
    read = readable.nonzero().squeeze(1)
    probabilities = probabilities[read]
    kept = select(probabilities, threshold, balance, per_class)
    confident = int((probabilities.max(dim=1).values >= threshold).sum())

    paths = [str(Path(files[i])) for i in read[kept].tolist()]  # as the predictions name them
    probabilities = probabilities[kept]
    unreadable = len(files) - len(read)
    if include_labeled:  # the labeled files, one-hot: those the predictor reads (as it reads the others)
        seen = predictor.predict([path for path, _ in labeled], **predicting)
        unreadable += sum(prediction.error is not None for prediction in seen)
        labeled = [sample for sample, prediction in zip(labeled, seen, strict=True) if prediction.error is None]
        paths = [path for path, _ in labeled] + paths
        one_hot = torch.eye(len(classes))[[label for _, label in labeled]]
        probabilities = torch.cat([one_hot, probabilities])
    per_class_counts = torch.bincount(probabilities.argmax(dim=1), minlength=len(classes)).tolist()
    counts = {
        "files": len(paths),
        "labeled": len(paths) - len(kept),
        "pseudo_labeled": len(kept),
        "below_threshold": len(read) - confident,
        "dropped_by_balancing": confident - len(kept),
        "unreadable": unreadable,
        "per_class": dict(zip(classes, per_class_counts, strict=True)),
    }
    empty = [name for name, count in counts["per_class"].items() if count == 0]
    if empty:
        logger.warning("nothing of class(es) %s; lower the threshold or train a better teacher", ", ".join(empty))
    info = {**modality, "counts": counts, "teacher_on_val": checked, "settings": settings}
    write_pseudo_dataset(output_dir, paths, probabilities, classes, soft_labels, info, overwrite)
    return {"classes": classes, "soft_labels": soft_labels, **info}


if __name__ == "__main__":
    raise retired("python -m sesemi.ops.pseudo_dataset", "`sesemi pseudo-label TEACHER DATA_ROOT`")

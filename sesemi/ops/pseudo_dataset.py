"""`pseudo_dataset`: a trained teacher labels unlabeled images, for noisy-student training.

    open_sesemi -cn ops/pseudo_dataset data_root=./data/digits \
        checkpoint_path=runs/digits/<time>/checkpoints/best.ckpt

writes `<data_root>/pseudo/{labels.csv,dataset.json}` (see sesemi/datasets/pseudo.py), which a
student reads with the `pseudo` dataset (see configs/digits_noisy_student.yaml).

Xie et al., "Self-training with Noisy Student improves ImageNet classification", CVPR 2020,
https://arxiv.org/abs/1911.04252
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf
from torch import Tensor
from torch.utils.data import DataLoader
from tqdm import tqdm

from sesemi.checkpoints import load_weights, read_checkpoint
from sesemi.datasets import ImageDataset, dataset
from sesemi.datasets.pseudo import INFO_FILE, LABELS_FILE, write_pseudo_dataset
from sesemi.errors import SesemiError
from sesemi.learners.classifier import Classifier

logger = logging.getLogger(__name__)


def load_teacher(checkpoint_path: str | Path) -> Classifier:
    """Rebuilds the Classifier a sesemi checkpoint was saved from, with its weights, in eval mode."""
    checkpoint = read_checkpoint(checkpoint_path)
    hparams = checkpoint.get("hyper_parameters", {}).get("hparams")
    if not isinstance(hparams, Mapping):
        raise SesemiError(
            f"{checkpoint_path} was not saved by a sesemi Classifier (it has no hparams)"
        )
    model = Classifier(hparams)
    load_weights(model, checkpoint_path, strict=True)
    return model.eval()


def run_config_transform(checkpoint_path: str | Path) -> Any:
    """The evaluation transform config of the run that saved a checkpoint.

    It is read from `<run>/config.yaml` for `<run>/checkpoints/<name>.ckpt`: the validation
    (else test) loader's `image_transform`.
    """
    config_path = Path(checkpoint_path).resolve().parent.parent / "config.yaml"
    if not config_path.is_file():
        raise SesemiError(
            f"the evaluation transform comes from the teacher run's {config_path}, which does "
            "not exist; set image_transform"
        )
    config = OmegaConf.load(config_path)
    for stage in ("val", "test"):
        transform = OmegaConf.select(config, f"data.{stage}.dataset.image_transform")
        if transform is not None:
            return transform
    raise SesemiError(f"{config_path} has no validation or test transform; set image_transform")


def select(
    probabilities: Tensor,
    threshold: float = 0.0,
    balance: bool = False,
    per_class: int | None = None,
) -> Tensor:
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


@torch.inference_mode()
def predict(
    model: torch.nn.Module,
    data: ImageDataset,
    batch_size: int,
    num_workers: int,
    device: torch.device,
    hflip_tta: bool,
) -> tuple[list[int], Tensor]:
    """The class probabilities for the images of `data`, whose labels are their sample indices.

    Returns the indices of the samples read (an unreadable file is skipped by the dataset, so its
    index is missing) and their probabilities `[N, C]`, averaged over the image and its
    horizontal flip with `hflip_tta`.
    """
    loader = DataLoader(
        data, batch_size=batch_size, num_workers=num_workers, pin_memory=device.type == "cuda"
    )
    model.to(device)
    indices: list[int] = []
    outputs: list[Tensor] = []
    for images, index in tqdm(loader, desc="pseudo-labeling", unit="batch"):
        images = images.to(device, non_blocking=True)
        probabilities = model(images).softmax(dim=1)
        if hflip_tta:
            probabilities = (probabilities + model(images.flip(-1)).softmax(dim=1)) / 2
        indices += index.tolist()
        outputs.append(probabilities.float().cpu())
    # A skipped file yields its successor's image and index, so keep each index's first row.
    first = {i: n for n, i in reversed(list(enumerate(indices)))}
    rows = sorted(first.values())
    return [indices[n] for n in rows], torch.cat(outputs)[rows]


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


def _plain(value: Any) -> Any:
    """A config value as plain Python (for dataset.json and the dataset builders)."""
    return OmegaConf.to_container(value, resolve=True) if OmegaConf.is_config(value) else value


def pseudo_dataset(
    checkpoint_path: str,
    data_root: str,
    output_dir: str,
    unlabeled_subset: str | Sequence[str] | None = "unlabeled",
    labeled_subset: str | None = "train",
    include_labeled: bool = True,
    image_transform: Callable | Mapping | None = None,
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
) -> dict[str, Any]:
    """Labels the unlabeled images with a teacher and writes a `pseudo` data set.

    Every argument is documented in `sesemi.config.structs.PseudoDatasetConfig`.

    Returns:
        What `dataset.json` holds: classes, soft_labels, counts and settings.
    """
    settings = {k: _plain(v) for k, v in locals().items() if k != "image_transform"}
    if not 0.0 <= threshold <= 1.0:
        raise SesemiError(f"threshold must be between 0 and 1, not {threshold}")
    if per_class is not None and per_class < 1:
        raise SesemiError(f"per_class must be at least 1 (or null), not {per_class}")
    if include_labeled and labeled_subset is None:
        raise SesemiError("include_labeled needs labeled_subset: the folder of labeled images")
    output = Path(output_dir)
    existing = [output / name for name in (LABELS_FILE, INFO_FILE) if (output / name).exists()]
    if existing and not overwrite:
        raise SesemiError(f"{existing[0]} already exists; set overwrite=true to replace it")
    if not Path(data_root).is_dir():
        raise SesemiError(f"data_root {data_root} does not exist")
    target_device = resolve_device(device)

    teacher = load_teacher(checkpoint_path)
    labeled = dataset("image_folder", data_root, labeled_subset) if labeled_subset else None
    classes = labeled.classes if labeled else [str(c) for c in range(teacher.num_classes)]
    if len(classes) != teacher.num_classes:
        raise SesemiError(
            f"the teacher predicts {teacher.num_classes} classes but {Path(data_root) / labeled_subset} "
            f"has {len(classes)}; use the data the teacher was trained on"
        )
    transform = (
        image_transform if image_transform is not None else run_config_transform(checkpoint_path)
    )
    settings["image_transform"] = repr(transform) if callable(transform) else _plain(transform)
    if not callable(transform):
        transform = instantiate(transform)

    # Each image's label is its index, so the predictions of skipped files can be told apart.
    found = dataset("image_file", data_root, _plain(unlabeled_subset), on_error=on_error)
    unlabeled = ImageDataset(
        [(p, i) for i, (p, _) in enumerate(found.samples)], [], transform, on_error
    )
    read, probabilities = predict(
        teacher, unlabeled, batch_size, num_workers, target_device, hflip_tta
    )
    kept = select(probabilities, threshold, balance, per_class)
    confident = int((probabilities.max(dim=1).values >= threshold).sum())

    paths = [found.samples[read[i]][0] for i in kept.tolist()]
    probabilities = probabilities[kept]
    if include_labeled:
        paths = [path for path, _ in labeled.samples] + paths
        one_hot = torch.eye(len(classes))[[label for _, label in labeled.samples]]
        probabilities = torch.cat([one_hot, probabilities])
    per_class_counts = torch.bincount(probabilities.argmax(dim=1), minlength=len(classes)).tolist()
    counts = {
        "images": len(paths),
        "labeled": len(paths) - len(kept),
        "pseudo_labeled": len(kept),
        "below_threshold": len(read) - confident,
        "dropped_by_balancing": confident - len(kept),
        "unreadable": len(found.samples) - len(read),
        "per_class": dict(zip(classes, per_class_counts, strict=True)),
    }
    empty = [name for name, count in counts["per_class"].items() if count == 0]
    if empty:
        logger.warning(
            "no images for class(es) %s; lower the threshold or train a better teacher",
            ", ".join(empty),
        )
    write_pseudo_dataset(
        output, paths, probabilities, classes, soft_labels, {"counts": counts, "settings": settings}
    )
    logger.info(
        "wrote %d pseudo-labels (%d below the threshold, %d dropped by balancing) and %d labeled images to %s",
        counts["pseudo_labeled"],
        counts["below_threshold"],
        counts["dropped_by_balancing"],
        counts["labeled"],
        output,
    )
    return {"classes": classes, "soft_labels": soft_labels, "counts": counts, "settings": settings}

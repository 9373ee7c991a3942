"""Built-in data sets: `digits` and `spoken_digits`, made offline on first use (inside the
working directory; `fetch` anywhere), and hints for downloadable ones.

`digits` is scikit-learn's bundled copy of the UCI handwritten digits (1797 8x8 scans from 43
writers), written as 32x32 PNG files in the standard layout:

    <data_root>/digits/train/<class>/      5 labeled images per class
    <data_root>/digits/unlabeled/          the rest of the training images, without labels
    <data_root>/digits/val/<class>/        500 held-out images
    <data_root>/digits/train_all/<class>/  train + unlabeled with their labels (for baselines)

`spoken_digits` (sesemi/datasets/spoken_digits.py) is the ten digit words spoken by espeak-ng in
many voices, accents, speeds and pitches over background noise, in the same layout.

A data set is built in a hidden staging folder beside its place (marked `staging`, with the
building process's id) and renamed into place, marked `data`, when complete: a killed `fetch`
leaves no half-written data set, and the next one deletes the staging folder it left.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from sesemi.datasets.spoken_digits import write_spoken_digits
from sesemi.errors import SesemiError
from sesemi.ownership import locked, remove_abandoned, staged, within

logger = logging.getLogger(__name__)

DIGITS_LABELED_PER_CLASS = 5
DIGITS_VAL_SIZE = 500
DIGITS_SPLIT_SEED = 0
DIGITS_IMAGE_SIZE = 32

SPLITS = ("train", "train_all", "val", "test", "unlabeled")  # the folders of a data root

REMOTE_DATA = {
    "imagewoof2": (
        "download it with: mkdir -p data && curl -L "
        "https://s3.amazonaws.com/fast-ai-imageclas/imagewoof2.tgz | tar -xz -C data"
    ),
}


def _write_digits(target: Path) -> None:
    import numpy as np
    from PIL import Image
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    images, labels = load_digits(return_X_y=True)
    images = (images.reshape(-1, 8, 8) * (255.0 / 16.0)).astype(np.uint8)
    indices = np.arange(len(labels))
    train_idx, val_idx = train_test_split(
        indices, test_size=DIGITS_VAL_SIZE, stratify=labels, random_state=DIGITS_SPLIT_SEED
    )
    rng = np.random.default_rng(DIGITS_SPLIT_SEED)
    labeled = {
        int(i)
        for c in range(10)
        for i in rng.choice(train_idx[labels[train_idx] == c], DIGITS_LABELED_PER_CLASS, replace=False)
    }

    def save(index: int, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        image = Image.fromarray(images[index]).resize(
            (DIGITS_IMAGE_SIZE, DIGITS_IMAGE_SIZE), Image.Resampling.BILINEAR
        )
        image.save(folder / f"{index:04d}.png")

    for i in train_idx:
        label = str(labels[i])
        save(i, target / "train_all" / label)
        save(i, target / ("train" if i in labeled else "unlabeled") / (label if i in labeled else ""))
    for i in val_idx:
        save(i, target / "val" / str(labels[i]))


BUILDERS: dict[str, Callable[[Path], None]] = {
    "digits": _write_digits,
    "spoken_digits": write_spoken_digits,
}


def build_on_first_use(root: str | Path) -> None:
    """Builds the built-in data set a run reads at `root` when it is missing and lies inside the
    working directory, where the built-in configs put it (`./data/digits`).

    A missing folder elsewhere is left for the data set to report (with the `fetch` command that
    builds it there): it is more likely a drive not mounted, or a typo in the path of data of
    one's own, than a wish for the demo data in its place.
    """
    if within(Path(root), Path.cwd()):
        prepare_builtin(root)


def prepare_builtin(root: str | Path) -> None:
    """Builds the built-in data set `root` names (by its last folder), unless it exists.

    The data is written to a staging folder and renamed into place under a file lock, so
    parallel runs neither race nor see a half-written data set; a folder that exists is used as
    it is (whoever made it), and staging folders of killed builds are deleted.
    """
    root = Path(root)
    builder = BUILDERS.get(root.name)
    if builder is None or root.is_dir():
        return
    root.parent.mkdir(parents=True, exist_ok=True)
    with locked(root.with_name(root.name + ".lock")):
        if root.is_dir():
            return
        for abandoned in remove_abandoned(root):
            logger.warning("deleted %s, left by a build that was killed", abandoned)
        logger.info("building the %s data set under %s", root.name, root)
        with staged(root, "data") as staging:
            builder(staging)


# Names other tools give the splits (Roboflow and Kaggle export train/, valid/, test/).
SPLIT_ALIASES = {"train": ("training",), "val": ("valid", "validation", "dev"), "unlabeled": ("unlabelled",)}


def _folders_beside(path: Path) -> list[str]:
    """The names of the folders beside `path`, sorted (none when its parent does not exist)."""
    return sorted(f.name for f in path.parent.iterdir() if f.is_dir()) if path.parent.is_dir() else []


def split_named_otherwise(path: Path) -> str | None:
    """The folder beside a missing split that is the split under another name: in other
    letter case (`Train/`) or as other tools name it (`valid/` for `val/`)."""
    names = {path.name.lower(), *SPLIT_ALIASES.get(path.name, ())}
    return next((name for name in _folders_beside(path) if name.lower() in names), None)


def missing_data_hint(path: Path) -> str:
    """Advice for a missing data folder: where a known data set can be had, the data root one
    folder up when the one given is itself a split (`run.data_root=data/pets/train`), the split
    under another name (`Train/`, `valid/`), or the layout when the data root holds class
    folders instead of splits."""
    for part in [path.name, *(p.name for p in path.parents)]:
        if part in REMOTE_DATA:
            return f"; {REMOTE_DATA[part]}"
    for root in (path, path.parent):  # a built-in data set, missing outside the working directory
        if root.name in BUILDERS and not root.exists():
            return f"; if you meant the built-in {root.name} there, run `sesemi fetch {root.name} --data-dir {root.parent}`"
    if path.parent.name in SPLITS and path.parent.is_dir():
        return f"; the data root holds train/, val/ and unlabeled/: {path.parent.parent}, not {path.parent}"
    if path.name in SPLITS and (other := split_named_otherwise(path)):
        why = " (folder names are case-sensitive)" if other.lower() == path.name else ""
        return f"; {path.parent} has {other}/: rename it {path.name}/{why}"
    folders = _folders_beside(path)
    if path.name in SPLITS and folders and not set(folders) & set(SPLITS):
        shown = ", ".join(f"{name}/" for name in folders[:3]) + (", ..." if len(folders) > 3 else "")
        return f"; {path.parent} holds {shown}: put the class folders in {path.parent / 'train'}/ (docs/data.md)"
    return "; check run.data_root and the dataset's root/subset (see docs/data.md for the layout)"


# Built-in data sets whose folder is not named like the config that reads it.
DATA_FOLDERS = {"imagewoof": "imagewoof2"}


def builtin_names() -> list[str]:
    """The data sets `fetch` knows, by the names of the configs that read them."""
    folders = {folder: name for name, folder in DATA_FOLDERS.items()}
    return sorted(folders.get(f, f) for f in {*BUILDERS, *REMOTE_DATA})


def fetch(name: str, data_dir: str | Path = "data") -> Path:
    """Builds a built-in data set into `data_dir`, or checks one that must be downloaded.

    `digits` and `spoken_digits` are made on this machine, once, under a file lock, so the
    jobs of a sweep do not race. `imagewoof` cannot be fetched offline: the error says where to
    get it and how its folders are laid out.

    Args:
        name: The data set, e.g. `digits`.
        data_dir: The folder that holds the data sets.

    Returns:
        The data set's folder.
    """
    folder = DATA_FOLDERS.get(name, name)
    if Path(data_dir).exists() and not Path(data_dir).is_dir():
        raise SesemiError(f"{data_dir} is a file; name the folder that holds the data sets")
    target = Path(data_dir) / folder
    if folder in BUILDERS:
        prepare_builtin(target)
    elif folder in REMOTE_DATA:
        if not ((target / "train").is_dir() and (target / "val").is_dir()):
            raise SesemiError(
                f"sesemi cannot download {name}; {REMOTE_DATA[folder]} "
                f"(it must hold {target}/train/<class>/ and {target}/val/<class>/)"
            )
    else:
        raise SesemiError(f"no built-in data set {name!r}; choose one of: {', '.join(builtin_names())}")
    return target


__all__ = ["BUILDERS", "REMOTE_DATA", "build_on_first_use", "builtin_names", "fetch", "missing_data_hint", "prepare_builtin"]

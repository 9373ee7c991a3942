"""Uncurated unlabeled pools made from a data set in the standard layout with a `train_all/` folder.

The source (`digits`, `letters`, `spoken_digits`) holds `train/<class>/`, `unlabeled/`, `val/<class>/`
and `train_all/<class>/` (train + unlabeled with their labels), which tells each unlabeled
file's class. A variant is a new folder in the same layout:

- `open`: the first half of the classes (sorted) labeled and validated; the unlabeled pool holds
  the unlabeled files of every class (about half out of class).
- `clean`: the same labels and validation; the pool holds only the labeled classes' files.
- `skew<IR>` (e.g. `skew10`): every class labeled and validated as in the source; the pool
  long-tailed, class c (in sorted order) keeping n_max * IR^(-c/(C-1)) files, n_max the
  smallest class's count in the source pool, drawn with `seed`.
- `even<IR>` (e.g. `even50`): the control of `skew<IR>`: a pool of the same size with every class
  equally common, drawn with `seed`, which tells a loss to the skew from a loss to the pool's
  smaller size.
- `tail<IR>` (e.g. `tail10`): the whole data set long-tailed, as data often come: `train_all`
  and `val` each keep the long-tailed share of every class (as `skew<IR>` keeps of the pool),
  and the labels are a random sample of the kept training files, as many as the source labels
  and at least one of each class (a class nobody labeled is not one); the other kept files are
  the pool. Labels, pool and validation then follow one prior.

Each variant also gets `pool.csv` (file, class, in_class), the truth sesemi never reads, so a
run's statistics of its pool can be checked against it.

Usage: python experiments/uncurated_pools/build_pools.py SOURCE TARGET --variant open|clean|skew10|even10|tail10 [--seed 0]
"""

from __future__ import annotations

import argparse
import csv
import random
import re
import shutil
from pathlib import Path


def pool_classes(source: Path) -> dict[str, str]:
    """The class of each file of `source/unlabeled`, read from `source/train_all/<class>/`."""
    classes = {path.name: path.parent.name for path in (source / "train_all").glob("*/*")}
    names = sorted(path.name for path in (source / "unlabeled").iterdir())
    missing = [name for name in names if name not in classes]
    if missing:
        raise SystemExit(f"{source}/train_all does not hold {missing[0]} (and {len(missing) - 1} more) of unlabeled/")
    return {name: classes[name] for name in names}


def counts(classes: list[str], n_max: int, ratio: float) -> dict[str, int]:
    """The long-tailed pool's size of each class: n_max * ratio^(-c/(C-1)), at least one."""
    last = max(len(classes) - 1, 1)
    return {label: max(1, round(n_max * ratio ** (-index / last))) for index, label in enumerate(classes)}


def build(source: Path, target: Path, variant: str, seed: int = 0) -> Path:
    """Writes the variant of `source` to `target` (unless it is there) and returns `target`."""
    if (target / "pool.csv").exists():
        return target
    match = re.fullmatch(r"open|clean|(skew|even|tail)(\d+(?:\.\d+)?)", variant)
    if match is None:
        raise SystemExit(f"unknown variant {variant!r}: open, clean, skew<ratio>, even<ratio> or tail<ratio>")
    classes = sorted(path.name for path in (source / "val").iterdir() if path.is_dir())
    if match.group(1) == "tail":
        return build_tail(source, target, classes, float(match.group(2)), random.Random(seed))
    pool = pool_classes(source)
    if variant in ("open", "clean"):
        labeled = classes[: len(classes) // 2]
        keep = {name for name, label in pool.items() if variant == "open" or label in labeled}
    else:
        labeled = classes
        by_class = {label: sorted(name for name, c in pool.items() if c == label) for label in classes}
        n_max = min(len(names) for names in by_class.values())
        rng = random.Random(seed)
        sizes = counts(classes, n_max, float(match.group(2)))
        if match.group(1) == "even":
            sizes = dict.fromkeys(classes, round(sum(sizes.values()) / len(classes)))
        keep = {name for label in classes for name in rng.sample(by_class[label], sizes[label])}
    staging = target.with_name(target.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    for split in ("train", "val"):
        for label in labeled:
            shutil.copytree(source / split / label, staging / split / label)
    (staging / "unlabeled").mkdir(parents=True)
    for name in sorted(keep):
        shutil.copyfile(source / "unlabeled" / name, staging / "unlabeled" / name)
    with open(staging / "pool.csv", "w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(["file", "class", "in_class"])
        for name in sorted(keep):
            writer.writerow([name, pool[name], int(pool[name] in labeled)])
    staging.rename(target)
    return target


def long_tailed(folder: Path, classes: list[str], ratio: float, rng: random.Random) -> dict[str, list[Path]]:
    """The files of `folder/<class>/` that a long tail of `ratio` keeps, by class (see `counts`)."""
    by_class = {label: sorted((folder / label).iterdir()) for label in classes}
    sizes = counts(classes, min(len(files) for files in by_class.values()), ratio)
    return {label: sorted(rng.sample(by_class[label], sizes[label])) for label in classes}


def build_tail(source: Path, target: Path, classes: list[str], ratio: float, rng: random.Random) -> Path:
    """The `tail<ratio>` variant of `source` (see the module's docstring) in `target`."""
    kept = long_tailed(source / "train_all", classes, ratio, rng)
    labels = len(list((source / "train").glob("*/*")))
    first = [rng.choice(kept[label]) for label in classes]
    others = sorted(set().union(*map(set, kept.values())) - set(first))
    labeled = {*first, *rng.sample(others, labels - len(first))}
    staging = target.with_name(target.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    (staging / "unlabeled").mkdir(parents=True)
    for label, files in long_tailed(source / "val", classes, ratio, rng).items():
        (staging / "val" / label).mkdir(parents=True)
        for path in files:
            shutil.copyfile(path, staging / "val" / label / path.name)
    with open(staging / "pool.csv", "w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(["file", "class", "in_class"])
        for label, files in kept.items():
            (staging / "train" / label).mkdir(parents=True)
            for path in files:
                if path in labeled:
                    shutil.copyfile(path, staging / "train" / label / path.name)
                else:
                    shutil.copyfile(path, staging / "unlabeled" / path.name)
                    writer.writerow([path.name, label, 1])
    staging.rename(target)
    return target


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("source", type=Path)
    parser.add_argument("target", type=Path)
    parser.add_argument("--variant", required=True)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    print(build(args.source, args.target, args.variant, args.seed))


if __name__ == "__main__":
    main()

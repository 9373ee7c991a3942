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

Each variant also gets `pool.csv` (file, class, in_class), the truth sesemi never reads, so a
run's statistics of its pool can be checked against it.

Usage: python experiments/uncurated_pools/build_pools.py SOURCE TARGET --variant open|clean|skew10|even10 [--seed 0]
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
    match = re.fullmatch(r"open|clean|(skew|even)(\d+(?:\.\d+)?)", variant)
    if match is None:
        raise SystemExit(f"unknown variant {variant!r}: open, clean, skew<ratio> or even<ratio>")
    classes = sorted(path.name for path in (source / "val").iterdir() if path.is_dir())
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

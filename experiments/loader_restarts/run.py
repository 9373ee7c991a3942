"""What a worker-backed labeled loader costs when it restarts every pass, and what batching pass
after pass (`sesemi.datamodule.kept_busy`) saves.

With a handful of labels the labeled loader is much shorter than the unlabeled one: 50 labels in
batches of 32 make a pass of two batches. Lightning restarts a shorter loader after every pass,
and a restarted loader with worker processes has to wait for their first batch. This script
measures that wait for 50 labeled photos (JPEG, 400x320, generated) with the ImageNet-style
training transform (`train_transforms()`: random resized crop to 224 px and a flip), in batches
of 32, while a sleep of `--step-ms` stands for the model's step on a GPU, which leaves the CPU
cores to the workers. It writes the table into README.md beside this file.

Usage: python experiments/loader_restarts/run.py [--workers 1 2 4] [--step-ms 50 100] [--steps 60]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from common import machine, write_table  # noqa: E402

from sesemi.datamodule import kept_busy  # noqa: E402
from sesemi.samplers import RepeatingRandomSampler  # noqa: E402
from sesemi.transforms import train_transforms  # noqa: E402

LABELS = 50
BATCH_SIZE = 32


class Photos(Dataset):
    """Labeled JPEG files, decoded and augmented on every read."""

    def __init__(self, files: list[Path]):
        self.files = files
        self.transform = train_transforms()

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        with Image.open(self.files[index]) as image:
            return self.transform(image.convert("RGB")), index % 10


def write_photos(folder: Path) -> list[Path]:
    rng = np.random.default_rng(0)
    files = []
    for index in range(LABELS):
        path = folder / f"{index}.jpg"
        Image.fromarray(rng.integers(0, 256, (320, 400, 3), dtype=np.uint8)).save(path, quality=90)
        files.append(path)
    return files


def waiting_ms_per_step(loader: DataLoader, steps: int, step_seconds: float) -> float:
    """Mean time a step waits for its labeled batch; the loader is restarted when it runs out."""
    batches = iter(loader)
    next(batches)  # the workers start
    waited = 0.0
    for _ in range(steps):
        started = time.perf_counter()
        try:
            next(batches)
        except StopIteration:
            batches = iter(loader)
            next(batches)
        waited += time.perf_counter() - started
        time.sleep(step_seconds)
    return 1000 * waited / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--step-ms", type=float, nargs="+", default=[50.0, 100.0])
    parser.add_argument("--steps", type=int, default=60)
    args = parser.parse_args()
    torch.set_num_threads(1)
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        data = Photos(write_photos(Path(scratch)))
        for workers in args.workers:
            for step_ms in args.step_ms:
                restarted = DataLoader(
                    data,
                    batch_size=BATCH_SIZE,
                    sampler=RepeatingRandomSampler(data, BATCH_SIZE),
                    num_workers=workers,
                    persistent_workers=True,
                )
                busy = kept_busy(restarted, num_batches=args.steps + 1)
                before = waiting_ms_per_step(restarted, args.steps, step_ms / 1000)
                after = waiting_ms_per_step(busy, args.steps, step_ms / 1000)
                share = f"{before / (step_ms + before):.0%} -> {after / (step_ms + after):.0%}"
                rows.append(f"| {workers} | {step_ms:.0f} ms | {before:.1f} ms | {after:.1f} ms | {share} |")
                print(rows[-1], flush=True)
    lines = [
        "| workers | model step | wait per step, restarted every pass | wait per step, pass after pass | share of the loop spent waiting |",
        "|---|---|---|---|---|",
        *rows,
    ]
    note = (
        f"{LABELS} labeled 400x320 JPEGs, batches of {BATCH_SIZE}, random resized crop to 224 px; "
        f"{args.steps} steps per measurement. {machine()}."
    )
    write_table(Path(__file__).with_name("README.md"), "results", note, lines)


if __name__ == "__main__":
    main()

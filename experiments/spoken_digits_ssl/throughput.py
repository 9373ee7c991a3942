"""Data loading vs model compute for `spoken_digits` (FlexMatch), with and without the preprocess cache.

1. Loading: clips/s of the config's training loaders (FLAC at 22.05 kHz decoded and resampled
   to 16 kHz, cropped and augmented; in the main process, as the config does), reading the
   files, and reading the cache `ops/preprocess` wrote.
2. Compute: clips/s of bare training steps (forward, backward, optimizer step; the log-mel
   frontend included) on the same batches held in memory.
A clip is one loaded item: a FixMatch item is one decode and two views.

Rounds alternate between the measurements, so the ratios are taken under the same machine load.

Usage: python experiments/spoken_digits_ssl/throughput.py [--steps 20] [--rounds 3] [--data DIR]
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
from hydra.utils import instantiate

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from common import composed_with_data, machine, timed_steps, write_table  # noqa: E402

from sesemi.datamodule import SESEMIDataModule  # noqa: E402
from sesemi.ops.preprocess import preprocess  # noqa: E402


def load(module: SESEMIDataModule, steps: int) -> tuple[list[dict], int, float]:
    """`steps` training batches, the clips they hold, and the seconds loading them took."""
    loaders = module.train_dataloader()
    iterators = {name: itertools.cycle(loader) for name, loader in loaders.items()}
    started = time.perf_counter()
    batches = [{name: next(it) for name, it in iterators.items()} for _ in range(steps)]
    seconds = time.perf_counter() - started
    clips = sum(len(batch[1]) for step in batches for batch in step.values())
    return batches, clips, seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--data", type=Path, help="where spoken_digits is (built there if missing)")
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp())
    data = args.data or scratch / "spoken_digits"
    overrides = [f"run.data_root={data}", "run.num_iterations=100", "run.seed=0", "run.rampup=0"]
    cache = scratch / "cache"
    files, from_files = composed_with_data(
        "spoken_digits", [*overrides, f"data.train.supervised.dataset.cache_dir={scratch / 'none'}"]
    )
    started = time.perf_counter()
    written = sum(result.written for result in preprocess(str(data), 16000, str(cache), subset=["train", "unlabeled"]))
    preprocess_seconds = time.perf_counter() - started
    _, from_cache = composed_with_data("spoken_digits", [*overrides, f"data.train.supervised.dataset.cache_dir={cache}"])
    learner = instantiate(files.learner, _recursive_=False).train()
    optimizer = torch.optim.AdamW(learner.parameters(), lr=1e-3)
    batches, _, _ = load(from_files, 2)
    timed_steps(learner, optimizer, batches)  # warm-up

    decoding, reading, bare = [], [], []
    for _ in range(args.rounds):
        batches, clips, seconds = load(from_files, args.steps)
        decoding.append(clips / seconds)
        _, clips, seconds = load(from_cache, args.steps)
        reading.append(clips / seconds)
        bare.append(clips / timed_steps(learner, optimizer, batches))

    def rate(values: list[float]) -> str:
        return f"{statistics.median(values):.0f} clips/s"

    lines = [
        "| measurement | throughput | vs compute |",
        "|---|---|---|",
        f"| loading: decode FLAC + resample (no cache) | {rate(decoding)} | "
        f"{statistics.median(d / b for d, b in zip(decoding, bare, strict=True)):.1f} x |",
        f"| loading: read the preprocess cache | {rate(reading)} | "
        f"{statistics.median(r / b for r, b in zip(reading, bare, strict=True)):.1f} x |",
        f"| bare training step (frontend, forward, backward, step) | {rate(bare)} | 1.0 x |",
        f"| preprocess, once ({written} files) | {written / preprocess_seconds:.0f} files/s | |",
    ]
    note = (
        f"spoken_digits, FlexMatch (32 labeled + 32 unlabeled clips per step, 1.2 s at 16 kHz), "
        f"{args.steps} steps x {args.rounds} rounds (medians), loading in the main process. {machine()}."
    )
    write_table(Path(__file__).with_name("README.md"), "throughput", note, lines)
    print("\n".join(lines))


if __name__ == "__main__":
    main()

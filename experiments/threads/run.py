"""Should a CPU run set torch's thread count beside its loader workers? Times training steps
with torch's own count (one thread per core, what sesemi leaves) against one thread
(`OMP_NUM_THREADS=1`), through `open_sesemi`, in two regimes:

- "in memory": the `image` config (FlexMatch, a ConvNet, 32 labeled + 224 unlabeled images a
  step, `num_workers: auto`) on digits, which the memory cache decodes once: the step is
  compute, and the workers only augment.
- "decoded each step": the same on 400x300 JPEG photos (generated here) with `cache: none`:
  the workers decode 256 photos a step, and loading is what the step waits for.

Each cell is the median over interleaved rounds (every variant once a round, the order turned
each round) of the seconds a step that the run's own estimate prints after its first 11 steps.

Usage: python experiments/threads/run.py [--rounds 3] [--write]
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from common import OPEN_SESEMI, machine, write_table  # noqa: E402

from sesemi.datasets.builtin import prepare_builtin  # noqa: E402

README = Path(__file__).with_name("README.md")
STEPS = 30
THREADS = {"torch's default (sesemi's)": None, "OMP_NUM_THREADS=1": "1"}
NO_CACHE = ["+data.unlabeled.cache=none", "+data.train.supervised.dataset.cache=none", "+data.val.dataset.cache=none"]
STEP_TIME = re.compile(r"([0-9.]+) s a step")


def photos(root: Path, classes: int = 5, labeled: int = 10, unlabeled: int = 1500) -> Path:
    """Smooth colour fields with noise, 400x300 JPEG: about 60 kB a photo, as a camera's are
    after resizing; what matters here is the cost of decoding them."""
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:300, 0:400] / 300

    def photo(label: int) -> Image.Image:
        fields = [np.sin(x * (label + 1) + 6 * rng.random()), np.cos(y * (label + 2)), np.sin(3 * (x + y))]
        pixels = (np.stack(fields, -1) * 100 + 128 + rng.normal(0, 20, (300, 400, 3))).clip(0, 255)
        return Image.fromarray(pixels.astype(np.uint8))

    for split, count in (("train", labeled), ("val", 2 * labeled)):
        for label in range(classes):
            folder = root / split / f"class{label}"
            folder.mkdir(parents=True)
            for index in range(count):
                photo(label).save(folder / f"{index}.jpg", quality=90)
    (root / "unlabeled").mkdir()
    for index in range(unlabeled):
        photo(index % classes).save(root / "unlabeled" / f"{index}.jpg", quality=90)
    return root


def seconds_a_step(data: Path, overrides: list[str], threads: str | None, runs: Path) -> float:
    """The run's own estimate of a training step, after its warm-up, in seconds."""
    env = dict(os.environ)
    env.pop("OMP_NUM_THREADS", None)
    if threads is not None:
        env["OMP_NUM_THREADS"] = threads
    command = [
        OPEN_SESEMI, "-cn", "image", f"run.data_root={data}", f"run.dir={runs}", f"run.num_iterations={STEPS}",
        f"trainer.val_check_interval={STEPS}", "+trainer.enable_progress_bar=false", *overrides,
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, env=env)
    found = STEP_TIME.findall(done.stdout + done.stderr)  # the log goes where Hydra's job logging puts it
    if done.returncode != 0 or not found:
        raise RuntimeError(f"{' '.join(command)} failed:\n{done.stderr[-3000:]}")
    return float(found[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--write", action="store_true", help="write the table into README.md")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        scratch = Path(folder)
        prepare_builtin(scratch / "digits")
        regimes = {"in memory (digits)": (scratch / "digits", []), "decoded each step (photos)": (photos(scratch / "photos"), NO_CACHE)}
        times: dict[tuple[str, str], list[float]] = {(r, t): [] for r in regimes for t in THREADS}
        for round_ in range(args.rounds):
            cells = list(times)
            for regime, threads in cells[round_ % len(cells) :] + cells[: round_ % len(cells)]:
                data, overrides = regimes[regime]
                times[regime, threads].append(seconds_a_step(data, overrides, THREADS[threads], scratch / "runs"))
            print(f"round {round_}: {times}", file=sys.stderr, flush=True)
    lines = ["| regime | " + " | ".join(f"{t}: s/step" for t in THREADS) + " | one thread / default |", "|---" * (len(THREADS) + 2) + "|"]
    for regime in regimes:
        medians = [statistics.median(times[regime, t]) for t in THREADS]
        ratio = statistics.median(a / b for a, b in zip(times[regime, "OMP_NUM_THREADS=1"], times[regime, next(iter(THREADS))], strict=True))
        lines.append(f"| {regime} | " + " | ".join(f"{m:.2f}" for m in medians) + f" | {ratio:.2f} |")
    note = (
        f"`image` config, {STEPS} steps a run, seconds a step after 11 of warm-up; median of {args.rounds} "
        f"interleaved rounds (the ratio: median of the ratios within a round). {machine()}."
    )
    print("\n".join([note, "", *lines]))
    if args.write:
        write_table(README, "threads", note, lines)


if __name__ == "__main__":
    main()

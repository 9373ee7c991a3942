"""How long does a default run of each built-in data config take on one CPU core?

For each data config with its default method (and `image` with one representative of each
method family), the training step is built as experiments/step_speed builds it
(`sesemi.compose`, `SESEMIDataModule`, the config's learner, EMA and channels-last callbacks),
on data of the config's kind and size: the built-in `digits` and `spoken_digits` data sets, and
for `image`, `audio`, `base` and `imagewoof` a small made-up folder in the layout the config
reads (random JPEGs at the config's input size, noise-and-tone WAV clips; 10 classes, a few
files each: content does not change the time of a step, size and batch do). One thread, one
warm-up step, then `--steps` timed steps over batches held in memory, in wall and in process CPU
seconds; the loading of those batches (in this process, as on one core) and one validation
batch are timed apart. A step's CPU seconds times the config's own budget is the expected time
of a default run on one such core. Writes the table into README.md beside this file.

Usage: nice -n 5 python experiments/config_times/run.py [--steps 3] [--only NAME ...]
"""

from __future__ import annotations

import argparse
import importlib.util
import io
import logging
import os
import sys
import tempfile
import time
import warnings
import wave
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
from common import composed_with_data, items_in, machine, write_table  # noqa: E402

from sesemi.budget import format_duration  # noqa: E402
from sesemi.datamodule import SESEMIDataModule  # noqa: E402
from sesemi.datasets.builtin import fetch  # noqa: E402

README = HERE / "README.md"
CLASSES = 10

# Imagewoof 2 (fast.ai): 9025 training and 3929 validation images, 10 classes, no unlabeled/.
IMAGEWOOF_TRAIN, IMAGEWOOF_VAL = 9025, 3929


def _step_speed():
    """experiments/step_speed/run.py, for its `SesemiStep`, `build_learner` and
    `ships_channels_last`: the step is timed exactly as that experiment times it."""
    spec = importlib.util.spec_from_file_location(
        "step_speed_run", HERE.parent / "step_speed" / "run.py"
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


@dataclass(frozen=True)
class Case:
    """A data config and its overrides, and the data it is timed on.

    Attributes:
        config: The data config.
        overrides: Its overrides (a method other than the default).
        data: `builtin` (the config's own data set), or how to make a folder: `image`, `audio`.
        size: Made-up images' width and height, or clips' length in seconds.
        unlabeled: Whether the made-up folder has an unlabeled/ folder.
    """

    config: str
    overrides: tuple[str, ...] = ()
    data: str = "builtin"
    size: tuple[int, int] | float = (32, 32)
    unlabeled: bool = True

    @property
    def label(self) -> str:
        return " ".join((self.config, *self.overrides))


CASES = [
    Case("digits"),
    Case("spoken_digits"),
    Case("image", data="image", size=(32, 32)),
    Case("image", ("method=fixmatch",), data="image", size=(32, 32)),
    Case("image", ("method=mean_teacher",), data="image", size=(32, 32)),
    Case("image", ("method=supervised",), data="image", size=(32, 32)),
    Case("audio", data="audio", size=1.5),
    # a typical ImageNet photo: resized to 256 and cropped to 224 by the views
    Case("base", data="image", size=(500, 375)),
    Case("imagewoof", data="image", size=(500, 375), unlabeled=False),
]


def make_images(root: Path, size: tuple[int, int], unlabeled: bool, per_class: int = 5) -> None:
    """train/<class>/*.jpg, val/<class>/*.jpg and unlabeled/*.jpg of random pixels."""
    rng = np.random.default_rng(0)

    def save(path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        pixels = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
        Image.fromarray(pixels).save(path, quality=90)

    for c in range(CLASSES):
        for i in range(per_class):
            save(root / "train" / f"class{c}" / f"{i}.jpg")
        for i in range(2):
            save(root / "val" / f"class{c}" / f"{i}.jpg")
    if unlabeled:
        for i in range(CLASSES * per_class):
            save(root / "unlabeled" / f"{i}.jpg")


def make_clips(root: Path, seconds: float, per_class: int = 5, rate: int = 16000) -> None:
    """The same layout with 16 kHz mono WAV clips: a tone per class over noise."""
    rng = np.random.default_rng(0)
    t = np.arange(int(seconds * rate)) / rate

    def save(path: Path, c: int) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        signal = 0.3 * np.sin(2 * np.pi * 220 * (c + 1) * t) + 0.1 * rng.standard_normal(len(t))
        buffer = io.BytesIO()
        with wave.open(buffer, "wb") as out:
            out.setnchannels(1)
            out.setsampwidth(2)
            out.setframerate(rate)
            out.writeframes((np.clip(signal, -1, 1) * 32767).astype("<i2").tobytes())
        path.write_bytes(buffer.getvalue())

    for c in range(CLASSES):
        for i in range(per_class):
            save(root / "train" / f"class{c}" / f"{i}.wav", c)
        for i in range(2):
            save(root / "val" / f"class{c}" / f"{i}.wav", c)
    for i in range(CLASSES * per_class):
        save(root / "unlabeled" / f"{i}.wav", i % CLASSES)


def data_root(case: Case, scratch: Path) -> Path:
    if case.data == "builtin":
        return fetch(case.config, scratch)
    root = scratch / f"{case.config}_{case.data}_{case.unlabeled}"
    if not root.exists():
        if case.data == "image":
            make_images(root, case.size, case.unlabeled)
        else:
            make_clips(root, case.size)
    return root


@dataclass
class Timing:
    steps: int
    wall: float  # seconds per training step
    cpu: float
    load_wall: float  # seconds to load one step's batches
    load_cpu: float
    images: int  # inputs the backbone encodes in a step (every view of every loader)
    val_cpu_per_item: float  # CPU seconds of a validation forward pass per item


def clocks() -> tuple[float, float]:
    return time.perf_counter(), time.process_time()


def time_case(
    case: Case, scratch: Path, steps: int, step_speed
) -> tuple[Timing, object, SESEMIDataModule]:
    """Times one warm-up step and `steps` steps of the case's default step on one thread."""
    root = data_root(case, scratch)
    # no ramp-up: the methods' unlabeled losses count from the first step, as for almost the
    # whole of a default run (a term weighted 0 is not computed); loading in this process
    settings = [
        f"run.data_root={root}",
        "run.seed=0",
        "run.rampup=0",
        "data.train.supervised.num_workers=0",
    ]
    config, data = composed_with_data(case.config, [*settings, *case.overrides])
    full = config.run.batch_size_per_gpu
    iterators = {name: iter(_cycle(loader)) for name, loader in data.train_dataloader().items()}
    batches, load = [], [0.0, 0.0]
    for _ in range(1 + steps):
        wall, cpu = clocks()
        batch = {}
        for name, iterator in iterators.items():
            item = next(iterator)
            while name == "supervised" and len(item[1]) != full:  # full labeled batches only
                item = next(iterator)
            batch[name] = item
        after = clocks()
        load[0] += after[0] - wall
        load[1] += after[1] - cpu
        batches.append(batch)
    learner, ema = step_speed.build_learner(config)
    if step_speed.ships_channels_last(config):
        learner = learner.to(memory_format=torch.channels_last)
    step = step_speed.SesemiStep(learner, ema)
    step(batches[0], 0)  # warm-up: allocations, oneDNN's kernel choice
    wall, cpu = clocks()
    for index, batch in enumerate(batches[1:], 1):
        step(batch, index)
    after = clocks()
    val_cpu = validation_cost(learner, data)
    timing = Timing(
        steps=steps,
        wall=(after[0] - wall) / steps,
        cpu=(after[1] - cpu) / steps,
        load_wall=load[0] / (1 + steps),
        load_cpu=load[1] / (1 + steps),
        images=items_in(batches[0]),
        val_cpu_per_item=val_cpu,
    )
    return timing, config, data


def _cycle(loader):
    while True:
        yield from loader


def validation_cost(learner, data: SESEMIDataModule) -> float:
    """CPU seconds per item of the validation pass (loading and forward), from one batch."""
    learner.eval()
    started = time.process_time()
    inputs, _ = next(iter(data.val_dataloader()))[:2]
    with torch.no_grad():
        learner(inputs)
    seconds = time.process_time() - started
    learner.train()
    return seconds / len(inputs)


@dataclass
class Budget:
    steps: int | None  # of a default run; None: depends on the user's data
    per_1000: int | None  # steps per 1000 training items, when the budget is in epochs
    validations: int | None
    validations_text: str
    val_items: int | None


def default_budget(case: Case, config, data: SESEMIDataModule) -> Budget:
    """The steps and validations of a default run of the case's config, on its own data."""
    run, trainer = config.run, config.trainer or {}
    interval = trainer.get("val_check_interval")
    if run.num_iterations is not None:
        steps = int(run.num_iterations)
        validations = steps // interval + (1 if steps % interval else 0)  # and the final weights
        val_items = len(data.val_dataset) if case.data == "builtin" else None
        return Budget(
            steps, None, validations, f"{validations} (every {interval} steps)", val_items
        )
    # an epoch budget: an epoch is the longest training loader, here every training item
    # (train/ + unlabeled/) in batches of batch_size_per_gpu, the last incomplete one dropped
    epochs, batch = int(run.num_epochs), int(run.batch_size_per_gpu)
    if case.config == "imagewoof":
        steps = epochs * (IMAGEWOOF_TRAIN // batch)
        return Budget(steps, None, epochs, f"{epochs} (every epoch)", IMAGEWOOF_VAL)
    return Budget(None, epochs * (1000 // batch), epochs, f"{epochs} (every epoch)", None)


def hours(seconds: float) -> str:
    """`4.2 s`, `35m 40s`, `9h 05m`, `250 h (10.4 days)`."""
    if seconds < 60:
        return f"{seconds:.1f} s"
    return (
        format_duration(seconds)
        if seconds < 48 * 3600
        else f"{seconds / 3600:.0f} h ({seconds / 86400:.1f} days)"
    )


def row(case: Case, timing: Timing, budget: Budget) -> str:
    per_step = timing.cpu + timing.load_cpu
    if budget.steps is not None:
        steps = f"{budget.steps}"
        training = hours(budget.steps * per_step)
    else:
        steps = f"{budget.per_1000} per 1000 training images"
        training = f"{hours(budget.per_1000 * per_step)} per 1000 training images"
    per_validation = (
        f"{hours(timing.val_cpu_per_item * budget.val_items)} ({budget.val_items} items)"
        if budget.val_items
        else f"{hours(timing.val_cpu_per_item * 1000)} per 1000 items"
    )
    return (
        f"| `{case.label}` | {timing.images} | {timing.wall:.3f} | {timing.cpu:.3f} | "
        f"{timing.load_cpu:.3f} | {steps} | **{training}** | {budget.validations_text} | {per_validation} |"
    )


HEADER = [
    "| config | inputs per step | step, wall s | step, CPU s | loading, CPU s | default steps "
    "| expected training time, one core | validations | each validation, CPU |",
    "|---|---|---|---|---|---|---|---|---|",
]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--steps", type=int, default=3, help="timed steps after the warm-up one")
    parser.add_argument(
        "--only", nargs="*", default=[], help="time only these rows (`image method=fixmatch`)"
    )
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.set_num_interop_threads(1)
    warnings.filterwarnings("ignore")
    for name in ("pytorch_lightning", "lightning.pytorch", "lightning_fabric"):
        logging.getLogger(name).setLevel(logging.ERROR)
    step_speed = _step_speed()
    rows = []
    other_load = os.getloadavg()[0]  # before this process adds its own
    started = clocks()
    with tempfile.TemporaryDirectory() as scratch:
        for case in CASES:
            if args.only and case.label not in args.only:
                continue
            timing, config, data = time_case(case, Path(scratch), args.steps, step_speed)
            rows.append(row(case, timing, default_budget(case, config, data)))
            print(rows[-1], flush=True)
    spent = clocks()
    note = (
        f"One thread (`torch.set_num_threads(1)`), 1 warm-up step then {args.steps} timed steps per row over "
        f"batches held in memory; expected training time = default steps x (step + loading) CPU seconds, "
        f"validations not included. The 1-minute load average was {other_load:.1f} (of "
        f"{os.cpu_count()} cores) before the measurement started: other work, which makes wall seconds "
        f"longer than CPU seconds. The whole measurement took "
        f"{spent[1] - started[1]:.0f} CPU s, {spent[0] - started[0]:.0f} s wall. {machine()}."
    )
    write_table(README, "times", note, [*HEADER, *rows])
    print(note)


if __name__ == "__main__":
    main()

"""Does loading keep up with a FixMatch step at mu = 7 with strong augmentation?

Two image sets: the built-in `digits` (32 px scans) and a folder of generated 32x32 PNGs (the
`image` config's layout and ConvNet). For each:

1. Augmentation alone: images/s of decoding a file, of the weak view and of the strong view
   (RandAugment + the weak view + Cutout) on the uint8 tensors the data sets yield, with
   RandAugment on a PIL image (as `strong_transforms` does) and on the uint8 tensor.
2. The full loop against bare compute: FixMatch training steps (32 labeled + 7 x 32 unlabeled
   images in a weak and a strong view: 480 images a step) fed by the run's own loaders, against
   the same steps fed with batches made beforehand. Loaders as `num_workers: auto` sizes them on
   this machine, and in the main process (`num_workers: 0`).

3. Photos: the loading CPU of a step from 12-megapixel JPEGs, decoded whole against read at the
   size the views need (`sesemi.transforms.views.input_side`) and kept in memory.

Rounds alternate between the variants, so the ratios are measured under the same machine load.
Compute runs on one thread (as the loader processes do).

Usage: python experiments/loading/run.py [--steps 8] [--rounds 5] [--unlabeled 3000] [--augmentation-only] [--photos-only]
"""

from __future__ import annotations

import argparse
import itertools
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from hydra.utils import instantiate
from PIL import Image
from torchvision.transforms import v2 as T

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from common import machine, timed_steps, write_table  # noqa: E402

from sesemi import compose  # noqa: E402
from sesemi.datamodule import SESEMIDataModule, worker_count  # noqa: E402
from sesemi.datasets.builtin import prepare_builtin  # noqa: E402
from sesemi.datasets.images import read_image  # noqa: E402
from sesemi.runner import attributes_for, resolve  # noqa: E402
from sesemi.transforms.image import ToPILImage  # noqa: E402

MU = 7
BATCH = 32


def make_folder(
    root: Path, unlabeled: int, classes: int = 10, per_class: int = 25, size: int = 32
) -> Path:
    """`root` in the standard layout: 32x32 PNGs of smooth random colour fields (PNG-compressible,
    as photos are), `per_class` labeled per class, `unlabeled` more, 10 per class to validate."""
    rng = np.random.default_rng(0)

    def write(path: Path) -> None:
        coarse = rng.integers(0, 256, (4, 4, 3), dtype=np.uint8)
        image = Image.fromarray(coarse).resize((size, size), Image.BILINEAR)
        path.parent.mkdir(parents=True, exist_ok=True)
        image.save(path)

    for c in range(classes):
        for i in range(per_class):
            write(root / "train" / f"c{c}" / f"{i}.png")
        for i in range(10):
            write(root / "val" / f"c{c}" / f"{i}.png")
    for i in range(unlabeled):
        write(root / "unlabeled" / f"{i}.png")
    return root


def config(name: str, data_root: Path, workers: str):
    overrides = [
        "method=fixmatch",
        f"run.data_root={data_root}",
        f"run.mu={MU}",
        f"run.batch_size_per_gpu={BATCH}",
        "run.num_iterations=1000",
        "run.seed=0",
        "run.rampup=0",  # a ramp-up would weigh the unlabeled loss 0 at step 0, and the step would skip it
        "run.gpus=0",
        f"data.train.supervised.num_workers={workers}",
    ]
    return compose(name, overrides)


def datamodule(cfg) -> SESEMIDataModule:
    module = SESEMIDataModule(
        cfg.data, cfg.run.data_root, cfg.run.batch_size_per_gpu, seed=cfg.run.seed
    )
    module.prepare_data()
    module.setup("fit")
    resolve(cfg, attributes_for(cfg, module))
    return module


def rate(function, items: list, seconds: float = 1.0) -> float:
    """Calls of `function` per CPU second of this process over `items`, cycled for about
    `seconds` of CPU time (CPU time, so that other jobs on the machine do not count)."""
    count, started = 0, time.process_time()
    for item in itertools.cycle(items):
        function(item)
        count += 1
        if count % 32 == 0 and time.process_time() - started > seconds:
            break
    return count / (time.process_time() - started)


def augmentation_rows(cfg, rounds: int) -> list[str]:
    """images/s of decoding and of each view, medians of interleaved rounds."""
    views = instantiate(cfg.data.views)
    paths = sorted(str(path) for path in Path(cfg.run.data_root).rglob("*.png"))[:256]
    tensors = [T.PILToTensor()(read_image(path)) for path in paths]
    weak, strong = views.weak, views.strong
    on_tensor = T.Compose([t for t in strong.transforms if not isinstance(t, ToPILImage)])
    variants = {
        "decode a PNG file (Pillow, to a uint8 tensor)": (
            lambda p: T.PILToTensor()(read_image(p)),
            paths,
        ),
        "weak view (uint8 tensor)": (weak, tensors),
        "strong view, RandAugment on a PIL image (sesemi)": (strong, tensors),
        "strong view, RandAugment on the uint8 tensor": (on_tensor, tensors),
    }
    measured: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(rounds):
        for name, (function, items) in variants.items():
            measured[name].append(rate(function, items))
    per_step = BATCH * 1 / statistics.median(measured["weak view (uint8 tensor)"]) + BATCH * MU * (
        1 / statistics.median(measured["weak view (uint8 tensor)"])
        + 1 / statistics.median(measured["strong view, RandAugment on a PIL image (sesemi)"])
    )
    rows = [f"| {name} | {statistics.median(values):.0f} |" for name, values in measured.items()]
    rows.append(
        f"| one step's views (32 weak + 224 weak + 224 strong): CPU time | {per_step * 1000:.0f} ms |"
    )
    return rows


def randaugment_rows(rounds: int) -> list[str]:
    """Strong views/s with RandAugment on a PIL image against on the uint8 tensor, by image size."""
    from sesemi.transforms import strong_transforms, weak_transforms

    rows = []
    for size in (32, 96, 224):
        strong = strong_transforms(weak_transforms(crop_dim=size))
        on_tensor = T.Compose([t for t in strong.transforms if not isinstance(t, ToPILImage)])
        generator = torch.Generator().manual_seed(0)
        images = [
            torch.randint(0, 256, (3, size, size), dtype=torch.uint8, generator=generator)
            for _ in range(16)
        ]
        pil, tensor = [], []
        for _ in range(rounds):
            pil.append(rate(strong, images, seconds=0.6))
            tensor.append(rate(on_tensor, images, seconds=0.6))
        ratio = statistics.median(p / t for p, t in zip(pil, tensor, strict=True))
        rows.append(
            f"| {size} px | {statistics.median(pil):.0f} | {statistics.median(tensor):.0f} | {ratio:.2f} x |"
        )
    return rows


PHOTO_SIZE = (4032, 3024)  # a 12-megapixel phone photo


def make_photos(root: Path, count: int = 12) -> list[str]:
    """`count` JPEGs (quality 90) of `PHOTO_SIZE`: colour ramps with grain, 4 to 5 MB each, as a
    phone's photos weigh."""
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0 : PHOTO_SIZE[1], 0 : PHOTO_SIZE[0]]
    root.mkdir(parents=True, exist_ok=True)
    paths = []
    for index in range(count):
        ramps = np.stack([x * (index + 1) // 20 % 236, y * (index + 2) // 15 % 236, (x + y) // 40 % 236], -1)
        grain = rng.integers(0, 20, ramps.shape)
        paths.append(str(root / f"{index}.jpg"))
        Image.fromarray((ramps + grain).astype(np.uint8)).save(paths[-1], quality=90)
    return paths


def photo_rows(paths: list[str], rounds: int) -> list[str]:
    """CPU per step of loading photos for the `image` config's views at 32 and 96 px: decoded
    whole (too large to keep in memory, so at every step), read at the size the views need
    (`input_side`) at every step, and from memory (a data set read at that size fits `cache:
    auto`), with what one photo takes in memory each way."""
    return [photo_row(paths, size, rounds) for size in (32, 96)]


def photo_row(paths: list[str], size: int, rounds: int) -> str:
    from sesemi.transforms import strong_transforms, weak_transforms
    from sesemi.transforms.views import input_side

    weak = weak_transforms(crop_dim=size)
    strong = strong_transforms(weak)
    side = input_side(strong)
    kept = {path: read_image(path, side) for path in paths}
    variants = {
        "whole": read_image,
        "at the views' size": lambda path: read_image(path, side),
        "from memory": kept.__getitem__,
    }
    cpu: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(rounds):
        for name, read in variants.items():
            labeled = rate(lambda path, read=read: weak(read(path)), paths, seconds=1.5)
            unlabeled = rate(lambda path, read=read: (weak(image := read(path)), strong(image)), paths, seconds=1.5)
            cpu[name].append(BATCH / labeled + BATCH * MU / unlabeled)
    whole = statistics.median(cpu["whole"])
    cells = [f"{statistics.median(cpu[name]):.1f} s ({whole / statistics.median(cpu[name]):.0f} x)" for name in variants]
    small = kept[paths[0]]
    memory = 3 * PHOTO_SIZE[0] * PHOTO_SIZE[1] / 1e6, 3 * small.width * small.height / 1e3
    return (
        f"| {size} px ({side} px read) | {' | '.join(cells)} | {memory[0]:.0f} MB / {memory[1]:.0f} kB "
        f"({small.width}x{small.height}) |"
    )


def cache_fill_rows(paths: list[str], rounds: int) -> list[str]:
    """Wall seconds to fill the memory cache with the photos read for 32 px views: on one thread
    (as before) and on a thread per core (`fill_cache`), in interleaved rounds."""
    from unittest import mock

    from torchvision.transforms.v2.functional import pil_to_tensor

    from sesemi.datasets import memory_cache
    from sesemi.transforms import weak_transforms
    from sesemi.transforms.views import input_side

    side = input_side(weak_transforms(crop_dim=32))
    files = paths * 4  # the same photos again: a pool of 48

    def fill() -> float:
        started = time.perf_counter()
        memory_cache.fill_cache(len(files), lambda i: pil_to_tensor(read_image(files[i], side)), "memory")
        return time.perf_counter() - started

    cores = memory_cache._num_cpus_available()
    measured: dict[int, list[float]] = {1: [], cores: []}
    for _ in range(rounds):
        with mock.patch.object(memory_cache, "_num_cpus_available", return_value=1):
            measured[1].append(fill())
        measured[cores].append(fill())
    one = statistics.median(measured[1])
    return [f"| {threads} | {statistics.median(values):.2f} s | {one / statistics.median(values):.2f} x |" for threads, values in measured.items()]


def forever(loader):
    """The loader's batches epoch after epoch (its workers persist from one to the next)."""
    while True:
        yield from loader


def process_cpu_seconds(pid: int) -> float:
    """CPU seconds (user + system) a process has used so far, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def worker_pids(loaders: dict) -> list[int]:
    """The loader processes of these (persistent-worker) loaders."""
    iterators = [getattr(loader, "_iterator", None) for loader in loaders.values()]
    return [w.pid for it in iterators if it is not None for w in getattr(it, "_workers", [])]


def full_loop_rows(
    name: str, data_root: Path, steps: int, rounds: int, unit: str = "images"
) -> list[str]:
    """Per step of the bare step and of the loop fed by loaders (auto and 0 workers): wall
    seconds, and CPU seconds of the training process and of the loader processes.

    On a machine other jobs share, wall time charges the loader processes' CPU to the step;
    CPU seconds say what the loop needs on any machine.
    """
    auto = config(name, data_root, "auto")
    main = config(name, data_root, "0")
    loaders = {
        key: datamodule(cfg).train_dataloader() for key, cfg in (("auto", auto), ("0", main))
    }
    iterators = {
        key: {n: forever(loader) for n, loader in group.items()} for key, group in loaders.items()
    }

    def batches(key: str, count: int) -> list[dict]:
        return [{n: next(it) for n, it in iterators[key].items()} for _ in range(count)]

    torch.manual_seed(0)
    learner = instantiate(auto.learner, _recursive_=False).train()
    optimizer = torch.optim.SGD(learner.parameters(), lr=0.03, momentum=0.9)
    held = batches("0", steps)
    timed_steps(learner, optimizer, held[:2])  # warm-up
    for key in iterators:
        batches(key, 2)  # start the loader processes

    def fed(key: str | None) -> tuple[float, float, float]:
        pids = worker_pids(loaders[key]) if key else []
        workers_before = sum(process_cpu_seconds(pid) for pid in pids)
        cpu, started = time.process_time(), time.perf_counter()
        if key is None:
            timed_steps(learner, optimizer, held)
        else:
            for index in range(steps):
                batch = {n: next(it) for n, it in iterators[key].items()}
                loss = learner.training_step(batch, index)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
        wall, cpu = time.perf_counter() - started, time.process_time() - cpu
        workers = sum(process_cpu_seconds(pid) for pid in pids) - workers_before
        return wall / steps, cpu / steps, workers / steps

    measured: dict[str | None, list[tuple[float, float, float]]] = {None: [], "auto": [], "0": []}
    for _ in range(rounds):
        for key in measured:
            measured[key].append(fed(key))
    bare_wall = [wall for wall, _, _ in measured[None]]
    bare_cpu = [cpu for _, cpu, _ in measured[None]]
    items = BATCH * (1 + 2 * MU)

    def row(label: str, key: str | None) -> str:
        wall = [w for w, _, _ in measured[key]]
        cpu = [c for _, c, _ in measured[key]]
        loaders_cpu = statistics.median(x for _, _, x in measured[key])
        ratio = statistics.median(b / v for b, v in zip(bare_wall, wall, strict=True))
        cpu_ratio = statistics.median(b / v for b, v in zip(bare_cpu, cpu, strict=True))
        return (
            f"| {label} | {statistics.median(wall) * 1000:.0f} ms | {items / statistics.median(wall):.0f} | "
            f"{ratio:.2f} x | {statistics.median(cpu) * 1000:.0f} ms | {cpu_ratio:.2f} x | {loaders_cpu * 1000:.0f} ms |"
        )

    workers = worker_count("supervised", "auto")
    return [
        row(f"bare step, batches made beforehand ({unit} in memory)", None),
        row(f"full loop, num_workers: auto ({workers} per loader here)", "auto"),
        row("full loop, num_workers: 0 (main process)", "0"),
    ]


LOOP_HEADER = [
    "| step | wall s/step | items/s | wall vs bare | training process CPU s/step | CPU vs bare | loader processes CPU s/step |",
    "|---|---|---|---|---|---|---|",
]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--unlabeled", type=int, default=3000)
    parser.add_argument(
        "--augmentation-only", action="store_true", help="only the augmentation tables"
    )
    parser.add_argument("--photos-only", action="store_true", help="only the photos table")
    args = parser.parse_args()
    torch.set_num_threads(1)
    scratch = Path(tempfile.mkdtemp(prefix="sesemi_loading_"))
    write_table(
        Path(__file__).with_name("README.md"),
        "photos",
        f"FixMatch loading, {BATCH} labeled images (weak view) + {MU} x {BATCH} unlabeled (weak and strong view) "
        f"a step, from {PHOTO_SIZE[0]}x{PHOTO_SIZE[1]} JPEGs; CPU seconds of one core per step (medians of "
        f"{args.rounds} interleaved rounds) and the speed-up over decoding whole. {machine()}.",
        [
            "| views | decoded whole | read at the views' size | from memory | one photo in memory: whole / read |",
            "|---|---|---|---|---|",
            *photo_rows(make_photos(scratch / "photos"), args.rounds),
        ],
    )
    write_table(
        Path(__file__).with_name("README.md"),
        "cache-fill",
        f"Filling the memory cache with 48 photos read for 32 px views (12 files, each 4 times), wall "
        f"seconds, medians of {args.rounds} interleaved rounds. {machine()}.",
        [
            "| decoding threads | wall time | vs one thread |",
            "|---|---|---|",
            *cache_fill_rows(sorted(str(p) for p in (scratch / "photos").glob("*.jpg")), args.rounds),
        ],
    )
    if args.photos_only:
        return
    digits = scratch / "digits"
    prepare_builtin(digits)
    folder = make_folder(scratch / "folder32", args.unlabeled)
    sets = {"digits": ("digits", digits), "32x32 folder": ("image", folder)}
    readme = Path(__file__).with_name("README.md")
    note = (
        f"FixMatch, {BATCH} labeled + {MU} x {BATCH} unlabeled images in two views a step, "
        f"{args.steps} steps x {args.rounds} rounds (medians), compute on one thread. {machine()}."
    )
    sizes = randaugment_rows(args.rounds)
    write_table(
        readme,
        "randaugment",
        f"Strong views (RandAugment, weak view, Cutout) of random uint8 images, images per CPU second. {machine()}.",
        [
            "| size | RandAugment on a PIL image | on the uint8 tensor | PIL vs tensor |",
            "|---|---|---|---|",
            *sizes,
        ],
    )
    augmentation, loop = [], []
    for label, (name, root) in sets.items():
        cfg = config(name, root, "auto")
        augmentation += [f"| **{label}** | |", *augmentation_rows(cfg, args.rounds)]
        if not args.augmentation_only:
            loop += [
                f"| **{label}** | | | | | | |",
                *full_loop_rows(name, root, args.steps, args.rounds),
            ]
        print("\n".join(augmentation + loop), flush=True)
    write_table(
        readme,
        "augmentation",
        note,
        ["| images per CPU second (one core) | |", "|---|---|", *augmentation],
    )
    if loop:
        write_table(readme, "loop", note, [*LOOP_HEADER, *loop])


if __name__ == "__main__":
    main()

"""Start-up time and peak memory of an unlabeled pool of 1k, 10k and 100k files.

For each size, a fresh process composes `image method=fixmatch` over a folder of 50 labeled
images (10 classes) and N unlabeled 8x8 PNGs, builds the data module (listing every file; with
`cache: auto`, decoding the pool into memory only up to 20k files), and draws the first 3
training batches (32 labeled + 7 x 32 unlabeled images in two views, loading in the main
process). It reports the seconds of each part, the process's peak resident memory (RSS) and
its growth over the same process before the data module was built, per unlabeled file. The
same pool written as WebDataset shards (`shards` data set, its size given) is the last rows:
nothing is listed or decoded ahead.

Usage: python experiments/scale/run.py [--sizes 1000 10000 100000] [--folder /tmp/sesemi_scale]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from common import machine, write_table  # noqa: E402

PER_SHARD = 1000


def png(seed: int) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 256, (8, 8, 3), dtype=np.uint8)
    encoded = io.BytesIO()
    Image.fromarray(pixels).save(encoded, "PNG")
    return encoded.getvalue()


def make_pool(root: Path, size: int) -> Path:
    """`root` with train/c<k>/ and val/c<k>/ (5 PNGs in each of 10 classes) and `size` PNGs in unlabeled/
    (16 distinct images written over and over: listing, not content, is measured)."""
    if (root / "done").exists():
        return root
    images = [png(i) for i in range(16)]
    for c in range(10):
        for split in ("train", "val"):
            for i in range(5):
                path = root / split / f"c{c}" / f"{i}.png"
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(images[(c + i) % 16])
    for i in range(size):
        folder = root / "unlabeled" / f"{i // 1000:03d}"  # 1000 files a folder, as pools are kept
        if i % 1000 == 0:
            folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{i:06d}.png").write_bytes(images[i % 16])
    (root / "done").touch()
    return root


def make_shards(root: Path, size: int) -> Path:
    import webdataset as wds

    folder = root / "shards"
    if (folder / "done").exists():
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    images = [png(i) for i in range(16)]
    for shard in range(-(-size // PER_SHARD)):
        with wds.TarWriter(str(folder / f"pool-{shard:05d}.tar")) as sink:
            for i in range(shard * PER_SHARD, min(size, (shard + 1) * PER_SHARD)):
                sink.write({"__key__": f"{i:06d}", "png": images[i % 16]})
    (folder / "done").touch()
    return folder


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def current_rss_mb() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def measure(root: Path, size: int, shards: Path | None) -> dict:
    """In this (fresh) process: seconds and memory of building the data module and 3 batches."""
    import torch

    from sesemi import compose
    from sesemi.datamodule import SESEMIDataModule

    torch.set_num_threads(1)
    overrides = [
        "method=fixmatch",
        f"run.data_root={root}",
        "run.mu=7",
        "run.batch_size_per_gpu=32",
        "run.num_iterations=1000",
        "run.seed=0",
        "data.views.weak.crop_dim=8",
        "data.train.supervised.num_workers=0",
    ]
    if shards is not None:
        overrides += [
            "data.unlabeled.name=shards",
            f"+data.unlabeled.root={shards}",
            "data.unlabeled.subset=null",
        ]
        overrides += [f"+data.unlabeled.size={size}"]
    else:
        overrides += ["data.unlabeled.subset=[unlabeled]"]
    config = compose("image", overrides)
    before = current_rss_mb()
    started = time.perf_counter()
    module = SESEMIDataModule(
        config.data, config.run.data_root, config.run.batch_size_per_gpu, seed=config.run.seed
    )
    module.setup("fit")
    built = time.perf_counter()
    after_build = current_rss_mb()
    loaders = module.train_dataloader()
    iterators = {name: iter(loader) for name, loader in loaders.items()}
    for _ in range(3):
        batch = {name: next(it) for name, it in iterators.items()}
    first = time.perf_counter()
    assert len(batch["fixmatch"][1]) == 224
    unlabeled = module.train_datasets["fixmatch"]
    unlabeled = getattr(unlabeled, "size", None) or len(unlabeled)
    return {
        "files": unlabeled,
        "build_s": built - started,
        "batches_s": first - built,
        "before_mb": before,
        "after_build_mb": after_build,
        "peak_mb": peak_rss_mb(),
        "cached": getattr(module.train_datasets["fixmatch"], "memory", None) is not None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000, 100000])
    parser.add_argument("--folder", type=Path, default=Path("/tmp/sesemi_scale"))
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)  # root size shards|-
    args = parser.parse_args()
    if args.child:
        root, size, shards = args.child
        result = measure(Path(root), int(size), None if shards == "-" else Path(shards))
        print(json.dumps(result))
        return
    rows = []
    for size in args.sizes:
        root = make_pool(args.folder / f"pool{size}", size)
        variants = [("image_file", "-")]
        if size == max(args.sizes):
            variants.append(("shards", str(make_shards(root, size))))
        for label, shards in variants:
            done = subprocess.run(
                [sys.executable, __file__, "--child", str(root), str(size), shards],
                capture_output=True,
                text=True,
                env={**os.environ, "OMP_NUM_THREADS": "1"},
            )
            if done.returncode != 0:
                raise RuntimeError(done.stderr[-3000:])
            r = json.loads(done.stdout.strip().splitlines()[-1])
            growth = r["after_build_mb"] - r["before_mb"]
            rows.append(
                f"| {size:,} | {label}{' (decoded into memory)' if r['cached'] else ''} | {r['build_s']:.2f} s | "
                f"{r['batches_s']:.2f} s | {r['peak_mb']:.0f} MB | {growth:.1f} MB | {growth * 2**20 / size:.0f} B |"
            )
            print(rows[-1], flush=True)
    lines = [
        "| unlabeled files | data set | build the data module (list) | first 3 batches | peak RSS | RSS growth at build | per file |",
        "|---|---|---|---|---|---|---|",
        *rows,
    ]
    note = f"8x8 PNGs, 1000 a folder; FixMatch, mu = 7, loading in the main process. {machine()}."
    write_table(Path(__file__).with_name("README.md"), "scale", note, lines)


if __name__ == "__main__":
    main()

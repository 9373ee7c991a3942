"""Peak memory of `sesemi inference` and `sesemi pseudo-label` as the number of files grows.

A digits run of a few steps predicts folders of 500 and 50,000 images (digits' 500 validation
images linked over and over, 1000 a folder: reading, not content, is measured), with and without
`--embeddings`, and labels a pool of as many beside digits' train/ and val/. Each cell is a fresh
process; its peak resident memory (RSS) is the kernel's account of that process (`wait4`). With
`--before DIR` (an earlier sesemi source tree, e.g. `git archive`) each command also runs on that
code (`PYTHONPATH=DIR`).

Usage: python experiments/inference_memory/run.py [--sizes 500 50000] [--before DIR] [--write]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from common import machine, run_config, write_table  # noqa: E402

from sesemi.datasets.builtin import prepare_builtin  # noqa: E402

SESEMI = str(Path(sys.executable).parent / "sesemi")
README = Path(__file__).with_name("README.md")


def link_or_copy(source: Path, target: Path) -> None:
    """`target` as a hard link to `source`, or a copy where the file system has none."""
    try:
        os.link(source, target)
    except OSError:
        shutil.copyfile(source, target)


def linked_folder(images: list[Path], folder: Path, size: int) -> Path:
    """`folder` with `size` files, `images` over and over, 1000 a subfolder."""
    for index in range(size):
        target = folder / f"{index // 1000:03d}" / f"{index:06d}.png"
        target.parent.mkdir(parents=True, exist_ok=True)
        link_or_copy(images[index % len(images)], target)
    return folder


def peak_and_wall(command: list[str], env: dict[str, str]) -> tuple[float, float]:
    """The peak RSS in MB and the wall seconds of running `command` to its end."""
    started = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode:
        raise RuntimeError(f"{' '.join(command)} failed: {process.stderr.read().decode()[-2000:]}")
    return usage.ru_maxrss / 1024, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[500, 50_000])
    parser.add_argument("--before", type=Path, help="an earlier sesemi source tree to run beside this one")
    parser.add_argument("--write", action="store_true", help="write the table into README.md")
    args = parser.parse_args()
    versions = {"now": dict(os.environ)}
    if args.before is not None:
        versions = {"before": {**os.environ, "PYTHONPATH": str(args.before.resolve())}, **versions}
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        prepare_builtin(scratch / "digits")
        trained = ["run.num_iterations=5", "trainer.val_check_interval=5"]
        run_dir = run_config("digits", trained, scratch / "runs", "trained", scratch / "digits")["run_dir"]
        images = sorted((scratch / "digits" / "val").rglob("*.png"))
        for size in args.sizes:
            folder = linked_folder(images, scratch / f"inputs_{size}", size)
            pool = scratch / f"pool_{size}"
            for split in ("train", "val"):
                shutil.copytree(scratch / "digits" / split, pool / split, copy_function=link_or_copy)
            linked_folder(images, pool / "unlabeled", size)
            inference = [SESEMI, "inference", str(run_dir), str(folder), "--device", "cpu", "--force"]
            commands = {  # each then given its output folder
                "`sesemi inference`": [*inference, "--save-dir"],
                "`sesemi inference --embeddings`": [*inference, "--embeddings", "--save-dir"],
                "`sesemi pseudo-label`": [SESEMI, "pseudo-label", str(run_dir), str(pool), "overwrite=true", "--output-dir"],
            }
            for number, (what, command) in enumerate(commands.items()):
                cells = []
                for name, env in versions.items():  # each command's own output: sesemi replaces only its own
                    peak, wall = peak_and_wall([*command, str(scratch / f"out_{name}_{number}")], env)
                    cells += [f"{peak:.0f} MB", f"{wall:.0f} s"]
                rows.append(f"| {what} | {size:,} | {' | '.join(cells)} |")
                print(rows[-1], flush=True)
    header = " | ".join(f"{name}: peak RSS | {name}: wall" for name in versions)
    lines = [f"| command | files | {header} |", "|---|---|" + "---|" * 2 * len(versions), *rows]
    note = f"One fresh process per cell, digits' 32x32 PNGs. {machine()}."
    if args.write:
        write_table(README, "inference_memory", note, lines)


if __name__ == "__main__":
    main()

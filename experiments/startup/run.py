"""How long until sesemi answers: `sesemi --help`, `open_sesemi --help`, and from the command
`open_sesemi -cn digits` to the end of its first training step (data already built).

Every command is a fresh process; the table reports the median wall time of `--repeats` runs,
the commands interleaved. The first training step is the first line PlainProgress prints: with
`run.num_iterations=20` it prints after every step; the process is then stopped. Importing
torch, and Lightning (which imports torchmetrics, torchvision, scipy and matplotlib), is the
floor under any training command.

Usage: python experiments/startup/run.py [--repeats 5] [--write]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from common import machine, write_table  # noqa: E402

BIN = Path(sys.executable).parent
README = Path(__file__).with_name("README.md")


def seconds_to_exit(command: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True)
    return time.perf_counter() - started


def seconds_to_first_step(scratch: Path) -> float:
    """From starting `open_sesemi -cn digits` to its first `step 1/` progress line."""
    command = [
        str(BIN / "open_sesemi"), "-cn", "digits", f"run.dir={scratch / 'runs'}",
        f"run.data_root={scratch / 'digits'}", "run.num_iterations=20",
    ]  # fmt: skip
    started = time.perf_counter()
    process = subprocess.Popen(
        command, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True
    )
    try:
        for line in process.stderr:
            if line.startswith("step 1/"):
                return time.perf_counter() - started
        raise RuntimeError(f"{' '.join(command)} ended before its first step")
    finally:
        process.kill()
        process.wait()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--write", action="store_true", help="write the table into README.md")
    parser.add_argument("--label", default="now", help="the table's column (e.g. before, after)")
    args = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "2")
    with tempfile.TemporaryDirectory() as folder:
        scratch = Path(folder)
        first_use = seconds_to_first_step(scratch)  # builds the digits data set
        python = str(BIN / "python")
        commands = {
            "`python -c 'import torch'`": lambda: seconds_to_exit([python, "-c", "import torch"]),
            "`python -c 'import pytorch_lightning'`": lambda: seconds_to_exit(
                [python, "-c", "import pytorch_lightning"]
            ),
            "`sesemi --help`": lambda: seconds_to_exit([str(BIN / "sesemi"), "--help"]),
            "`open_sesemi --help`": lambda: seconds_to_exit([str(BIN / "open_sesemi"), "--help"]),
            "`open_sesemi -cn digits` to the first training step": lambda: seconds_to_first_step(
                scratch
            ),
        }
        times = {name: [] for name in commands}
        for _ in range(args.repeats):
            for name, measure in commands.items():
                times[name].append(measure())
    lines = [f"| command | {args.label}: median s | runs (s) |", "|---|---|---|"]
    for name, values in times.items():
        runs = ", ".join(f"{v:.2f}" for v in values)
        lines.append(f"| {name} | {statistics.median(values):.2f} | {runs} |")
    note = (
        f"Median of {args.repeats} fresh processes, interleaved; the first use, which builds the digits data "
        f"set, took {first_use:.1f} s to its first step. {machine()}."
    )
    print("\n".join([note, "", *lines]))
    if args.write:
        write_table(README, args.label, note, lines)


if __name__ == "__main__":
    main()

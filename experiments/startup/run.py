"""How long until sesemi answers: `sesemi --help`, `open_sesemi --help`, from the command
`open_sesemi -cn digits` to the end of its first training step (data already built), and
`sesemi inference` of the 500 validation images with a run trained for a few steps.

Every command is a fresh process; the table reports the median wall time of `--repeats` runs,
and their median CPU time (user + system, all threads), which other work on a busy machine
barely changes; all commands and both code versions are interleaved. With
`--before DIR` (a copy of an earlier sesemi source tree, e.g. `git archive`) each command also
runs on that code (`PYTHONPATH=DIR`), in the same rounds. The first training step is the first
line PlainProgress prints: with `run.num_iterations=20` it prints after every step; the process
is then stopped. Importing torch, and Lightning (which imports torchmetrics, torchvision, scipy
and matplotlib), is the floor under any training command.

Usage: python experiments/startup/run.py [--repeats 5] [--before DIR] [--write]
"""

from __future__ import annotations

import argparse
import os
import resource
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


def children_cpu() -> float:
    """CPU seconds of all finished child processes (user + system)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def seconds_to_exit(command: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Wall and CPU seconds of running `command` to its end."""
    started, cpu = time.perf_counter(), children_cpu()
    subprocess.run(command, check=True, capture_output=True, env=env)
    return time.perf_counter() - started, children_cpu() - cpu


def seconds_to_first_step(scratch: Path, env: dict[str, str]) -> tuple[float, float]:
    """Wall and CPU seconds from starting `open_sesemi -cn digits` to its first `step 1/`
    progress line (CPU: until the process is stopped right after it)."""
    command = [
        str(BIN / "open_sesemi"), "-cn", "digits", f"run.dir={scratch / 'runs'}",
        f"run.data_root={scratch / 'digits'}", "run.num_iterations=20",
    ]  # fmt: skip
    started, cpu = time.perf_counter(), children_cpu()
    process = subprocess.Popen(
        command, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, env=env
    )
    wall = None
    for line in process.stderr:
        if line.startswith("step 1/"):
            wall = time.perf_counter() - started
            break
    process.kill()
    process.wait()
    if wall is None:
        raise RuntimeError(f"{' '.join(command)} ended before its first step")
    return wall, children_cpu() - cpu


def trained_run(scratch: Path, env: dict[str, str]) -> Path:
    """The folder of a digits run of a few steps, for `sesemi inference` to load."""
    runs = scratch / "trained"
    command = [
        str(BIN / "open_sesemi"), "-cn", "digits", f"run.dir={runs}", f"run.data_root={scratch / 'digits'}",
        "run.num_iterations=5", "trainer.val_check_interval=5",
    ]  # fmt: skip
    subprocess.run(command, check=True, capture_output=True, env=env)
    return next(runs.rglob("results.json")).parent


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--before", type=Path, help="an earlier source tree to compare with")
    parser.add_argument("--write", action="store_true", help="write the table into README.md")
    args = parser.parse_args()
    now = dict(os.environ, OMP_NUM_THREADS="2")
    versions = {"now": now}
    if args.before:
        versions = {"before": dict(now, PYTHONPATH=str(args.before.resolve())), **versions}
    python = str(BIN / "python")
    with tempfile.TemporaryDirectory() as folder:
        scratch = Path(folder)
        os.chdir(scratch)  # not a source tree: `sesemi` is imported from the version's code
        first_use, _ = seconds_to_first_step(scratch, now)  # builds the digits data set
        run = trained_run(scratch, now)
        commands = {
            "`python -c 'import torch'`": lambda env: seconds_to_exit(
                [python, "-c", "import torch"], env
            ),
            "`python -c 'import pytorch_lightning'`": lambda env: seconds_to_exit(
                [python, "-c", "import pytorch_lightning"], env
            ),
            "`sesemi --help`": lambda env: seconds_to_exit([str(BIN / "sesemi"), "--help"], env),
            "`open_sesemi --help`": lambda env: seconds_to_exit(
                [str(BIN / "open_sesemi"), "--help"], env
            ),
            "`open_sesemi -cn digits` to the first training step": lambda env: (
                seconds_to_first_step(scratch, env)
            ),
            "`sesemi inference` of 500 images": lambda env: seconds_to_exit(
                [str(BIN / "sesemi"), "inference", str(run), str(scratch / "digits" / "val"),
                 "--save-dir", str(scratch / "predictions"), "--force"],
                env,
            ),  # fmt: skip
        }
        times = {(name, version): [] for name in commands for version in versions}
        for repeat in range(args.repeats):
            for name, measure in commands.items():
                order = list(versions) if repeat % 2 == 0 else list(reversed(versions))
                for version in order:
                    if version == "now" or not name.startswith(
                        "`python"
                    ):  # imports: no sesemi code
                        times[name, version].append(measure(versions[version]))
            print(
                f"round {repeat}: {[v[-1] for v in times.values() if v]}",
                file=sys.stderr,
                flush=True,
            )
    header = " | ".join(f"{version}: wall s | {version}: CPU s" for version in versions)
    lines = [f"| command | {header} |", "|---" * (1 + 2 * len(versions)) + "|"]
    for name in commands:
        cells = []
        for version in versions:
            if not times[name, version]:
                cells.append("- | -")
                continue
            wall, cpu = zip(*times[name, version], strict=True)
            cells.append(f"{statistics.median(wall):.2f} | {statistics.median(cpu):.2f}")
        lines.append(f"| {name} | {' | '.join(cells)} |")
    note = (
        f"Median of {args.repeats} fresh processes per cell, all interleaved; the first use, which builds the "
        f"digits data set, took {first_use:.1f} s to its first step. {machine()}."
    )
    print("\n".join([note, "", *lines]))
    if args.write:
        write_table(README, "startup", note, lines)


if __name__ == "__main__":
    main()

"""The demo, `make demo` (`open_sesemi -cn digits`): its wall time and accuracy, against the labels alone.

Accuracy: `digits` (FlexMatch) and `digits method=supervised` (the same network, budget and
labeled batches) for several seeds, one compute thread each, one run at a time. Timing: `digits`
as `make demo` runs it (torch's default threads), with the machine's load average before and
after, the process's wall time and the run's own `wall_time_s` (training only). Writes both
tables into README.md beside this file.

Usage: python experiments/demo/run.py [--seeds 0 1 2] [--timed 1] [--runs DIR]
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from common import (  # noqa: E402
    add_runs_option,
    machine,
    measured,
    newest_run,
    read_table,
    run_config,
    runs_folder,
    top1,
    write_table,
)

README = Path(__file__).with_name("README.md")


def cpu_seconds() -> float:
    """User + system CPU seconds of the finished child processes so far."""
    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    return used.ru_utime + used.ru_stime


def load() -> str:
    """The 1-minute load average."""
    return f"{os.getloadavg()[0]:.1f}"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument(
        "--timed", type=int, default=1, help="timed runs of the demo as it is (seed 42)"
    )
    parser.add_argument(
        "--threads", type=int, help="compute threads of the timed runs (default: torch's)"
    )
    add_runs_option(parser)
    args = parser.parse_args()
    with runs_folder(args.runs) as runs:
        data = runs / "digits"
        timing = []
        for _ in range(args.timed):
            before, cpu = load(), cpu_seconds()
            result = run_config(
                "digits", [], runs, f"timed_{time.time():.0f}", data, threads=args.threads
            )
            timing.append(
                f"| {args.threads or 'default'} | {result['process_wall_time_s']:.0f} s | "
                f"{cpu_seconds() - cpu:.0f} s | {result['wall_time_s']:.0f} s | "
                f"{100 * result['metrics']['val/top1']:.1f} | {before} / {load()} |"
            )
        results = {
            method: [
                run_config(
                    "digits",
                    [f"method={method}", f"run.seed={s}"],
                    runs,
                    f"{method}_{s}",
                    data,
                    threads=1,
                )
                for s in args.seeds
            ]
            for method in ("supervised", "flexmatch")
        }
    baseline = top1(results["supervised"])
    rows = [
        "| method | config | val/top1 (%) | per seed | gain over the labels alone, per seed | mean gain ± s.e. | wall time per run (1 thread) |",
        "|---|---|---|---|---|---|---|",
    ]
    for method, finished in results.items():
        cells = measured(finished, None if method == "supervised" else baseline)
        rows.append(f"| {method} | `digits method={method}` | {cells} |")
    seeds = ", ".join(map(str, args.seeds))
    every = [r for finished in results.values() for r in finished]
    write_table(
        README,
        "accuracy",
        f"Seeds {seeds}, one run at a time, one thread each. {machine(newest_run(every))}.",
        rows,
    )
    if timing:  # added to the rows of earlier timings: each says its threads and the load
        earlier = [
            line
            for line in read_table(README, "timing")
            if line.startswith("| ") and "threads" not in line
        ]
        header = [
            "| threads | wall time (process) | CPU time (user + system) | training (`wall_time_s`) | val/top1 (%) | load average before / after |",
            "|---|---|---|---|---|---|",
        ]
        write_table(
            README,
            "timing",
            f"`open_sesemi -cn digits`, seed 42, the data already built. {machine()}; rows in the order they were measured.",
            header + earlier + timing,
        )
    print("\n".join(rows + timing))


if __name__ == "__main__":
    main()

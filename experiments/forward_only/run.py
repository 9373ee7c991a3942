"""Accuracy of forward-only target passes (the default) against the earlier fused pass, paired by seed.

Runs each method twice per seed through the real CLI, with `model.forward_only_targets=true`
(inputs that only make targets, such as FixMatch's weak view, encoded without autograd in a pass
of their own) and `=false` (they join the other inputs of their backbone in one pass with
gradients), and writes a table per data set into README.md beside this file: both accuracies,
each seed's difference and their mean ± standard error. Runs with the same seed start from the
same weights and draw the same batches, so the difference is the flag's.

Data: `digits` (the demo's config and budget), `letters` (experiments/letters' settings and data,
built here when missing) and `spoken_digits` (built with espeak-ng when missing). One run at a
time, one thread each.

Usage: python experiments/forward_only/run.py --data digits [--methods fixmatch ...] [--seeds 0 1 2]
       [--iterations N] [--runs DIR]
"""

from __future__ import annotations

import argparse
import functools
import importlib.util
import math
import statistics
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
from common import (  # noqa: E402
    METHODS,
    SPEED_OFF,
    add_runs_option,
    machine,
    mean_std,
    newest_run,
    per_seed,
    read_table,
    run_config,
    runs_folder,
    top1,
    write_table,
)

README = HERE / "README.md"
FLAG = "learner.hparams.model.forward_only_targets"


@functools.cache
def _letters():
    """experiments/letters/run.py, for its settings and its data builder (which it imports)."""
    sys.path.insert(0, str(HERE.parent / "letters"))
    spec = importlib.util.spec_from_file_location("letters_run", HERE.parent / "letters" / "run.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def settings(data: str, method: str, iterations: int | None) -> tuple[str, list[str]]:
    """The config and overrides of `method` on `data`; `iterations` replaces the budget."""
    budget = [f"run.num_iterations={iterations}"] if iterations else []
    if data == "letters":
        return "image", _letters().overrides_for(method, iterations or _letters().ITERATIONS)
    if data == "spoken_digits":  # measured before the strong view's speed change became the audio default
        budget.append(SPEED_OFF)
    return data, [f"method={method}", *budget]


def row(method: str, seeds: list[int], forward_only: list[dict], fused: list[dict]) -> str:
    """A table row: both accuracies, the paired differences and the wall time per run."""
    ours, theirs = top1(forward_only), top1(fused)
    points = [100 * (a - b) for a, b in zip(ours, theirs, strict=True)]
    spread = statistics.stdev(points) / math.sqrt(len(points)) if len(points) > 1 else None
    mean = f"{statistics.mean(points):+.1f}" + (
        f" ± {spread:.1f}" if spread is not None else " (one seed)"
    )
    seconds = [
        sum(r["process_wall_time_s"] for r in runs) / len(runs) for runs in (forward_only, fused)
    ]
    return (
        f"| {method} | {', '.join(map(str, seeds))} | {forward_only[0]['global_step']} | {mean_std(ours)} | {per_seed(ours)} | {mean_std(theirs)} | "
        f"{per_seed(theirs)} | {' / '.join(f'{p:+.1f}' for p in points)} | {mean} | "
        f"{seconds[0]:.0f} s / {seconds[1]:.0f} s |"
    )


HEADER = [
    "| method | seeds | iterations | forward-only val/top1 (%) | per seed | fused val/top1 (%) | per seed | "
    "difference per seed | mean difference ± s.e. | wall time per run (forward-only / fused) |",
    "|---|---|---|---|---|---|---|---|---|---|",
]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", required=True, choices=["digits", "letters", "spoken_digits"])
    parser.add_argument("--methods", nargs="+", default=METHODS, choices=METHODS)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument(
        "--iterations", type=int, help="the budget (default: the config's, letters: 2000)"
    )
    parser.add_argument(
        "--data-root", type=Path, help="where the data set is (built there if missing)"
    )
    add_runs_option(parser)
    args = parser.parse_args()
    with runs_folder(args.runs) as runs:
        data_root = args.data_root or runs / args.data
        if args.data == "letters" and not data_root.exists():
            _letters().build(data_root)
        results: dict[tuple[str, bool], list[dict]] = {}
        for seed in args.seeds:  # seed by seed, so that a stopped sweep leaves pairs
            for method in args.methods:
                config, overrides = settings(args.data, method, args.iterations)
                for forward_only in (True, False):
                    run_id = (
                        f"{args.data}_{method}_{'forward_only' if forward_only else 'fused'}_{seed}"
                    )
                    # the default is forward-only: its runs are the config's own (experiments/demo's too)
                    flag = [] if forward_only else [f"{FLAG}=false"]
                    job = [*overrides, *flag, f"run.seed={seed}"]
                    results.setdefault((method, forward_only), []).append(
                        run_config(config, job, runs, run_id, data_root, threads=1)
                    )
    rows = {
        line.split("|")[1].strip(): line
        for line in read_table(README, args.data)
        if line.startswith("| ") and "---" not in line
    }
    rows.pop("method", None)
    for method in args.methods:
        rows[method] = row(method, args.seeds, results[method, True], results[method, False])
        print(rows[method], flush=True)
    every = [r for runs_of in results.values() for r in runs_of]
    note = f"`{args.data}`, paired by seed (the same seed both ways), one run at a time, one thread. {machine(newest_run(every))}."
    write_table(README, args.data, note, [*HEADER, *(rows[m] for m in METHODS if m in rows)])


if __name__ == "__main__":
    main()

"""The audio methods on the built-in spoken digits with 50 labels (5 per class), against the labels alone.

Runs supervised training (`spoken_digits`), FixMatch (`spoken_digits_fixmatch`), mean teacher and
entropy minimization (`audio_<method> +dataset=spoken_digits` at the same budget and mu = 1) for
several seeds through the real CLI, and writes the table (mean ± std of the final val/top1, wall
time per run) into README.md beside this file. Nothing here is tuned on the validation set: the
methods run with their configs' defaults.

Usage: python experiments/spoken_digits_ssl/run.py [--seeds 0 1 2] [--methods fixmatch ...] [--parallel 2] [--runs DIR]

With `--runs DIR` the runs are kept there, and a run that has finished (its results.json
exists) is read instead of repeated, so an interrupted sweep continues where it stopped.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from common import machine, measured, newest_run, run_groups, top1, write_table  # noqa: E402

ITERATIONS = 2400  # the budget of spoken_digits and spoken_digits_fixmatch
RAMP = "${sesemi:max_iterations,0.25}"  # the first quarter of the budget, as spoken_digits_fixmatch
SETTINGS = {
    "supervised": ("spoken_digits", []),
    "fixmatch": ("spoken_digits_fixmatch", []),
    "mean_teacher": (
        "audio_mean_teacher",
        ["+dataset=spoken_digits",
         "data.train.consistency.batch_size=32",
         f"learner.hparams.model.regularization_loss_heads.consistency.scheduler.pivot={RAMP}"],
    ),
    "entropy_minimization": (
        "audio_entropy_minimization",
        ["+dataset=spoken_digits",
         "data.train.entropy_minimization.batch_size=32",
         f"learner.hparams.model.regularization_loss_heads.entropy_minimization.scheduler.pivot={RAMP}"],
    ),
}


HEADER = [
    "| method | config | iterations | val/top1 (%) | per seed | gain over the labels alone, per seed | mean gain ± s.e. | wall time per run |",
    "|---|---|---|---|---|---|---|---|",
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--methods", nargs="+", default=list(SETTINGS), choices=list(SETTINGS))
    parser.add_argument("--data", type=Path, help="where spoken_digits is (built there if missing)")
    parser.add_argument("--parallel", type=int, default=1, help="runs side by side (one thread each)")
    parser.add_argument("--runs", type=Path, help="where the runs are kept (default: a temporary folder)")
    args = parser.parse_args()
    rows, every = [], []
    with tempfile.TemporaryDirectory() as scratch:
        runs = args.runs or Path(scratch) / "runs"
        data = args.data or Path(scratch) / "spoken_digits"

        def jobs(name: str) -> list[tuple]:
            config, overrides = SETTINGS[name]
            budget = [f"run.num_iterations={ITERATIONS}", *overrides]  # explicit for every method
            return [(config, [*budget, f"run.seed={s}"], runs, f"{name}_{s}", data) for s in args.seeds]

        finished = run_groups({name: jobs(name) for name in ["supervised", *args.methods]}, args.parallel)
        baseline = top1(finished["supervised"])
        for name in args.methods:
            config, overrides = SETTINGS[name]
            results = finished[name]
            every += results
            shown = f"`{config}`" + (" +dataset=spoken_digits" if "+dataset=spoken_digits" in overrides else "")
            cells = measured(results, None if name == "supervised" else baseline)
            rows.append(f"| {name} | {shown} | {results[0]['global_step']} | {cells} |")
            print(rows[-1], flush=True)
    write_table(Path(__file__).with_name("README.md"), "accuracy", note(args.seeds, args.parallel, newest_run(every)), [*HEADER, *rows])


def note(seeds: list[int], parallel: int, day: str) -> str:
    return f"Seeds {', '.join(map(str, seeds))}, {parallel} run(s) at a time; mean ± std over seeds. {machine(day)}."


if __name__ == "__main__":
    main()

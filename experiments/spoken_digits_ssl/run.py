"""The audio methods on the built-in spoken digits with 50 labels (5 per class), against the labels alone.

Runs `open_sesemi -cn spoken_digits method=<method>` for supervised training, FlexMatch (the
config's default), mean teacher, entropy minimization and FlexMatch with rotation prediction
(at the same budget and mu = 1) for several seeds through the real CLI, and writes the table
(mean ± std of the final val/top1, wall time per run) into README.md beside this file; methods
not run keep their earlier row. Nothing here is tuned on the validation set: the methods run
with their configs' defaults.

Usage: python experiments/spoken_digits_ssl/run.py [--seeds 0 1 2] [--methods flexmatch ...] [--parallel 2] [--runs DIR]

With `--runs DIR` the runs are kept there, and a run that has finished (its results.json
exists) is read instead of repeated, so an interrupted sweep continues where it stopped.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from common import (  # noqa: E402
    SPEED_OFF,
    kept_earlier,
    machine,
    measured,
    merged_rows,
    newest_run,
    run_groups,
    runs_at_a_time,
    top1,
    write_table,
)

ITERATIONS = 2400  # the budget of the spoken_digits config
# name: overrides of the spoken_digits config (which reads run.mu = 1 unlabeled clip per labeled one
# and ramps up over the first quarter of the budget)
SETTINGS = {
    "supervised": ["method=supervised"],
    "flexmatch": ["method=flexmatch"],
    "mean_teacher": ["method=mean_teacher"],
    "entropy_minimization": ["method=entropy_minimization", "data.train.entropy_minimization.mu=1"],
    # experiments/letters' recipe for hard data: rotation prediction (on audio a circular shift
    # by quarters of the clip) beside FlexMatch's pseudo-labels
    "flexmatch_rotation": ["method=flexmatch_rotation"],
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
            budget = [f"run.num_iterations={ITERATIONS}", SPEED_OFF, *SETTINGS[name]]  # explicit for every method; measured before the speed change was the default
            return [("spoken_digits", [*budget, f"run.seed={s}"], runs, f"{name}_{s}", data) for s in args.seeds]

        finished = run_groups({name: jobs(name) for name in ["supervised", *args.methods]}, args.parallel)
        baseline = top1(finished["supervised"])
        for name in args.methods:
            results = finished[name]
            every += results
            cells = measured(results, None if name == "supervised" else baseline)
            rows.append(f"| {name} | `{' '.join(['spoken_digits', *SETTINGS[name]])}` | {results[0]['global_step']} | {cells} |")
            print(rows[-1], flush=True)
    readme = Path(__file__).with_name("README.md")
    table = merged_rows(readme, "accuracy", rows, list(SETTINGS))
    note = f"Seeds {', '.join(map(str, args.seeds))}, {runs_at_a_time(every, args.parallel)} run(s) at a time; mean ± std over seeds. {machine(newest_run(every))}{kept_earlier(table, rows)}."
    write_table(readme, "accuracy", note, [*HEADER, *table])


if __name__ == "__main__":
    main()

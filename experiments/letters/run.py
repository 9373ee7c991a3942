"""Do the built-in method configs beat the labels alone on data nobody tuned them for?

Builds `letters` (capital letters printed in the installed typefaces, validation on held-out
fonts; see build_letters.py) and trains every method on it with the `image` data config and the
network and unlabeled batches of the `digits` config (`run.mu=2`) for twice the steps of
experiments/digits_ssl, changing nothing else but the documented knobs: the data folder, the
budget and `p_hflip=0` (a flipped letter is another symbol).

Usage: python experiments/letters/run.py [--methods supervised fixmatch ... all_labels] [--seeds 0 1 2] [--parallel 2] [--runs DIR]
Writes the table into README.md beside this file.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from build_letters import build  # noqa: E402
from common import (  # noqa: E402
    METHODS,
    machine,
    measured,
    newest_run,
    run_groups,
    runs_at_a_time,
    top1,
    write_table,
)

ITERATIONS = 2000  # twice experiments/digits_ssl's budget, which is too few steps here
# The ceiling: the labels alone on all 2704 training images (train_all/), labeled.
ALL_LABELS = "all_labels"
CHOICES = [*METHODS, ALL_LABELS]


def overrides_for(method: str, iterations: int = ITERATIONS) -> list[str]:
    """`image method=<method>` with the CPU budget, network and mu of the digits config, no flips."""
    if method == ALL_LABELS:
        return [*overrides_for("supervised", iterations), "data.train.supervised.dataset.subset=train_all"]
    return [
        f"method={method}",
        f"run.num_iterations={iterations}",
        "run.mu=2",  # 64 unlabeled images per step for the methods that read run.mu
        "backbone=convnet_small",
        "data.views.weak.p_hflip=0.0",
        "data.train.supervised.num_workers=0",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--methods", nargs="+", default=CHOICES, choices=CHOICES)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--parallel", type=int, default=1, help="runs side by side (one thread each)")
    parser.add_argument(
        "--iterations", type=int, default=ITERATIONS, help="the budget; not the default: its own table in README.md"
    )
    parser.add_argument("--runs", type=Path, help="keep the runs here (default: a temporary folder); finished ones are reused")
    parser.add_argument("--table", help="the README.md section to write (default: results, or results_<iterations>)")
    args = parser.parse_args()
    rows, every = [], []
    with tempfile.TemporaryDirectory() as scratch:
        runs = args.runs or Path(scratch) / "runs"
        data = runs / "letters"
        if not data.exists():
            build(data)

        def jobs(method: str) -> list[tuple]:
            overrides = overrides_for(method, args.iterations)
            return [("image", [*overrides, f"run.seed={s}"], runs, f"{method}_{s}", data) for s in args.seeds]

        finished = run_groups({method: jobs(method) for method in ["supervised", *args.methods]}, args.parallel)
        baseline = top1(finished["supervised"])
        for method in args.methods:
            results = finished[method]
            every += results
            rows.append(f"| {method} | {measured(results, None if method == 'supervised' else baseline)} |")
            print(rows[-1], flush=True)
    header = "| config | val/top1 (%) | per seed | gain over the labels alone, per seed | mean gain ± s.e. | wall time per run |"
    lines = [header, "|---|---|---|---|---|---|", *rows]
    note = (
        f"26 classes, 104 labels (4 per class), 2600 unlabeled, 780 val images in held-out fonts; "
        f"{args.iterations} iterations; seeds {', '.join(map(str, args.seeds))}, {runs_at_a_time(every, args.parallel)} run(s) at a time. {machine(newest_run(every))}."
    )
    table = args.table or ("results" if args.iterations == ITERATIONS else f"results_{args.iterations}")
    write_table(Path(__file__).with_name("README.md"), table, note, lines)


if __name__ == "__main__":
    main()

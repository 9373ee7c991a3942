"""Every method on the embedded digits data with 50 labels (5 per class), against the labels alone.

Runs each built-in `digits_<method>` config for several seeds through the real CLI and writes
the table (mean ± std of the final val/top1, wall time per run) into README.md beside this file,
next to supervised training on the 50 labels and on all ~1300 training labels.

Usage: python experiments/digits_ssl/run.py [--seeds 0 1 2] [--parallel 2] [--methods fixmatch ... all_labels] [--runs DIR]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from common import IMAGE_METHODS, machine, mean_std, per_seed, read_table, run_many, write_table  # noqa: E402

METHODS = [*IMAGE_METHODS, "all_labels"]
# The ceiling: digits_supervised on all ~1300 training labels.
ALL_LABELS = ("supervised, all labels", "digits_supervised", ["data.train.supervised.dataset.subset=train_all"])


def kept_rows(readme: Path, rows: list[str]) -> list[str]:
    """`rows` plus the README's earlier rows of methods not run this time, in METHODS order."""
    order = [ALL_LABELS[0] if m == "all_labels" else m for m in METHODS]
    by_name = {}
    for row in [*read_table(readme, "accuracy"), *rows]:
        name = row.split("|")[1].strip() if row.startswith("| ") else None
        if name in order:
            by_name[name] = row
    return [by_name[name] for name in order if name in by_name]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--methods", nargs="+", default=METHODS)
    parser.add_argument("--parallel", type=int, default=1, help="runs side by side (one thread each)")
    parser.add_argument("--runs", type=Path, help="keep the runs here (default: a temporary folder); finished ones are reused")
    args = parser.parse_args()
    settings = [(m, *ALL_LABELS) if m == "all_labels" else (m, m, f"digits_{m}", []) for m in args.methods]
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        runs = args.runs or Path(scratch) / "runs"
        data = runs / "digits"
        for method, name, config, overrides in settings:
            jobs = [(config, [*overrides, f"run.seed={s}"], runs, f"digits_{method}_{s}", data) for s in args.seeds]
            results = run_many(jobs, args.parallel)
            values = [r["metrics"]["val/top1"] for r in results]
            seconds = sum(r["process_wall_time_s"] for r in results) / len(results)
            iterations = results[0]["global_step"]
            rows.append(f"| {name} | `{config}` | {iterations} | {mean_std(values)} | {per_seed(values)} | {seconds:.0f} s |")
            print(rows[-1], flush=True)
    table = kept_rows(Path(__file__).with_name("README.md"), rows)
    earlier = "; methods not run this time keep their earlier row" if len(table) > len(rows) else ""
    header = [
        "| method | config | iterations | val/top1 (%) | per seed | wall time per run |",
        "|---|---|---|---|---|---|",
    ]
    note = f"Seeds {', '.join(map(str, args.seeds))}, {args.parallel} run(s) at a time; mean ± std over seeds. {machine()}{earlier}."
    write_table(Path(__file__).with_name("README.md"), "accuracy", note, [*header, *table])


if __name__ == "__main__":
    main()

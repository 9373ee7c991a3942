"""Does the demo, `open_sesemi -cn digits`, beat training on the 50 labels alone?

Three settings of the built-in `digits` config (FlexMatch), three seeds each:
  supervised, 50 labels       `digits method=supervised`: the same config without the unlabeled loader and its head
  digits (50 labels + FlexMatch on ~1250 unlabeled images)
  supervised, all labels      the same model trained on train_all/ (50 + ~1250 labels)

Usage: python experiments/digits_baseline/run.py [--seeds 0 1 2] [--parallel 2] [--runs DIR]
Writes the table into README.md next to this file.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from common import run_groups, runs_folder, seeds_parser, write_compared  # noqa: E402

LABELS_ALONE = "supervised, 50 labels"
# name: (run id prefix, overrides of the digits config)
SETTINGS = {
    LABELS_ALONE: ("supervised", ["method=supervised"]),
    "digits: 50 labels + FlexMatch": ("digits", []),
    "supervised, all ~1300 labels": ("all_labels", ["method=supervised", "data.train.supervised.dataset.subset=train_all"]),
}


def main() -> None:
    parser = seeds_parser(__doc__)
    args = parser.parse_args()
    here = Path(__file__).parent
    with runs_folder(args.runs) as runs:
        data = runs / "digits"
        groups = {
            name: [("digits", [*overrides, f"run.seed={s}"], runs, f"{run_id}_{s}", data) for s in args.seeds]
            for name, (run_id, overrides) in SETTINGS.items()
        }
        finished = run_groups(groups, args.parallel)
    gains = "gain over the 50 labels alone, per seed | mean gain ± s.e."
    write_compared(here / "README.md", finished, LABELS_ALONE, gains, args.seeds, args.parallel)


if __name__ == "__main__":
    main()

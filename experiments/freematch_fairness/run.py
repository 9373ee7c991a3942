"""FreeMatch with and without its paper's class-fairness term, against the labels alone.

`method=freematch` leaves the term out (`fairness: 0`); `...fixmatch.head.fairness=0.01` adds
it with the weight of the paper's code. Three settings, the same seeds, on two data sets:
  digits    the built-in `digits` config at experiments/digits_ssl's budget (800 steps, mu 2)
  letters   experiments/letters' data and settings (2000 steps, mu 2, no flips)

Usage: python experiments/freematch_fairness/run.py [--data digits letters] [--seeds 0 1 2] [--parallel 2] [--runs DIR]
Writes a table per data set (`digits`, `letters`) into README.md next to this file.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "letters"))
from build_letters import build  # noqa: E402
from common import run_groups, runs_folder, seeds_parser, write_compared  # noqa: E402
from digits_ssl.run import overrides_for as digits_overrides  # noqa: E402
from letters.run import overrides_for as letters_overrides  # noqa: E402

FAIRNESS = "learner.hparams.model.regularization_loss_heads.fixmatch.head.fairness=0.01"
LABELS_ALONE = "the labels alone"
# name: (run id, method, extra overrides)
SETTINGS = {
    LABELS_ALONE: ("supervised", "supervised", []),
    "FreeMatch": ("freematch", "freematch", []),
    "FreeMatch with the fairness term (0.01)": ("freematch_fairness", "freematch", [FAIRNESS]),
}
# data set: (config, overrides of a method)
DATA = {"digits": ("digits", digits_overrides), "letters": ("image", letters_overrides)}


def main() -> None:
    parser = seeds_parser(__doc__)
    parser.add_argument("--data", nargs="+", default=list(DATA), choices=list(DATA))
    args = parser.parse_args()
    here = Path(__file__).parent
    with runs_folder(args.runs) as runs:
        for name in args.data:
            config, overrides_for = DATA[name]
            data = runs / name
            if name == "letters" and not data.exists():
                build(data)
            groups = {
                setting: [
                    (config, [*overrides_for(method), *extra, f"run.seed={s}"], runs, f"{name}_{run_id}_{s}", data)
                    for s in args.seeds
                ]
                for setting, (run_id, method, extra) in SETTINGS.items()
            }
            finished = run_groups(groups, args.parallel)
            gains = "gain over the labels alone, per seed | mean gain ± s.e."
            write_compared(here / "README.md", finished, LABELS_ALONE, gains, args.seeds, args.parallel, table=name)


if __name__ == "__main__":
    main()

"""What 12-bit images stored as 16-bit files cost when read on the 16-bit scale, and what
`data.bit_depth=12` gives back.

The `digits` data set written again as a 12-bit camera would store it: each gray level v of
0..255 as round(v / 255 * 4095) in a 16-bit PNG. Three settings of the built-in `digits` config
(FlexMatch), three seeds each:
  8-bit files                  the embedded digits, as they are
  12-bit data, 16-bit scale    the 12-bit files without data.bit_depth: read as 0..16 of 255
  12-bit data, bit_depth=12    the same files with data.bit_depth=12

Usage: python experiments/bit_depth/run.py [--seeds 0 1 2] [--parallel 2] [--runs DIR]
Writes the table into README.md next to this file.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from common import run_groups, runs_folder, seeds_parser, write_compared  # noqa: E402

from sesemi.datasets.builtin import prepare_builtin  # noqa: E402

EIGHT_BIT = "8-bit files"
# name: (run id prefix, data folder, overrides of the digits config)
SETTINGS = {
    EIGHT_BIT: ("digits", "digits", []),
    "12-bit data, read on the 16-bit scale": ("digits12", "digits12", []),
    "12-bit data, `data.bit_depth=12`": ("digits12_bit_depth", "digits12", ["data.bit_depth=12"]),
}


def write_twelve_bit(source: Path, target: Path) -> None:
    """Every PNG under `source` again under `target`, its gray levels as 12-bit data in 16 bits."""
    if target.is_dir():
        return
    for path in sorted(source.rglob("*.png")):
        levels = np.asarray(Image.open(path).convert("L"), dtype=np.float64)
        written = target / path.relative_to(source)
        written.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.round(levels / 255 * 4095).astype(np.uint16)).save(written)


def main() -> None:
    parser = seeds_parser(__doc__)
    args = parser.parse_args()
    here = Path(__file__).parent
    with runs_folder(args.runs) as runs:
        prepare_builtin(runs / "digits")
        write_twelve_bit(runs / "digits", runs / "digits12")
        groups = {
            name: [("digits", [*overrides, f"run.seed={s}"], runs, f"{run_id}_{s}", runs / data) for s in args.seeds]
            for name, (run_id, data, overrides) in SETTINGS.items()
        }
        finished = run_groups(groups, args.parallel)
    gains = "against the 8-bit files, per seed | mean difference ± s.e."
    write_compared(here / "README.md", finished, EIGHT_BIT, gains, args.seeds, args.parallel)


if __name__ == "__main__":
    main()

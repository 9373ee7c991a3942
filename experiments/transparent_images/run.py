"""What images drawn on a transparent background give, read by sesemi.

The `digits` data set written again as a drawing program or an HTML canvas saves a drawing:
black ink whose opacity is the digit's gray level, on a transparent background (RGBA, every
pixel's colour black). With alpha dropped, as torchvision's loader and sesemi before 2026-12-07
read it, every image is black. Three settings of the built-in `digits` config (FlexMatch), three
seeds each:
  8-bit files           the embedded digits, as they are: light strokes on black
  drawn in alpha        the same digits as black ink on a transparent background
  inverted              the same digits as 8-bit files of black strokes on white, which is what
                        sesemi reads the drawn ones as

Usage: python experiments/transparent_images/run.py [--seeds 0 1 2] [--parallel 2] [--runs DIR] [--table NAME]
Writes the table (`results`, or --table) into README.md next to this file.
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
# name: (run id prefix, data folder)
SETTINGS = {
    EIGHT_BIT: ("digits", "digits"),
    "drawn in alpha on a transparent background": ("digits_alpha", "digits_alpha"),
    "inverted 8-bit files (black on white)": ("digits_inverted", "digits_inverted"),
}


def drawn(levels: np.ndarray) -> Image.Image:
    """Gray levels as black ink of that opacity on a transparent background."""
    ink = np.zeros((*levels.shape, 4), np.uint8)
    ink[..., 3] = levels
    return Image.fromarray(ink, "RGBA")


def write_again(source: Path, target: Path, make) -> None:
    """Every PNG under `source` again under `target`, as `make` turns its gray levels."""
    if target.is_dir():
        return
    for path in sorted(source.rglob("*.png")):
        written = target / path.relative_to(source)
        written.parent.mkdir(parents=True, exist_ok=True)
        make(np.asarray(Image.open(path).convert("L"))).save(written)


def main() -> None:
    parser = seeds_parser(__doc__)
    parser.add_argument("--table", default="results", help="the README.md section to write")
    args = parser.parse_args()
    with runs_folder(args.runs) as runs:
        prepare_builtin(runs / "digits")
        write_again(runs / "digits", runs / "digits_alpha", drawn)
        write_again(runs / "digits", runs / "digits_inverted", lambda levels: Image.fromarray(255 - levels))
        groups = {
            name: [("digits", [f"run.seed={s}"], runs, f"{run_id}_{s}", runs / data) for s in args.seeds]
            for name, (run_id, data) in SETTINGS.items()
        }
        finished = run_groups(groups, args.parallel)
    gains = "against the 8-bit files, per seed | mean difference ± s.e."
    readme = Path(__file__).with_name("README.md")
    write_compared(readme, finished, EIGHT_BIT, gains, args.seeds, args.parallel, table=args.table)


if __name__ == "__main__":
    main()
